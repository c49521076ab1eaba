//! [`Context`]: the facade users hold. It picks an adapter and makes a device, and runs
//! losses through the layers below: the host path (`host`), the kernels (`kernels`) and the
//! GPU core (`gpu`).

use crate::error::{Error, Operation, Result};
use crate::gpu::lanes::usable_subgroup_size;
use crate::gpu::Gpu;
use crate::host::categorical::{copy_gradient, HostTargets, RowInput};
use crate::host::{Host, DEFAULT_HOST_CALL_BUDGET};
use crate::kernels::binary::prepare_binary;
use crate::kernels::cross_entropy::{prepare_cross_entropy, CategoricalTargets};
use crate::kernels::log_softmax;
use crate::kernels::nll::prepare_nll;
use crate::loss::bound::Binds;
use crate::loss::call::{check, Call, Given};
use crate::loss::inputs::Values;
use crate::loss::GradMode;
use crate::loss::{GpuInput, GpuTargets, Input, Loss, Output, Spec, Targets};
use crate::plan::Tuning;
use crate::prepared::PreparedLoss;

/// The GPU xent runs on: an adapter's device and queue, plus compiled pipelines and the
/// caches of host calls and readback buffers.
///
/// Cheap to clone (all clones share one device and its caches) and `Send + Sync`.
/// Build one with [`Context::new`] (best adapter on the machine), [`Context::from_adapter`]
/// or [`Context::from_device`] (a device your program already has).
///
/// ```
/// use xent::{Context, CrossEntropy, Input, Reduction};
///
/// let ctx = Context::new()?;
/// println!("running on {}", ctx.adapter_info().name);
/// let loss = CrossEntropy { reduction: Reduction::None, ..Default::default() };
/// let out = ctx.compute(&loss, Input::new(&[0.0f32, 0.0, 0.0, 0.0], [2, 2]), &[0u32, 1])?;
/// let per_row = out.loss.values();
/// assert!(per_row.iter().all(|v| (v - std::f32::consts::LN_2).abs() < 1e-6));
/// # Ok::<(), xent::Error>(())
/// ```
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

/// Rank of a device type when choosing the best adapter (lower is better).
#[cfg(not(target_arch = "wasm32"))]
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

/// The one wgpu instance of the process, made on first use from the environment.
///
/// Every adapter xent finds comes from it, so all devices xent creates live in one wgpu
/// registry: a buffer of one device handed to another is then a validation error. With an
/// instance per call, two devices' resources could share an id, and a foreign buffer would be
/// read as the other device's buffer of that id.
fn instance_from_env() -> wgpu::Instance {
    static INSTANCE: std::sync::OnceLock<wgpu::Instance> = std::sync::OnceLock::new();
    INSTANCE
        .get_or_init(|| {
            wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env())
        })
        .clone()
}

/// Every adapter of the process's instance, enumerated once.
///
/// Enumerating again would hand out new adapter objects for the same hardware; on GL these
/// share one driver context behind separate locks, so devices of two enumerations used from two
/// threads would make that context current on both at once. One enumeration keeps one lock per
/// adapter. An adapter plugged in after the first call is not seen until the process restarts.
#[cfg(not(target_arch = "wasm32"))]
fn machine_adapters() -> Vec<wgpu::Adapter> {
    static ADAPTERS: std::sync::Mutex<Option<Vec<wgpu::Adapter>>> = std::sync::Mutex::new(None);
    // Natively the enumeration completes at once; the lock keeps two first calls from
    // enumerating side by side.
    let mut adapters = ADAPTERS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if adapters.is_none() {
        let found =
            pollster::block_on(instance_from_env().enumerate_adapters(wgpu::Backends::all()));
        *adapters = Some(found);
    }
    adapters.clone().unwrap_or_default()
}

/// Every adapter on the machine that the environment allows, best first.
///
/// Honours `WGPU_BACKEND` (e.g. `vulkan`, `metal,dx12`), `WGPU_ADAPTER_NAME` (a case-insensitive
/// substring of the adapter's name) and `WGPU_POWER_PREF` (`high` or `low`).
///
/// ```
/// // A context on every GL adapter, e.g. to compare backends.
/// for adapter in xent::adapters() {
///     if adapter.get_info().backend == xent::wgpu::Backend::Gl {
///         let ctx = xent::Context::from_adapter(adapter)?;
///         println!("{} on GL", ctx.adapter_info().name);
///     }
/// }
/// # Ok::<(), xent::Error>(())
/// ```
#[cfg(not(target_arch = "wasm32"))]
pub fn adapters() -> Vec<wgpu::Adapter> {
    pollster::block_on(find_adapters())
}

/// [`adapters`], as the future wgpu gives.
#[cfg(not(target_arch = "wasm32"))]
async fn find_adapters() -> Vec<wgpu::Adapter> {
    let backends = wgpu::Backends::from_env().unwrap_or(wgpu::Backends::all());
    let mut found = machine_adapters();
    found.retain(|a| backends.contains(a.get_info().backend.into()));
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

/// The device xent asks an adapter for: the adapter's own limits (not WebGPU's small
/// defaults), and SHADER_F16 (f16 inputs) and SUBGROUP (the row merge) wherever it has them.
fn device_descriptor(adapter: &wgpu::Adapter) -> wgpu::DeviceDescriptor<'static> {
    let required_features =
        adapter.features() & (wgpu::Features::SHADER_F16 | wgpu::Features::SUBGROUP);
    wgpu::DeviceDescriptor {
        label: Some("xent"),
        required_features,
        required_limits: adapter.limits(),
        experimental_features: wgpu::ExperimentalFeatures::disabled(),
        memory_hints: wgpu::MemoryHints::Performance,
        trace: wgpu::Trace::Off,
    }
}

/// The best adapter: natively the first of [`adapters`]; in a browser the one it offers.
async fn best_adapter() -> Option<wgpu::Adapter> {
    #[cfg(not(target_arch = "wasm32"))]
    {
        find_adapters().await.into_iter().next()
    }
    #[cfg(target_arch = "wasm32")]
    {
        let options = wgpu::RequestAdapterOptions {
            power_preference: wgpu::PowerPreference::HighPerformance,
            force_fallback_adapter: false,
            compatible_surface: None,
            ..Default::default()
        };
        instance_from_env().request_adapter(&options).await.ok()
    }
}

impl Context {
    /// A context on the best adapter of the machine: discrete GPU first, then integrated, then
    /// virtual, then software (such as Mesa's lavapipe). See [`adapters`] for the environment
    /// variables it honours.
    ///
    /// ```
    /// let ctx = xent::Context::new()?;
    /// println!("xent runs on {}", ctx.adapter_info().name);
    /// # Ok::<(), xent::Error>(())
    /// ```
    #[cfg(not(target_arch = "wasm32"))]
    pub fn new() -> Result<Context> {
        let adapter = adapters()
            .into_iter()
            .next()
            .ok_or_else(Error::no_adapter)?;
        Context::from_adapter(adapter)
    }

    /// [`Context::new`] without blocking; in a browser, the adapter its WebGPU offers.
    pub async fn new_async() -> Result<Context> {
        let adapter = best_adapter().await.ok_or_else(Error::no_adapter)?;
        Context::from_adapter_async(adapter).await
    }

    /// One context for every adapter the environment allows, best first; an error if there
    /// is none.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn all() -> Result<Vec<Context>> {
        let found = adapters();
        if found.is_empty() {
            return Err(Error::no_adapter());
        }
        found.into_iter().map(Context::from_adapter).collect()
    }

    /// A context on the given adapter, with a device that has the adapter's own limits (not
    /// WebGPU's small defaults).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn from_adapter(adapter: wgpu::Adapter) -> Result<Context> {
        let (device, queue) = pollster::block_on(
            adapter.request_device(&device_descriptor(&adapter)),
        )
        .map_err(|e| Error::RequestDevice {
            adapter: adapter.get_info().name,
            reason: e.to_string(),
        })?;
        let ctx = Context::from_device(device, queue)?;
        // The device is xent's own, so its lost callback is too: once it fires, every call
        // returns Error::DeviceLost at once.
        ctx.gpu().watch_lost();
        Ok(ctx)
    }

    /// [`Context::from_adapter`] without blocking.
    pub async fn from_adapter_async(adapter: wgpu::Adapter) -> Result<Context> {
        let (device, queue) = adapter
            .request_device(&device_descriptor(&adapter))
            .await
            .map_err(|e| Error::RequestDevice {
                adapter: adapter.get_info().name,
                reason: e.to_string(),
            })?;
        let ctx = Context::from_device_async(device, queue).await?;
        ctx.gpu().watch_lost();
        Ok(ctx)
    }

    /// A context on a device and queue your program already has. xent uses the device's
    /// limits and features as they are. xent's own work is checked with error scopes; the
    /// device's uncaptured-error handler and device-lost callback stay yours, so the errors of
    /// your own work on the device reach your handler and never a later xent call. On a lost
    /// device calls return [`Error::Gpu`] or
    /// [`Error::Readback`] (contexts from [`Context::new`] and [`Context::from_adapter`] return
    /// [`Error::DeviceLost`]).
    ///
    /// A complete wgpu 30 set-up (through xent's re-exported [`wgpu`]): the instance
    /// descriptor has no `Default` and `Instance::new` takes it by value; ask for the
    /// adapter's limits, as WebGPU's defaults cap storage bindings at 128 MiB.
    ///
    /// ```
    /// use xent::wgpu;
    ///
    /// let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    /// let adapter = pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions::default()))
    ///     .expect("an adapter");
    /// let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
    ///     label: Some("my device"),
    ///     required_features: adapter.features() & wgpu::Features::SHADER_F16,
    ///     required_limits: adapter.limits(),
    ///     ..Default::default()
    /// }))
    /// .expect("a device");
    /// let ctx = xent::Context::from_device(device, queue)?;
    /// let out = ctx.compute(&xent::LogSoftmax, xent::Input::new(&[0.0f32, 0.0], [1, 2]), xent::Targets::None)?;
    /// assert!((out.loss.values()[0] + 2f32.ln()).abs() < 1e-6);
    /// # Ok::<(), xent::Error>(())
    /// ```
    #[cfg(not(target_arch = "wasm32"))]
    pub fn from_device(device: wgpu::Device, queue: wgpu::Queue) -> Result<Context> {
        let waiter = device.clone();
        crate::gpu::device::block_on_device(&waiter, Context::from_device_async(device, queue))
    }

    /// [`Context::from_device`] without blocking.
    pub async fn from_device_async(device: wgpu::Device, queue: wgpu::Queue) -> Result<Context> {
        let unprobed = Gpu::new(device, queue)?;
        let subgroup_size = usable_subgroup_size(&unprobed).await;
        Ok(Context {
            host: Host::new(unprobed.probed(subgroup_size), DEFAULT_HOST_CALL_BUDGET),
        })
    }

    /// The GPU core.
    pub(crate) fn gpu(&self) -> &Gpu {
        &self.host.gpu
    }

    /// The host path and its cache of host calls.
    pub(crate) fn host(&self) -> &Host {
        &self.host
    }

    /// Waits on this thread for `work`, a future of xent's async API on this context (or one
    /// that awaits several of them), polling the device whenever the future is not ready: the
    /// blocking edge that xent's own blocking forms use. An error after a bounded wait rather
    /// than a hang. Native only (a browser awaits).
    ///
    /// ```
    /// use xent::{Context, CrossEntropy, Input};
    ///
    /// let ctx = Context::new()?;
    /// let x = [1.0f32, 2.0, 3.0];
    /// let out = ctx.block_on(ctx.compute_async(&CrossEntropy::default(), Input::new(&x, [1, 3]), &[2u32]))?;
    /// assert!(out.loss.scalar().unwrap() < 0.5);
    /// # Ok::<(), xent::Error>(())
    /// ```
    #[cfg(not(target_arch = "wasm32"))]
    pub fn block_on<T>(&self, work: impl std::future::Future<Output = Result<T>>) -> Result<T> {
        self.gpu().block_on(work)
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

    /// The host form of a loss of the categorical and binary families (see
    /// [`Context::compute_async`]).
    pub(crate) async fn compute_family<'a>(
        &self,
        spec: Spec<'_>,
        mut input: Input<'a>,
        targets: Targets<'a>,
    ) -> Result<Output> {
        let in_place = input.is_in_place();
        let given = Given::from(targets);
        let call = check(
            spec,
            &input.shape,
            Some(input.values().len()),
            in_place,
            given,
        )?;
        let mode = match (in_place, input.wants_grad()) {
            (true, _) => GradMode::InPlace,
            (false, true) => GradMode::Separate,
            (false, false) => GradMode::Off,
        };
        let upstream = input.upstream();
        let values = input.values();
        let host = &self.host;
        let out = match call {
            Call::LogSoftmax { classes, .. } => {
                let ones;
                let upstream = match (mode, upstream) {
                    (GradMode::Off, _) => None,
                    (_, Some(u)) => Some(u),
                    (_, None) => {
                        ones = vec![1.0; values.len()];
                        Some(&ones[..])
                    }
                };
                let (logp, grad) = host.log_softmax(values, classes, upstream).await?;
                Output {
                    loss: Loss::Unreduced(logp),
                    grad,
                    lse: None,
                }
            }
            Call::Indices {
                options,
                shape,
                targets,
            } => {
                let labels = targets.to_i64()?;
                let targets = HostTargets::Indices(&labels);
                let input = (values, RowInput::Logits);
                host.cross_entropy(input, shape, targets, options, upstream, mode)
                    .await?
            }
            Call::Nll {
                options,
                shape,
                targets,
            } => {
                let labels = targets.to_i64()?;
                let targets = HostTargets::Indices(&labels);
                let input = (values, RowInput::LogProbs);
                let options = options.as_cross_entropy();
                host.cross_entropy(input, shape, targets, &options, upstream, mode)
                    .await?
            }
            Call::Probs {
                options,
                shape,
                targets,
            } => {
                let targets = HostTargets::Probs(targets);
                let input = (values, RowInput::Logits);
                host.cross_entropy(input, shape, targets, options, upstream, mode)
                    .await?
            }
            Call::Binary { loss, targets, .. } => {
                host.binary_cross_entropy(values, targets, loss, upstream, mode)
                    .await?
            }
        };
        if let Values::InPlace(values) = &mut input.values {
            let grad = out.grad.as_deref();
            let grad = grad.ok_or_else(|| Error::Readback("the gradient was not read".into()))?;
            copy_gradient(values, grad)?;
            return Ok(Output { grad: None, ..out });
        }
        Ok(out)
    }

    /// The GPU form of a loss of the categorical and binary families (see
    /// [`Context::prepare_async`]).
    pub(crate) async fn prepare_family<'a>(
        &self,
        spec: Spec<'_>,
        input: GpuInput<'a>,
        targets: GpuTargets<'a>,
    ) -> Result<PreparedLoss> {
        let in_place = input.grad == GradMode::InPlace;
        let binds = Binds::new(&input, &targets);
        let given = Given::from(targets);
        let call = check(spec, &input.shape, None, in_place, given)?;
        let gpu = self.gpu();
        let (x, grad) = (input.tensor, input.grad);
        let mut prepared = gpu
            .checked(Operation::Prepare, || match call {
                Call::LogSoftmax { rows, classes } => {
                    log_softmax::prepare_log_softmax(gpu, x, rows, classes, grad)
                }
                Call::Indices {
                    options,
                    shape,
                    targets,
                } => {
                    let targets = CategoricalTargets::Indices(targets);
                    prepare_cross_entropy(gpu, x, targets, shape, options, grad)
                }
                Call::Probs {
                    options,
                    shape,
                    targets,
                } => {
                    let targets = CategoricalTargets::Probs(targets);
                    prepare_cross_entropy(gpu, x, targets, shape, options, grad)
                }
                Call::Nll {
                    options,
                    shape,
                    targets,
                } => {
                    let options = options.as_cross_entropy();
                    prepare_nll(gpu, x, targets, shape, &options, grad)
                }
                Call::Binary { loss, len, targets } => {
                    prepare_binary(gpu, x, targets, len, loss, grad)
                }
            })
            .await?;
        prepared.binds = Some(binds);
        Ok(prepared)
    }
}
