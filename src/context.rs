//! [`Context`]: the facade users hold. It picks an adapter and makes a device, and runs
//! losses through the layers below: the host path (`host`), the kernels (`kernels`) and the
//! GPU core (`gpu`).

use crate::error::{Error, Operation, Result};
use crate::gpu::lanes::usable_subgroup_size;
use crate::gpu::tensor::GpuTensor;
use crate::gpu::Gpu;
use crate::host::categorical::copy_gradient;
use crate::host::{Host, HostResult, DEFAULT_HOST_CALL_BUDGET};
use crate::kernels::{binary, cross_entropy, log_softmax};
use crate::loss::{
    BceOptions, BceWithLogitsOptions, ClassIndex, CrossEntropyOptions, Loss, LossAndGrad,
};
use crate::plan::Tuning;
use crate::prepared::{GradMode, PreparedLoss};

/// The GPU xent runs on: an adapter's device and queue, plus compiled pipelines and the
/// caches of host calls and readback buffers.
///
/// Cheap to clone (all clones share one device and its caches) and `Send + Sync`.
/// Build one with [`Context::new`] (best adapter on the machine), [`Context::from_adapter`]
/// or [`Context::from_device`] (a device your program already has).
#[derive(Clone)]
pub struct Context {
    host: Host,
}

/// How many bytes of GPU memory a [`Context`] keeps for reuse, by cache.
///
/// ```
/// let budget = xent::CacheBudget { host_calls: 16 << 20, ..Default::default() };
/// assert_eq!(budget.readback, 64 << 20);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheBudget {
    /// The inputs and outputs of host calls, kept so that a call of the same shape and options
    /// creates no buffers (default 256 MiB). A call larger than this is never kept.
    pub host_calls: u64,
    /// Readback buffers, pooled by size (default 64 MiB; shared by every context on the
    /// device).
    pub readback: u64,
}

impl Default for CacheBudget {
    fn default() -> Self {
        CacheBudget {
            host_calls: DEFAULT_HOST_CALL_BUDGET,
            readback: crate::gpu::device::DEFAULT_READBACK_BUDGET,
        }
    }
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("adapter", &self.gpu().info().name)
            .field("backend", &self.gpu().info().backend)
            .field("tuning", &self.gpu().tuning())
            .finish()
    }
}

/// A loss and its gradient from a host result that has one.
fn with_grad((loss, grad): HostResult) -> Result<LossAndGrad> {
    let grad = grad.ok_or_else(|| Error::Readback("the gradient was not read back".into()))?;
    Ok(LossAndGrad { loss, grad })
}

/// Rank of a device type when choosing the best adapter (lower is better).
fn device_type_rank(ty: wgpu::DeviceType, power: wgpu::PowerPreference) -> u8 {
    use wgpu::DeviceType::*;
    match (power, ty) {
        (wgpu::PowerPreference::LowPower, IntegratedGpu) => 0,
        (wgpu::PowerPreference::LowPower, DiscreteGpu) => 1,
        (_, DiscreteGpu) => 0,
        (_, IntegratedGpu) => 1,
        (_, VirtualGpu) => 2,
        (_, Cpu) => 3,
        (_, Other) => 4,
    }
}

fn instance_from_env() -> wgpu::Instance {
    wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env())
}

/// Every adapter on the machine that the environment allows, best first.
///
/// Honours `WGPU_BACKEND` (e.g. `vulkan`, `metal,dx12`), `WGPU_ADAPTER_NAME` (a case-insensitive
/// substring of the adapter's name) and `WGPU_POWER_PREF` (`high` or `low`).
pub fn adapters() -> Vec<wgpu::Adapter> {
    let instance = instance_from_env();
    let backends = wgpu::Backends::from_env().unwrap_or(wgpu::Backends::all());
    let mut found = pollster::block_on(instance.enumerate_adapters(backends));
    if let Ok(name) = std::env::var("WGPU_ADAPTER_NAME") {
        let name = name.to_lowercase();
        found.retain(|a| a.get_info().name.to_lowercase().contains(&name));
    }
    let power = wgpu::PowerPreference::from_env().unwrap_or(wgpu::PowerPreference::HighPerformance);
    found.sort_by_key(|a| {
        let info = a.get_info();
        // Prefer native backends over GL at equal device type.
        let gl = u8::from(info.backend == wgpu::Backend::Gl);
        (device_type_rank(info.device_type, power), gl)
    });
    found
}

fn env_filter_description() -> String {
    let mut parts = Vec::new();
    for var in ["WGPU_BACKEND", "WGPU_ADAPTER_NAME", "WGPU_POWER_PREF"] {
        if let Ok(v) = std::env::var(var) {
            parts.push(format!("{var}={v}"));
        }
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!(" (with {})", parts.join(", "))
    }
}

impl Context {
    /// A context on the best adapter of the machine: discrete GPU first, then integrated, then
    /// virtual, then software (such as Mesa's lavapipe). See [`adapters`] for the environment
    /// variables it honours.
    pub fn new() -> Result<Context> {
        let adapter = adapters()
            .into_iter()
            .next()
            .ok_or_else(|| Error::NoAdapter {
                filter: env_filter_description(),
            })?;
        Context::from_adapter(adapter)
    }

    /// One context for every adapter the environment allows, best first; an error if there
    /// is none.
    pub fn all() -> Result<Vec<Context>> {
        let found = adapters();
        if found.is_empty() {
            return Err(Error::NoAdapter {
                filter: env_filter_description(),
            });
        }
        found.into_iter().map(Context::from_adapter).collect()
    }

    /// A context on the given adapter, with a device that has the adapter's own limits (not
    /// WebGPU's small defaults).
    pub fn from_adapter(adapter: wgpu::Adapter) -> Result<Context> {
        let info = adapter.get_info();
        let limits = adapter.limits();
        // f16 inputs need SHADER_F16 and the row merge can use SUBGROUP; take them wherever the
        // adapter has them.
        let required_features =
            adapter.features() & (wgpu::Features::SHADER_F16 | wgpu::Features::SUBGROUP);
        let desc = wgpu::DeviceDescriptor {
            label: Some("xent"),
            required_features,
            required_limits: limits.clone(),
            experimental_features: wgpu::ExperimentalFeatures::disabled(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        };
        let (device, queue) = pollster::block_on(adapter.request_device(&desc)).map_err(|e| {
            Error::RequestDevice {
                adapter: info.name.clone(),
                reason: e.to_string(),
            }
        })?;
        let ctx = Context::from_device(device, queue)?;
        // The device is xent's own, so its lost callback is too: once it fires, every call
        // returns Error::DeviceLost at once.
        ctx.gpu().watch_lost();
        Ok(ctx)
    }

    /// A context on a device and queue your program already has. xent uses the device's
    /// limits and features as they are. It installs an uncaptured-error handler on the device
    /// (wgpu's default one panics); xent's own work is checked with error scopes. It leaves the
    /// device-lost callback to you: on a lost device calls return [`Error::Gpu`] or
    /// [`Error::Readback`] (contexts from [`Context::new`] and [`Context::from_adapter`] return
    /// [`Error::DeviceLost`]).
    pub fn from_device(device: wgpu::Device, queue: wgpu::Queue) -> Result<Context> {
        let unprobed = Gpu::new(device, queue)?;
        let subgroup_size =
            unprobed.block_on(async { Ok(usable_subgroup_size(&unprobed).await) })?;
        let gpu = unprobed.probed(subgroup_size);
        Ok(Context {
            host: Host::new(gpu, DEFAULT_HOST_CALL_BUDGET),
        })
    }

    /// The GPU core.
    pub(crate) fn gpu(&self) -> &Gpu {
        &self.host.gpu
    }

    /// The launch-plan knobs in force (by default [`Tuning::for_device`] of the adapter).
    pub fn tuning(&self) -> Tuning {
        self.gpu().tuning()
    }

    /// A context on the same device with other launch-plan knobs: for benchmarking, and for
    /// testing every kernel path on one adapter. Compiled pipelines and caches are shared.
    pub fn with_tuning(&self, tuning: Tuning) -> Context {
        Context {
            host: self.host.with_gpu(self.gpu().with_tuning(tuning)),
        }
    }

    /// The subgroup size the row kernels merge rows with, or `None` when they use workgroup
    /// memory only: the tuning switched subgroups off ([`Tuning::subgroups`]), the device lacks
    /// `Features::SUBGROUP` (contexts from [`Context::from_device`] use the features the
    /// device was created with), its driver may pick among several subgroup sizes, or its
    /// lanes are not laid out as the kernels need. Both ways give the same results, bit for
    /// bit.
    pub fn subgroup_size(&self) -> Option<u32> {
        self.gpu().subgroup_size()
    }

    /// The adapter's name, vendor, backend and driver.
    pub fn adapter_info(&self) -> &wgpu::AdapterInfo {
        self.gpu().info()
    }

    /// The limits xent plans its launches by: the device's, lowered by the [`Tuning`] caps if
    /// any.
    pub fn limits(&self) -> &wgpu::Limits {
        self.gpu().limits()
    }

    /// The wgpu device.
    pub fn device(&self) -> &wgpu::Device {
        self.gpu().device()
    }

    /// The wgpu queue.
    pub fn queue(&self) -> &wgpu::Queue {
        self.gpu().queue()
    }

    /// How many GPU buffers xent has created on this device. A diagnostic: a loop of
    /// same-shaped host calls, or of records of one [`PreparedLoss`], creates none after
    /// its first iteration.
    pub fn buffers_created(&self) -> u64 {
        self.gpu().buffers_created()
    }

    /// Bytes of GPU memory xent keeps for reuse: the inputs and outputs of kept host calls and
    /// the pooled readback buffers of the device. Each cache stays within its
    /// [`CacheBudget`].
    pub fn cached_bytes(&self) -> u64 {
        self.host.cached_bytes() + crate::gpu::device::lock(self.gpu().staging()).bytes()
    }

    /// Releases every kept host call and pooled readback buffer (their GPU memory is freed
    /// once no work uses it). Pipelines stay compiled.
    pub fn clear_caches(&self) {
        self.host.clear();
        crate::gpu::device::lock(self.gpu().staging()).clear();
    }

    /// Sets the budgets of the caches (see [`CacheBudget`]); values past a new budget are
    /// released at once, oldest first.
    pub fn set_cache_budget(&self, budget: CacheBudget) {
        self.host.set_budget(budget.host_calls);
        crate::gpu::device::lock(self.gpu().staging()).set_budget(budget.readback);
    }

    /// Prepares class-index cross-entropy on GPU buffers: `logits` holds (rows, classes) f32
    /// (row-major, at any 4-byte offset, rows optionally strided: a slice of a larger buffer),
    /// `targets` one i32 (or u32 below 2^31) class index per row. Targets cannot be checked on
    /// the host; the kernel checks them: a row whose target is outside [0, C) and not
    /// `ignore_index` gets a NaN loss (and NaN gradient), never a plausible value, and is
    /// recorded so that [`PreparedLoss::read_loss`], [`PreparedLoss::read_grad`] and
    /// [`PreparedLoss::check_labels`] return [`Error::LabelOutOfRange`]. An in-place gradient follows the logits'
    /// layout; a separate one is packed (rows, classes). See [`Context::cross_entropy`] for
    /// the semantics and [`PreparedLoss`] for running it.
    pub fn prepare_cross_entropy<'a>(
        &self,
        logits: impl Into<GpuTensor<'a>>,
        targets: impl Into<GpuTensor<'a>>,
        rows: usize,
        classes: usize,
        options: &CrossEntropyOptions,
        grad: GradMode,
    ) -> Result<PreparedLoss> {
        let gpu = self.gpu();
        gpu.block_on(gpu.checked(Operation::Prepare, || {
            cross_entropy::prepare_cross_entropy(gpu, logits, targets, rows, classes, options, grad)
        }))
    }

    /// Prepares probability-target cross-entropy on GPU buffers: `logits` and `targets` each
    /// hold (rows, classes) f32 row-major, at any 4-byte offset, rows optionally strided. See
    /// [`Context::cross_entropy_probs`] for the semantics and [`PreparedLoss`] for running it.
    pub fn prepare_cross_entropy_probs<'a>(
        &self,
        logits: impl Into<GpuTensor<'a>>,
        targets: impl Into<GpuTensor<'a>>,
        rows: usize,
        classes: usize,
        options: &CrossEntropyOptions,
        grad: GradMode,
    ) -> Result<PreparedLoss> {
        let gpu = self.gpu();
        gpu.block_on(gpu.checked(Operation::Prepare, || {
            cross_entropy::prepare_cross_entropy_probs(
                gpu, logits, targets, rows, classes, options, grad,
            )
        }))
    }

    /// Prepares binary cross-entropy on probabilities on GPU tensors of `len` f32 each (at any
    /// 4-byte offset)
    /// (`input` in [0, 1], not checked on the GPU: see [`Context::binary_cross_entropy`]).
    /// See [`PreparedLoss`] for running it.
    pub fn prepare_binary_cross_entropy<'a>(
        &self,
        input: impl Into<GpuTensor<'a>>,
        target: impl Into<GpuTensor<'a>>,
        len: usize,
        options: &BceOptions,
        grad: GradMode,
    ) -> Result<PreparedLoss> {
        let gpu = self.gpu();
        gpu.block_on(gpu.checked(Operation::Prepare, || {
            binary::prepare_binary_cross_entropy(gpu, input, target, len, options, grad)
        }))
    }

    /// Prepares binary cross-entropy with logits on GPU tensors of `len` f32 each (at any 4-byte
    /// offset). See
    /// [`Context::binary_cross_entropy_with_logits`] for the semantics and [`PreparedLoss`] for
    /// running it.
    pub fn prepare_binary_cross_entropy_with_logits<'a>(
        &self,
        input: impl Into<GpuTensor<'a>>,
        target: impl Into<GpuTensor<'a>>,
        len: usize,
        options: &BceWithLogitsOptions,
        grad: GradMode,
    ) -> Result<PreparedLoss> {
        let gpu = self.gpu();
        gpu.block_on(gpu.checked(Operation::Prepare, || {
            binary::prepare_binary_cross_entropy_with_logits(gpu, input, target, len, options, grad)
        }))
    }

    /// Prepares log-softmax on (rows, classes) f32 logits in a GPU buffer (row-major, at any
    /// 4-byte offset, rows optionally strided). Its "loss" buffer is the (rows, classes) log-softmax; with
    /// [`GradMode::Separate`] it also computes the backward `g - exp(logp) * sum_c g` for the
    /// (rows, classes) upstream gradient set with [`PreparedLoss::set_upstream`].
    pub fn prepare_log_softmax<'a>(
        &self,
        logits: impl Into<GpuTensor<'a>>,
        rows: usize,
        classes: usize,
        grad: GradMode,
    ) -> Result<PreparedLoss> {
        let gpu = self.gpu();
        gpu.block_on(gpu.checked(Operation::Prepare, || {
            log_softmax::prepare_log_softmax(gpu, logits, rows, classes, grad)
        }))
    }

    /// Categorical cross-entropy of an (N, C) batch of logits (row-major, `classes` = C)
    /// against N class-index targets, as `torch.nn.functional.cross_entropy`.
    ///
    /// Per row, `l_n = -w[y_n] * logp[n, y_n]` (with label smoothing `e`:
    /// `(1 - e) * that + (e / C) * -sum_c w[c] logp[n, c]`); rows whose target equals
    /// `ignore_index` give 0. `Mean` divides the sum by the summed weight of the non-ignored
    /// targets, so it is NaN when every row is ignored or N = 0 (as PyTorch).
    ///
    /// Errors: logits not a multiple of C, a target outside [0, C) that is not `ignore_index`,
    /// a weight of the wrong length or not finite, `label_smoothing` outside [0, 1].
    pub fn cross_entropy<L: ClassIndex>(
        &self,
        logits: &[f32],
        classes: usize,
        targets: &[L],
        options: &CrossEntropyOptions,
    ) -> Result<Loss> {
        let work = self
            .host
            .cross_entropy(logits, classes, targets, options, None, GradMode::Off);
        Ok(self.gpu().block_on(work)?.0)
    }

    /// [`Context::cross_entropy`] and its gradient with respect to the logits, in one pass
    /// over the logits (rows of up to 16 logits per thread are read from memory once).
    ///
    /// `upstream` is the gradient flowing into the loss: one value for `Mean` and `Sum`, one
    /// per row for `None`; `None` means ones. The gradient is
    /// `s ((1 - e) w_y (softmax - onehot(y)) + (e / C) (W softmax - w))` per row, with `s` the
    /// upstream value (divided by the mean's denominator for `Mean`) and `W = sum w`; rows
    /// with an ignored target get exactly 0. When every row is ignored, `Mean` gives a NaN
    /// loss and an all-zero gradient, as PyTorch.
    pub fn cross_entropy_and_grad<L: ClassIndex>(
        &self,
        logits: &[f32],
        classes: usize,
        targets: &[L],
        options: &CrossEntropyOptions,
        upstream: Option<&[f32]>,
    ) -> Result<LossAndGrad> {
        let mode = GradMode::Separate;
        let work = self
            .host
            .cross_entropy(logits, classes, targets, options, upstream, mode);
        with_grad(self.gpu().block_on(work)?)
    }

    /// [`Context::cross_entropy_and_grad`] that writes the gradient over `logits`, so only one
    /// (N, C) buffer exists on the GPU: what large vocabularies need. The caller's logits are
    /// gone afterwards (on an error they are left unchanged).
    pub fn cross_entropy_and_grad_in_place<L: ClassIndex>(
        &self,
        logits: &mut [f32],
        classes: usize,
        targets: &[L],
        options: &CrossEntropyOptions,
        upstream: Option<&[f32]>,
    ) -> Result<Loss> {
        let mode = GradMode::InPlace;
        let work = self
            .host
            .cross_entropy(logits, classes, targets, options, upstream, mode);
        let out = with_grad(self.gpu().block_on(work)?)?;
        copy_gradient(logits, &out.grad)?;
        Ok(out.loss)
    }

    /// Categorical cross-entropy of an (N, C) batch of logits against (N, C) probability
    /// targets (the seed's formula (1)), as `torch.nn.functional.cross_entropy` with a float
    /// target: `l_n = -sum_c w[c] t'[n, c] logp[n, c]` with `t' = (1 - e) t + e / C`.
    /// `Mean` divides by N (not by the weights); `ignore_index` does not apply. Targets are
    /// not checked (PyTorch does not either): a target of 0 at a -inf logit gives NaN, as
    /// `0 * -inf` does in PyTorch.
    ///
    /// Errors: logits or targets not (N, C), a weight of the wrong length or not finite,
    /// `label_smoothing` outside [0, 1].
    pub fn cross_entropy_probs(
        &self,
        logits: &[f32],
        classes: usize,
        targets: &[f32],
        options: &CrossEntropyOptions,
    ) -> Result<Loss> {
        let work =
            self.host
                .cross_entropy_probs(logits, classes, targets, options, None, GradMode::Off);
        Ok(self.gpu().block_on(work)?.0)
    }

    /// [`Context::cross_entropy_probs`] and its gradient with respect to the logits,
    /// `s (softmax * sum_c q_c - q)` per row with `q = w t'` and `s` the upstream value
    /// (divided by N for `Mean`). `upstream`: one value for `Mean` and `Sum`, one per row for
    /// `None`; `None` means ones.
    pub fn cross_entropy_probs_and_grad(
        &self,
        logits: &[f32],
        classes: usize,
        targets: &[f32],
        options: &CrossEntropyOptions,
        upstream: Option<&[f32]>,
    ) -> Result<LossAndGrad> {
        let mode = GradMode::Separate;
        let work = self
            .host
            .cross_entropy_probs(logits, classes, targets, options, upstream, mode);
        with_grad(self.gpu().block_on(work)?)
    }

    /// [`Context::cross_entropy_probs_and_grad`] that writes the gradient over `logits`.
    pub fn cross_entropy_probs_and_grad_in_place(
        &self,
        logits: &mut [f32],
        classes: usize,
        targets: &[f32],
        options: &CrossEntropyOptions,
        upstream: Option<&[f32]>,
    ) -> Result<Loss> {
        let mode = GradMode::InPlace;
        let work = self
            .host
            .cross_entropy_probs(logits, classes, targets, options, upstream, mode);
        let out = with_grad(self.gpu().block_on(work)?)?;
        copy_gradient(logits, &out.grad)?;
        Ok(out.loss)
    }

    /// Binary cross-entropy on probabilities `input` in [0, 1] against `target` of the same
    /// length (the seed's formula (2)), as `torch.nn.functional.binary_cross_entropy`:
    /// `l_i = -w_i (t_i max(log p_i, -100) + (1 - t_i) max(log(1 - p_i), -100))`.
    /// Targets may be soft. `Mean` averages over all elements (NaN for an empty input).
    ///
    /// Errors: lengths that differ, a probability outside [0, 1] or NaN, a weight of the wrong
    /// length or not finite.
    pub fn binary_cross_entropy(
        &self,
        input: &[f32],
        target: &[f32],
        options: &BceOptions,
    ) -> Result<Loss> {
        let work = self
            .host
            .binary_cross_entropy(input, target, options, None, GradMode::Off);
        Ok(self.gpu().block_on(work)?.0)
    }

    /// [`Context::binary_cross_entropy`] and its gradient with respect to `input`:
    /// `s w_i (p_i - t_i) / max((1 - p_i) p_i, 1e-12)` (PyTorch's clamp), with `s` the upstream
    /// value (divided by the element count for `Mean`). `upstream`: one value for `Mean` and
    /// `Sum`, one per element for `None`; `None` means ones.
    pub fn binary_cross_entropy_and_grad(
        &self,
        input: &[f32],
        target: &[f32],
        options: &BceOptions,
        upstream: Option<&[f32]>,
    ) -> Result<LossAndGrad> {
        let mode = GradMode::Separate;
        let work = self
            .host
            .binary_cross_entropy(input, target, options, upstream, mode);
        with_grad(self.gpu().block_on(work)?)
    }

    /// Binary cross-entropy with logits `input` against `target` of the same length, as
    /// `torch.nn.functional.binary_cross_entropy_with_logits`:
    /// `l_i = w_i ((1 - t_i) x_i - q_i logsigmoid(x_i))`, `q_i = 1 + (pos_weight_d - 1) t_i`
    /// with `d` the index in the last dimension. Stable for any finite input.
    /// `Mean` averages over all elements (NaN for an empty input).
    ///
    /// Errors: lengths that differ, an input length that is not a multiple of pos_weight's,
    /// a weight or pos_weight of the wrong length or not finite.
    pub fn binary_cross_entropy_with_logits(
        &self,
        input: &[f32],
        target: &[f32],
        options: &BceWithLogitsOptions,
    ) -> Result<Loss> {
        let mode = GradMode::Off;
        let work = self
            .host
            .binary_cross_entropy_with_logits(input, target, options, None, mode);
        Ok(self.gpu().block_on(work)?.0)
    }

    /// [`Context::binary_cross_entropy_with_logits`] and its gradient with respect to `input`:
    /// `s w_i ((pos_weight_d t_i + 1 - t_i) sigmoid(x_i) - pos_weight_d t_i)`, with `s` the
    /// upstream value (divided by the element count for `Mean`). `upstream`: one value for
    /// `Mean` and `Sum`, one per element for `None`; `None` means ones.
    pub fn binary_cross_entropy_with_logits_and_grad(
        &self,
        input: &[f32],
        target: &[f32],
        options: &BceWithLogitsOptions,
        upstream: Option<&[f32]>,
    ) -> Result<LossAndGrad> {
        let mode = GradMode::Separate;
        let work = self
            .host
            .binary_cross_entropy_with_logits(input, target, options, upstream, mode);
        with_grad(self.gpu().block_on(work)?)
    }

    /// Log-softmax of each row of an (N, C) batch of logits (row-major, `classes` = C):
    /// `logp[n, c] = (x[n, c] - m_n) - log(sum_c exp(x[n, c] - m_n))` with `m_n` the row's max.
    ///
    /// Finite for any finite logits; a -inf logit gives -inf; a row holding NaN or +inf gives
    /// NaN (as PyTorch).
    pub fn log_softmax(&self, logits: &[f32], classes: usize) -> Result<Vec<f32>> {
        let work = self.host.log_softmax(logits, classes, None);
        Ok(self.gpu().block_on(work)?.0)
    }

    /// Log-softmax and its backward for an upstream gradient `upstream` of the logits' shape
    /// (N, C): `grad = g - exp(logp) * sum_c g` per row. The returned loss is the log-softmax,
    /// unreduced.
    pub fn log_softmax_and_grad(
        &self,
        logits: &[f32],
        classes: usize,
        upstream: &[f32],
    ) -> Result<LossAndGrad> {
        let (logp, grad) =
            self.gpu()
                .block_on(self.host.log_softmax(logits, classes, Some(upstream)))?;
        with_grad((Loss::Unreduced(logp), grad))
    }
}
