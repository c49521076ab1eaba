//! [`PreparedLoss`]: a loss (and optionally its gradient) set up once on GPU buffers, recorded
//! into any number of command encoders without allocating, and read back only when asked.

use crate::context::Context;
use crate::error::{Error, Result};
use crate::gpu_buffer;
use crate::loss::launch::{self, Program};
use crate::loss::{Loss, Reduction};
use crate::plan::Grid;
use crate::shaders::Types;
use crate::tensor::{Dtype, GpuTensor};

/// Whether a prepared loss also computes the gradient, and where it goes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum GradMode {
    /// The loss only.
    #[default]
    Off,
    /// The gradient into an f32 buffer xent owns ([`PreparedLoss::grad_buffer`]).
    Separate,
    /// The gradient into a buffer xent owns, in the input's element type (f16 or bf16 inputs
    /// give an f16 or bf16 gradient; the same as `Separate` for f32).
    SeparateAsInput,
    /// The gradient written over the input (logits) in its layout and element type: one
    /// (N, C) buffer instead of two, what large vocabularies need. The input is gone after the
    /// work runs. Categorical cross-entropy only, f32 or f16 logits.
    InPlace,
}

/// A loss prepared on GPU buffers: pipelines compiled, buffers and bind groups created.
///
/// [`record`](Self::record) adds its work to a command encoder (allocating nothing, reading
/// nothing back), so it can run inside a caller's pipeline every step; [`read_loss`](
/// Self::read_loss) and [`read_grad`](Self::read_grad) copy results back when asked.
/// The upstream gradient starts at ones; [`set_upstream`](Self::set_upstream) changes it.
pub struct PreparedLoss {
    ctx: Context,
    program: Program,
    reduction: Reduction,
    loss: wgpu::Buffer,
    loss_len: usize,
    grad: Option<GradOut>,
    upstream: wgpu::Buffer,
    upstream_len: usize,
    labels: Option<LabelStatus>,
}

/// Where a class-index loss's kernel records targets outside [0, C) (shaders/cross_entropy.wgsl
/// and shaders/label_status.wgsl): the count, the first such row and its target.
pub(crate) struct LabelStatus {
    pub(crate) buffer: wgpu::Buffer,
    pub(crate) classes: usize,
    pub(crate) ignore_index: i64,
}

impl LabelStatus {
    /// The status buffer's words: count, 0xffffffff - first row, first target.
    pub(crate) const WORDS: usize = 3;

    /// The error the status words read back (as f32 bits) describe, if any.
    fn check(&self, words: &[f32]) -> Result<()> {
        let bits: Vec<u32> = words.iter().map(|w| w.to_bits()).collect();
        let [count, first, label] = bits[..] else {
            return Err(Error::Readback(format!(
                "the label status came back with {} words",
                bits.len()
            )));
        };
        if count == 0 {
            return Ok(());
        }
        Err(Error::LabelOutOfRange {
            row: (u32::MAX - first) as usize,
            // The kernel reads targets as i32.
            label: i64::from(label as i32),
            count: count as usize,
            classes: self.classes,
            ignore_index: self.ignore_index,
        })
    }
}

/// Where a prepared loss's gradient goes.
struct GradOut {
    buffer: wgpu::Buffer,
    /// Elements.
    len: usize,
    dtype: Dtype,
    /// Whether it is packed from offset 0 (an in-place gradient of a sliced input is not).
    packed: bool,
}

impl GradOut {
    /// An in-place gradient over a sliced input lies in the caller's layout: not read here.
    fn check_packed(&self) -> Result<()> {
        if self.packed {
            return Ok(());
        }
        Err(Error::InvalidOption {
            name: "read_grad",
            value: "an in-place gradient over a sliced input".into(),
            reason: "it lies in your buffer's layout; read that buffer".into(),
        })
    }

    /// The 4-byte words that hold it.
    fn words(&self) -> usize {
        (self.len * self.dtype.size() as usize).div_ceil(4)
    }
}

/// The IEEE half-precision value of `h`.
fn f16_to_f32(h: u16) -> f32 {
    let sign = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exponent = i32::from((h >> 10) & 0x1f);
    let mantissa = f32::from(h & 0x3ff);
    sign * match exponent {
        0 => mantissa * 2f32.powi(-24),
        31 if mantissa == 0.0 => f32::INFINITY,
        31 => f32::NAN,
        e => (1.0 + mantissa / 1024.0) * 2f32.powi(e - 15),
    }
}

/// Decodes `len` values of `dtype` from the words of a buffer read back as f32.
fn decode(words: Vec<f32>, len: usize, dtype: Dtype) -> Vec<f32> {
    let halves = || {
        words
            .iter()
            .flat_map(|w| {
                let bits = w.to_bits();
                [(bits & 0xffff) as u16, (bits >> 16) as u16]
            })
            .take(len)
    };
    match dtype {
        Dtype::F32 => words,
        Dtype::F16 => halves().map(f16_to_f32).collect(),
        Dtype::Bf16 => halves()
            .map(|h| f32::from_bits(u32::from(h) << 16))
            .collect(),
    }
}

/// The buffers a loss kernel binds besides its inputs.
pub(crate) struct LossBuffers {
    /// One loss per item (`Reduction::None`) or a (loss, weight) pair per workgroup.
    pub(crate) stage: wgpu::Buffer,
    /// The upstream gradient (ones to start with; one placeholder value without a gradient).
    pub(crate) upstream: wgpu::Buffer,
    /// What the kernel's gradient binding gets: the gradient buffer, or a placeholder when
    /// there is none or it is written in place.
    pub(crate) grad_binding: wgpu::Buffer,
    /// Element types of the kernel's input and gradient.
    pub(crate) types: Types,
    grad: Option<GradOut>,
    /// Whether `grad_binding` is the gradient (not a placeholder).
    grad_bound: bool,
    /// A bf16 gradient is built with atomic ORs and must start at zero.
    clear_grad: bool,
    upstream_len: usize,
    items: usize,
    reduction: Reduction,
    grid: Grid,
}

impl LossBuffers {
    /// Allocates the buffers of a loss over `items` items (rows or elements) whose kernel runs
    /// on `grid`; the gradient, if any, has `grad_len` values, and `input` is the tensor an
    /// in-place gradient overwrites (and whose element type `SeparateAsInput` takes).
    pub(crate) fn new(
        ctx: &Context,
        reduction: Reduction,
        items: usize,
        grid: Grid,
        mode: GradMode,
        grad_len: usize,
        input: &GpuTensor<'_>,
    ) -> Result<LossBuffers> {
        let grad_dtype = match mode {
            GradMode::Off | GradMode::Separate => Dtype::F32,
            GradMode::SeparateAsInput | GradMode::InPlace => input.dtype,
        };
        if mode == GradMode::InPlace && input.dtype == Dtype::Bf16 {
            return Err(Error::InvalidOption {
                name: "grad",
                value: "GradMode::InPlace over bf16 logits".into(),
                reason: "two threads would write the halves of one word; use SeparateAsInput"
                    .into(),
            });
        }
        let f16 = input.dtype == Dtype::F16 || grad_dtype == Dtype::F16;
        if f16 && !ctx.device().features().contains(wgpu::Features::SHADER_F16) {
            return Err(Error::UnsupportedAdapter {
                adapter: ctx.adapter_info().name.clone(),
                reason: "f16 needs wgpu::Features::SHADER_F16, which this device lacks".into(),
            });
        }
        let types = Types {
            input: input.dtype,
            grad: grad_dtype,
        };
        let stage_len = match reduction {
            Reduction::None => items,
            Reduction::Mean | Reduction::Sum => 2 * grid.groups as usize,
        };
        let stage = gpu_buffer::output(ctx, "xent loss", stage_len)?;
        let upstream_len = match (mode, reduction) {
            (GradMode::Off, _) => 0,
            (_, Reduction::None) => items,
            _ => 1,
        };
        let upstream = gpu_buffer::upload(ctx, "xent upstream", &vec![1.0f32; upstream_len])?;
        let placeholder = || gpu_buffer::output(ctx, "xent gradient placeholder", 1);
        let (grad, grad_binding) = match mode {
            GradMode::Off => (None, placeholder()?),
            GradMode::InPlace => {
                let out = GradOut {
                    buffer: input.buffer.clone(),
                    len: grad_len,
                    dtype: grad_dtype,
                    packed: input.offset == 0 && input.row_stride.is_none(),
                };
                (Some(out), placeholder()?)
            }
            GradMode::Separate | GradMode::SeparateAsInput => {
                let words = (grad_len * grad_dtype.size() as usize).div_ceil(4);
                let buffer = gpu_buffer::output(ctx, "xent gradient", words)?;
                let out = GradOut {
                    buffer: buffer.clone(),
                    len: grad_len,
                    dtype: grad_dtype,
                    packed: true,
                };
                (Some(out), buffer)
            }
        };
        let clear_grad = grad_dtype == Dtype::Bf16 && mode != GradMode::Off;
        Ok(LossBuffers {
            stage,
            upstream,
            grad_binding,
            types,
            grad,
            grad_bound: matches!(mode, GradMode::Separate | GradMode::SeparateAsInput),
            clear_grad,
            upstream_len,
            items,
            reduction,
            grid,
        })
    }

    /// The bytes one item takes in each of these buffers that is cut into chunks (see
    /// [`crate::plan::chunks`]), with `grad_per_item` gradient values per item.
    pub(crate) fn item_bytes(&self, grad_per_item: usize) -> Vec<u64> {
        let mut bytes = Vec::new();
        if self.reduction == Reduction::None {
            bytes.push(4);
        }
        if self.upstream_len == self.items && self.items > 0 {
            bytes.push(4);
        }
        if self.grad_bound {
            bytes.push(self.types.grad.size() * grad_per_item as u64);
        }
        bytes
    }

    /// The bindings of the loss, upstream gradient and gradient for the chunk `items` of
    /// the items, with `grad_per_item` gradient values per item: windows over the chunk's
    /// part of what is per item, the whole buffer otherwise (pairs, scalars, placeholders).
    /// Chunks from [`crate::plan::chunks`] with [`item_bytes`](Self::item_bytes) as the owned
    /// bytes start where every window is aligned.
    pub(crate) fn chunk(
        &self,
        items: std::ops::Range<usize>,
        grad_per_item: usize,
    ) -> [wgpu::BufferBinding<'_>; 3] {
        let part = |buffer, per_item| part_of(buffer, &items, per_item);
        let out = match self.reduction {
            Reduction::None => part(&self.stage, 4),
            Reduction::Mean | Reduction::Sum => self.stage.as_entire_buffer_binding(),
        };
        let upstream = if self.upstream_len == self.items && self.items > 0 {
            part(&self.upstream, 4)
        } else {
            self.upstream.as_entire_buffer_binding()
        };
        let grad = if self.grad_bound {
            part(
                &self.grad_binding,
                self.types.grad.size() * grad_per_item as u64,
            )
        } else {
            self.grad_binding.as_entire_buffer_binding()
        };
        [out, upstream, grad]
    }

    /// A program to push the loss's dispatches to: it starts by clearing a bf16 gradient.
    pub(crate) fn program(&self) -> Program {
        let mut program = Program::default();
        if self.clear_grad {
            program.clear(&self.grad_binding);
        }
        program
    }

    /// Adds the batch reduction (for `Mean` and `Sum`) and wraps everything up.
    pub(crate) fn finish(self, ctx: &Context, mut program: Program) -> Result<PreparedLoss> {
        let (loss, loss_len) = match self.reduction {
            Reduction::None => (self.stage, self.items),
            Reduction::Mean | Reduction::Sum => {
                let mean = self.reduction == Reduction::Mean;
                let groups = self.grid.groups as usize;
                let out = launch::reduce_pairs(ctx, &mut program, self.stage, groups, mean, None)?;
                (out, 1)
            }
        };
        Ok(PreparedLoss {
            ctx: ctx.clone(),
            program,
            reduction: self.reduction,
            loss,
            loss_len,
            grad: self.grad,
            upstream: self.upstream,
            upstream_len: self.upstream_len,
            labels: None,
        })
    }
}

/// The binding of the part of `buffer` that holds `items`, `per_item` bytes each.
fn part_of<'b>(
    buffer: &'b wgpu::Buffer,
    items: &std::ops::Range<usize>,
    per_item: u64,
) -> wgpu::BufferBinding<'b> {
    let start = items.start as u64 * per_item;
    let len = (items.len() as u64 * per_item).max(4).next_multiple_of(4);
    wgpu::BufferBinding {
        buffer,
        offset: start,
        size: wgpu::BufferSize::new(len.min(buffer.size() - start)),
    }
}

/// A host call's input buffers and prepared loss, kept so that the next call of the same shape
/// and options reuses them: it only uploads its data, records and reads back.
pub(crate) struct HostCall {
    /// The bits of the option values baked into the prepared loss (weights), compared exactly.
    options: Vec<u32>,
    inputs: Vec<wgpu::Buffer>,
    prepared: PreparedLoss,
    bytes: u64,
}

impl HostCall {
    /// The bytes of its inputs and outputs.
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }
}

/// The key of a host call: its shape and scalar options (reuse needs equal keys) and the bits
/// of its weight vectors (compared exactly, so a reused call never has other weights).
pub(crate) struct HostKey {
    /// Loss, shape, gradient mode, scalar options and tuning, as text.
    pub(crate) shape: String,
    /// Bits of every weight vector.
    pub(crate) options: Vec<u32>,
}

impl HostKey {
    /// A key from its text and the weight vectors the prepared loss holds.
    pub(crate) fn new(shape: String, weights: &[Option<&[f32]>]) -> HostKey {
        let options = weights
            .iter()
            .flat_map(|w| w.unwrap_or(&[]).iter().map(|v| v.to_bits()))
            .collect();
        HostKey { shape, options }
    }
}

/// Host calls larger than this (inputs and outputs) are not kept: their GPU memory is freed.
const HOST_CALL_MAX_BYTES: u64 = 64 << 20;
/// Kept host calls of one shape (one per thread calling at once).
const HOST_CALLS_PER_SHAPE: usize = 4;
/// Shapes whose host calls are kept.
const HOST_CALL_SHAPES: usize = 32;

impl Context {
    /// The host path of every loss, in one submission: inside error scopes, upload `inputs`
    /// (reusing the buffers and prepared loss of an earlier call with an equal `key` when one
    /// is free, else creating them with `prepare` on new buffers), set the upstream gradient, record, copy the
    /// loss and gradient out and read them back.
    pub(crate) fn run_host(
        &self,
        key: HostKey,
        inputs: &[(&'static str, &[u8])],
        upstream: Option<&[f32]>,
        prepare: impl FnOnce(&[wgpu::Buffer]) -> Result<PreparedLoss>,
    ) -> Result<(Loss, Option<Vec<f32>>)> {
        self.checked(|| {
            let reused = self.host_calls().get_mut(&key.shape).and_then(|calls| {
                let at = calls.iter().position(|c| c.options == key.options)?;
                Some(calls.swap_remove(at))
            });
            let call = match reused {
                Some(call) => {
                    for (buffer, (_, data)) in call.inputs.iter().zip(inputs) {
                        if !data.is_empty() {
                            self.queue().write_buffer(buffer, 0, data);
                        }
                    }
                    call
                }
                None => {
                    let buffers = inputs
                        .iter()
                        .map(|(what, data)| gpu_buffer::upload(self, what, data))
                        .collect::<Result<Vec<_>>>()?;
                    let prepared = prepare(&buffers)?;
                    let outputs =
                        prepared.loss_len + prepared.grad.as_ref().map_or(0, GradOut::words);
                    let bytes = inputs.iter().map(|(_, d)| d.len() as u64).sum::<u64>()
                        + 4 * outputs as u64;
                    HostCall {
                        options: key.options,
                        inputs: buffers,
                        prepared,
                        bytes,
                    }
                }
            };
            let prepared = &call.prepared;
            if let Some(upstream) = upstream {
                prepared.set_upstream(upstream)?;
            }
            let mut encoder =
                self.device()
                    .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                        label: Some("xent"),
                    });
            prepared.record(&mut encoder);
            let mut sources = vec![(&prepared.loss, prepared.loss_len)];
            if let Some(grad) = &prepared.grad {
                sources.push((&grad.buffer, grad.words()));
            }
            let sources = prepared.with_status(sources);
            let values = self.submit_and_read(encoder, &sources)?;
            let mut values = prepared.checked_values(values)?.into_iter();
            let loss = prepared.loss_from(values.next().unwrap_or_default());
            let grad = match (&prepared.grad, values.next()) {
                (Some(g), Some(words)) => Some(decode(words, g.len, g.dtype)),
                _ => None,
            };
            self.keep_host_call(key.shape, call);
            Ok((loss, grad))
        })
    }

    /// Keeps a finished host call for reuse, within the cache's bounds.
    fn keep_host_call(&self, key: String, call: HostCall) {
        if call.bytes > HOST_CALL_MAX_BYTES {
            return;
        }
        let mut calls = self.host_calls();
        if calls.len() >= HOST_CALL_SHAPES && !calls.contains_key(&key) {
            return;
        }
        let kept = calls.entry(key).or_default();
        if kept.len() < HOST_CALLS_PER_SHAPE {
            kept.push(call);
        }
    }
}

impl PreparedLoss {
    /// Records the loss (and gradient) kernels into `encoder`, as one compute pass.
    pub fn record(&self, encoder: &mut wgpu::CommandEncoder) {
        self.program.record(encoder);
    }

    /// Records, submits and waits for the work (a convenience for callers without their own
    /// encoder).
    pub fn run(&self) -> Result<()> {
        self.ctx.checked(|| {
            let mut encoder =
                self.ctx
                    .device()
                    .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                        label: Some("xent"),
                    });
            self.record(&mut encoder);
            self.ctx.submit_and_wait(encoder.finish())
        })
    }

    /// The f32 loss buffer: one value for `Mean` and `Sum`, one per row or element for `None`.
    pub fn loss_buffer(&self) -> &wgpu::Buffer {
        &self.loss
    }

    /// The gradient buffer (the input's shape; f32, or the input's type for
    /// [`GradMode::SeparateAsInput`]), or `None` without a gradient. For [`GradMode::InPlace`]
    /// it is the input buffer.
    pub fn grad_buffer(&self) -> Option<&wgpu::Buffer> {
        self.grad.as_ref().map(|g| &g.buffer)
    }

    /// Sets the upstream gradient the gradient is scaled by: one value for `Mean` and `Sum`,
    /// one per row (categorical) or element (binary) for `None`. Written through the queue, so
    /// it takes effect for work submitted afterwards.
    pub fn set_upstream(&self, upstream: &[f32]) -> Result<()> {
        if self.grad.is_none() {
            return Err(Error::InvalidOption {
                name: "upstream",
                value: format!("{} values", upstream.len()),
                reason: "this loss was prepared without a gradient (GradMode::Off)".into(),
            });
        }
        if upstream.len() != self.upstream_len {
            return Err(Error::ShapeMismatch {
                what: "upstream",
                expected: self.upstream_len,
                got: upstream.len(),
                hint: format!("the upstream gradient of a {:?} loss", self.reduction),
            });
        }
        self.ctx.checked(|| {
            self.ctx
                .queue()
                .write_buffer(&self.upstream, 0, bytemuck::cast_slice(upstream));
            Ok(())
        })
    }

    /// Reads the loss back without blocking: the future resolves once the GPU has finished
    /// the work submitted before the call. On the web the browser drives it; natively each poll
    /// of the future polls the device without waiting (so an executor re-polls it until the GPU
    /// is done). [`read_loss`](Self::read_loss) is the blocking form.
    pub async fn read_loss_async(&self) -> Result<Loss> {
        let sources = self.with_status(vec![(&self.loss, self.loss_len)]);
        let values = self.ctx.read_async(&sources).await?;
        Ok(self.loss_from(self.checked_values(values)?.remove(0)))
    }

    /// Reads the gradient back without blocking (see [`read_loss_async`](Self::read_loss_async)
    /// and [`read_grad`](Self::read_grad)).
    pub async fn read_grad_async(&self) -> Result<Option<Vec<f32>>> {
        let Some(grad) = &self.grad else {
            return Ok(None);
        };
        grad.check_packed()?;
        let sources = self.with_status(vec![(&grad.buffer, grad.words())]);
        let values = self.ctx.read_async(&sources).await?;
        let words = self.checked_values(values)?.remove(0);
        Ok(Some(decode(words, grad.len, grad.dtype)))
    }

    /// Reads the loss back (waits for submitted work).
    ///
    /// For class-index cross-entropy on GPU targets, a target outside [0, C) that is not
    /// `ignore_index` in the last recorded run gives [`Error::LabelOutOfRange`] (with the
    /// count, and the first such row and target) instead of a loss.
    pub fn read_loss(&self) -> Result<Loss> {
        let sources = self.with_status(vec![(&self.loss, self.loss_len)]);
        let values = self.checked_values(self.ctx.checked(|| self.ctx.read(&sources))?)?;
        Ok(self.loss_from(values.into_iter().next().unwrap_or_default()))
    }

    /// Checks the targets of the last recorded run of a class-index cross-entropy (waits for
    /// submitted work; reads back 12 bytes): [`Error::LabelOutOfRange`] if a target was
    /// outside [0, C) and not `ignore_index`. For callers who never read the loss back; `Ok`
    /// at once for the other losses, whose targets cannot be out of range.
    ///
    /// Every record clears the status first, so it describes the last recorded run.
    pub fn check_labels(&self) -> Result<()> {
        if self.labels.is_none() {
            return Ok(());
        }
        let sources = self.with_status(Vec::new());
        let values = self.ctx.checked(|| self.ctx.read(&sources))?;
        self.checked_values(values).map(|_| ())
    }

    /// `sources` followed by the label status, if this loss has one.
    fn with_status<'b>(
        &'b self,
        mut sources: Vec<(&'b wgpu::Buffer, usize)>,
    ) -> Vec<(&'b wgpu::Buffer, usize)> {
        if let Some(labels) = &self.labels {
            sources.push((&labels.buffer, LabelStatus::WORDS));
        }
        sources
    }

    /// The values read for [`with_status`](Self::with_status) sources, without the status;
    /// an error if the status records an out-of-range target.
    fn checked_values(&self, mut values: Vec<Vec<f32>>) -> Result<Vec<Vec<f32>>> {
        if let Some(labels) = &self.labels {
            let status = values.pop().unwrap_or_default();
            labels.check(&status)?;
        }
        Ok(values)
    }

    /// Makes the loss report the targets its kernel records in `status`.
    pub(crate) fn watch_labels(mut self, status: LabelStatus) -> PreparedLoss {
        self.labels = Some(status);
        self
    }

    /// The loss from the values of its buffer.
    fn loss_from(&self, values: Vec<f32>) -> Loss {
        match self.reduction {
            Reduction::None => Loss::Unreduced(values),
            Reduction::Mean | Reduction::Sum => {
                Loss::Reduced(values.first().copied().unwrap_or(f32::NAN))
            }
        }
    }

    /// Reads the gradient back (waits for submitted work); `None` without a gradient. A
    /// recorded out-of-range target is an error, as for [`read_loss`](Self::read_loss).
    /// f16 and bf16 gradients are converted to f32. An in-place gradient over a sliced input
    /// (an offset or a row stride) is in the caller's buffer, in the caller's layout: read it
    /// there (this returns an error).
    pub fn read_grad(&self) -> Result<Option<Vec<f32>>> {
        let Some(grad) = &self.grad else {
            return Ok(None);
        };
        grad.check_packed()?;
        let sources = self.with_status(vec![(&grad.buffer, grad.words())]);
        let values = self.ctx.checked(|| self.ctx.read(&sources))?;
        let words = self.checked_values(values)?.remove(0);
        Ok(Some(decode(words, grad.len, grad.dtype)))
    }
}
