//! [`PreparedLoss`]: a loss (and optionally its gradient) set up once on GPU buffers, recorded
//! into any number of command encoders without allocating, and read back only when asked.

use crate::dtype::Dtype;
use crate::error::{Error, Operation, Result};
use crate::gpu::buffers::upload;
use crate::gpu::program::Program;
use crate::gpu::readback::Source;
use crate::gpu::Gpu;
use crate::loss::{Loss, Reduction};

/// The running of a prepared form that wraps a [`PreparedLoss`] in its field `inner`
/// (`record`, `run_async`, `run`), in an impl block of its own.
macro_rules! runs_its_inner_loss {
    ($t:ty) => {
        impl $t {
            /// Records the work into `encoder`. Reads return the results of the last recorded
            /// work once it has run, and [`Error::NotRun`](crate::Error::NotRun) until then.
            pub fn record(&self, encoder: &mut wgpu::CommandEncoder) {
                self.inner.record(encoder);
            }

            /// Records and submits the work, and resolves once the GPU has finished it.
            pub async fn run_async(&self) -> crate::Result<()> {
                self.inner.run_async().await
            }

            /// Records, submits and waits for the work.
            #[cfg(not(target_arch = "wasm32"))]
            pub fn run(&self) -> crate::Result<()> {
                self.inner.run()
            }
        }
    };
}
pub(crate) use runs_its_inner_loss;

/// A loss prepared on GPU buffers: pipelines compiled, buffers and bind groups created.
///
/// [`record`](Self::record) adds its work to a command encoder (allocating nothing, reading
/// nothing back), so it can run inside a caller's pipeline every step; [`read_loss`](
/// Self::read_loss) and [`read_grad`](Self::read_grad) copy results back when asked.
/// The upstream gradient starts at ones; [`set_upstream`](Self::set_upstream) changes it.
///
/// ```
/// use xent::wgpu::{self, util::DeviceExt};
/// use xent::{BinaryCrossEntropyWithLogits, Context, GpuInput, GpuTargets, GradMode, Reduction};
///
/// let ctx = Context::new()?;
/// let buffer = |values: &[f32]| {
///     ctx.device().create_buffer_init(&wgpu::util::BufferInitDescriptor {
///         label: None,
///         contents: xent::bytemuck::cast_slice(values),
///         usage: wgpu::BufferUsages::STORAGE,
///     })
/// };
/// let (x, t) = (buffer(&[0.0, 2.0, -3.0]), buffer(&[1.0, 0.0, 1.0]));
/// let loss = BinaryCrossEntropyWithLogits { reduction: Reduction::Sum, ..Default::default() };
/// let input = GpuInput::new(&x, [3]).with_grad(GradMode::Separate);
/// let prepared = ctx.prepare(&loss, input, GpuTargets::values(&t))?;
/// prepared.set_upstream(&[2.0])?; // dL/d(loss), e.g. a loss scale
/// // Every step: record into your own encoder (here alone), submit, read only when you want.
/// for _ in 0..3 {
///     let mut encoder = ctx.device().create_command_encoder(&Default::default());
///     prepared.record(&mut encoder);
///     ctx.queue().submit([encoder.finish()]);
/// }
/// // dL/dx = 2 (sigmoid(x) - t); at x = 0, t = 1 that is -1.
/// let grad = prepared.read_grad()?.unwrap();
/// assert!((grad[0] + 1.0).abs() < 1e-6);
/// # Ok::<(), xent::Error>(())
/// ```
pub struct PreparedLoss {
    pub(crate) gpu: Gpu,
    pub(crate) program: Program,
    pub(crate) reduction: Reduction,
    pub(crate) loss: wgpu::Buffer,
    /// The byte offset of the loss in `loss` (0 but in a caller's buffer).
    pub(crate) loss_at: u64,
    pub(crate) loss_len: usize,
    pub(crate) grad: Option<GradOut>,
    pub(crate) upstream: wgpu::Buffer,
    pub(crate) upstream_len: usize,
    /// Cross-entropy's per-row log-sum-exp ([`crate::CrossEntropy::return_lse`]) and its
    /// length.
    pub(crate) lse: Option<(wgpu::Buffer, usize)>,
    pub(crate) status: Option<TargetStatus>,
    pub(crate) stamp: RunStamp,
    /// The caller's tensors it was prepared on, for [`bind`](Self::bind); `None` for work
    /// that does not re-bind.
    pub(crate) binds: Option<crate::loss::bound::Binds>,
}

/// How a read knows that the loss's buffers hold its last recorded run: each record ends by
/// copying a stamp of its own (its sequence number modulo [`RunStamp::STAMPS`], plus one) into
/// a word that reads read back with the results. The copy is in the recorded work, so the word
/// changes only when that work runs; a rejected or missing submission leaves an older stamp
/// (or 0, never run), which a read refuses. The stamps are a constant buffer made at prepare
/// time, so a record allocates nothing and writes nothing through the queue.
pub(crate) struct RunStamp {
    /// The stamps 1..=STAMPS, one u32 each.
    stamps: wgpu::Buffer,
    /// The stamp of the last run that ran on the GPU (0 before any).
    last: wgpu::Buffer,
    /// How many times the work was recorded.
    recorded: std::sync::atomic::AtomicU64,
}

impl RunStamp {
    /// Distinct stamps: a stale word passes for the current one only if a multiple of this
    /// many recorded runs in a row never ran.
    const STAMPS: u64 = 4096;

    /// The stamp buffers of a new prepared loss.
    pub(crate) fn new(gpu: &Gpu) -> Result<RunStamp> {
        let stamps: Vec<u32> = (1..=Self::STAMPS as u32).collect();
        Ok(RunStamp {
            stamps: upload(gpu, "run stamps", &stamps)?,
            last: upload(gpu, "last run stamp", &[0u32])?,
            recorded: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// Records the copy of the next stamp into `last`.
    fn record(&self, encoder: &mut wgpu::CommandEncoder) {
        let n = self
            .recorded
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        encoder.copy_buffer_to_buffer(&self.stamps, 4 * (n % Self::STAMPS), &self.last, 0, 4);
    }

    /// `Ok` when `word` (the `last` buffer read back as f32 bits) is the stamp of the last
    /// recorded run.
    fn check(&self, what: &'static str, word: f32) -> Result<()> {
        let recorded = self.recorded.load(std::sync::atomic::Ordering::SeqCst);
        let got = u64::from(word.to_bits());
        if recorded == 0 {
            return Err(Error::NotRun {
                what,
                reason: "nothing was recorded yet (record and submit the work, or run it)".into(),
            });
        }
        let expected = (recorded - 1) % Self::STAMPS + 1;
        if got == expected {
            return Ok(());
        }
        Err(Error::NotRun {
            what,
            reason: format!(
                "it was recorded {recorded} times, but the last recorded work has not run on the GPU ({}): was its submission rejected, or not made before the read?",
                match got {
                    0 => "no recorded work has run".to_string(),
                    _ => "an earlier one has".to_string(),
                }
            ),
        })
    }
}

/// Where a loss's kernel records targets it cannot use, for reads to report: class indices
/// outside [0, C) (shaders/cross_entropy.wgsl and shaders/label_status.wgsl), or binary
/// probabilities and targets outside [0, 1] (shaders/common/elementwise_loss.wgsl).
pub(crate) struct TargetStatus {
    pub(crate) buffer: wgpu::Buffer,
    pub(crate) kind: StatusKind,
}

/// What a [`TargetStatus`] records, and how its words read.
pub(crate) enum StatusKind {
    /// Words: count, 0xffffffff - first row, that row's target.
    Labels { classes: usize, ignore_index: i64 },
    /// Words: count of targets outside [0, 1], 0xffffffff - first such element, then the same
    /// for input probabilities (BCE on probabilities only).
    UnitInterval,
    /// Words: count of targets that are not finite, 0xffffffff - first such element (BCE with
    /// logits).
    Finite,
}

impl StatusKind {
    /// The status buffer's length in u32 words.
    pub(crate) fn words(&self) -> usize {
        match self {
            StatusKind::Labels { .. } => 3,
            StatusKind::UnitInterval => 4,
            StatusKind::Finite => 2,
        }
    }
}

impl TargetStatus {
    /// A zeroed status of `kind` (programs clear it again before each run).
    pub(crate) fn new(gpu: &Gpu, kind: StatusKind) -> Result<TargetStatus> {
        let buffer = upload(gpu, "xent target status", &vec![0u32; kind.words()])?;
        Ok(TargetStatus { buffer, kind })
    }

    /// The error the status words read back (as f32 bits) describe, if any.
    fn check(&self, words: &[f32]) -> Result<()> {
        let bits: Vec<u32> = words.iter().map(|w| w.to_bits()).collect();
        if bits.len() != self.kind.words() {
            return Err(Error::Readback(format!(
                "the target status came back with {} words",
                bits.len()
            )));
        }
        match self.kind {
            StatusKind::Labels {
                classes,
                ignore_index,
            } => match bits[..] {
                [count, first, label] if count > 0 => Err(Error::LabelOutOfRange {
                    row: (u32::MAX - first) as usize,
                    // The kernel reads targets as i32.
                    label: i64::from(label as i32),
                    count: count as usize,
                    classes,
                    ignore_index,
                }),
                _ => Ok(()),
            },
            // As on the host, the input is named before the targets.
            StatusKind::UnitInterval => [("input probability", 2), ("target", 0)]
                .into_iter()
                .find(|&(_, word)| bits[word] > 0)
                .map_or(Ok(()), |(what, word)| {
                    Err(Error::ProbabilityOutOfRange {
                        what,
                        index: (u32::MAX - bits[word + 1]) as usize,
                        value: None,
                        count: bits[word] as usize,
                    })
                }),
            StatusKind::Finite => match bits[..] {
                [count, first] if count > 0 => Err(Error::NonFiniteTarget {
                    index: (u32::MAX - first) as usize,
                    value: None,
                    count: count as usize,
                }),
                _ => Ok(()),
            },
        }
    }
}

/// Where a prepared loss's gradient goes.
pub(crate) struct GradOut {
    pub(crate) buffer: wgpu::Buffer,
    /// The byte offset of its first element (0 but in a caller's buffer).
    pub(crate) offset: u64,
    /// Elements.
    pub(crate) len: usize,
    pub(crate) dtype: Dtype,
    /// Whether it is packed from offset 0 (an in-place gradient of a sliced input is not).
    pub(crate) packed: bool,
}

impl GradOut {
    /// An in-place gradient over a sliced input lies in the caller's layout: not read here.
    fn check_packed(&self) -> Result<()> {
        if self.packed {
            return Ok(());
        }
        Err(Error::Misuse {
            what: "read_grad",
            reason: "an in-place gradient over a sliced input lies in your buffer's layout; \
                     read that buffer"
                .into(),
        })
    }

    /// Reading copies the gradient out of its buffer: an in-place gradient lies in the
    /// caller's logits, which then need `COPY_SRC` (xent's own gradient buffers have it).
    fn check_copyable(&self) -> Result<()> {
        if self.buffer.usage().contains(wgpu::BufferUsages::COPY_SRC) {
            return Ok(());
        }
        Err(Error::BufferUsage {
            what: "logits",
            needed: "COPY_SRC",
            why: "read_grad needs to copy an in-place gradient out of it",
        })
    }

    /// The 4-byte words that hold it.
    pub(crate) fn words(&self) -> usize {
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
pub(crate) fn decode(words: Vec<f32>, len: usize, dtype: Dtype) -> Vec<f32> {
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

impl PreparedLoss {
    /// Records the loss (and gradient) kernels into `encoder`, as one compute pass.
    ///
    /// Reads return the results of the last recorded work once it has run, and
    /// [`Error::NotRun`] until then (for instance when the submission holding it was rejected),
    /// never an earlier run's values.
    pub fn record(&self, encoder: &mut wgpu::CommandEncoder) {
        self.program.record(encoder);
        self.stamp.record(encoder);
    }

    /// Records and submits the work, and resolves once the GPU has finished it (a convenience
    /// for callers without their own encoder). [`run`](Self::run) is the blocking form. Long
    /// work (fused linear cross-entropy's blocks) goes in several submissions, each awaited
    /// before the next.
    pub async fn run_async(&self) -> Result<()> {
        for piece in 0..self.program.pieces() {
            self.submit(piece).await?;
            self.gpu.work_done().await?;
        }
        Ok(())
    }

    /// Records, submits and waits for the work (in pieces, as
    /// [`run_async`](Self::run_async)).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn run(&self) -> Result<()> {
        for piece in 0..self.program.pieces() {
            let index = self.gpu.block_on(self.submit(piece))?;
            self.gpu.wait_for(index)?;
        }
        Ok(())
    }

    /// Records piece `piece` of the work into an encoder of its own (the last with the run's
    /// stamp) and submits it, inside error scopes.
    async fn submit(&self, piece: usize) -> Result<wgpu::SubmissionIndex> {
        let last = piece + 1 == self.program.pieces();
        self.gpu
            .checked(Operation::Run, || {
                let mut encoder =
                    self.gpu
                        .device()
                        .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                            label: Some("xent"),
                        });
                self.program.record_piece(&mut encoder, piece);
                if last {
                    self.stamp.record(&mut encoder);
                }
                Ok(self.gpu.queue().submit([encoder.finish()]))
            })
            .await
    }

    /// The f32 loss buffer: one value for `Mean` and `Sum`, one per row or element for `None`.
    pub fn loss_buffer(&self) -> &wgpu::Buffer {
        &self.loss
    }

    /// The gradient buffer (the input's shape; f32, or the input's type for
    /// [`GradMode::SeparateAsInput`](crate::GradMode::SeparateAsInput)), or `None` without a gradient. For [`GradMode::InPlace`](crate::GradMode::InPlace)
    /// it is the input buffer.
    pub fn grad_buffer(&self) -> Option<&wgpu::Buffer> {
        self.grad.as_ref().map(|g| &g.buffer)
    }

    /// The f32 buffer of per-row log-sum-exp values (one per row, or per position of a
    /// K-dimensional input, ignored ones included) of a cross-entropy prepared with
    /// [`CrossEntropy::return_lse`](crate::CrossEntropy::return_lse); `None` otherwise.
    pub fn lse_buffer(&self) -> Option<&wgpu::Buffer> {
        self.lse.as_ref().map(|(buffer, _)| buffer)
    }

    /// Sets the upstream gradient the gradient is scaled by: one value for `Mean` and `Sum`,
    /// one per row (categorical) or element (binary) for `None`. Written through the queue, so
    /// it takes effect for work submitted afterwards.
    pub fn set_upstream(&self, upstream: &[f32]) -> Result<()> {
        if self.grad.is_none() {
            return Err(Error::Misuse {
                what: "set_upstream",
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
        self.gpu
            .write_buffer(&self.upstream, bytemuck::cast_slice(upstream))
    }

    /// Reads the loss back without blocking: the future resolves once the GPU has finished
    /// the work submitted before the call. On the web the browser drives it; natively each poll
    /// of the future polls the device without waiting (so an executor re-polls it until the GPU
    /// is done). [`read_loss`](Self::read_loss) is the blocking form.
    ///
    /// For class-index cross-entropy on GPU targets, a target outside [0, C) that is not
    /// `ignore_index` in the last recorded run gives [`Error::LabelOutOfRange`] (with the
    /// count, and the first such row and target) instead of a loss.
    pub async fn read_loss_async(&self) -> Result<Loss> {
        let values = self
            .read("read_loss", Some((&self.loss, self.loss_at, self.loss_len)))
            .await?;
        Ok(self.loss_from(values.into_iter().next().unwrap_or_default()))
    }

    /// Reads the loss back (waits for submitted work); see
    /// [`read_loss_async`](Self::read_loss_async).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn read_loss(&self) -> Result<Loss> {
        self.gpu.block_on(self.read_loss_async())
    }

    /// Reads the gradient back without blocking (see [`read_loss_async`](Self::read_loss_async));
    /// `None` without a gradient. A recorded out-of-range target is an error, as for the
    /// loss. f16 and bf16 gradients are converted to f32. An in-place gradient over a sliced
    /// input (an offset or a row stride) is in the caller's buffer, in the caller's layout:
    /// read it there (this returns an error).
    pub async fn read_grad_async(&self) -> Result<Option<Vec<f32>>> {
        let Some(grad) = &self.grad else {
            return Ok(None);
        };
        grad.check_packed()?;
        grad.check_copyable()?;
        let values = self
            .read("read_grad", Some((&grad.buffer, grad.offset, grad.words())))
            .await?;
        let words = values.into_iter().next().unwrap_or_default();
        Ok(Some(decode(words, grad.len, grad.dtype)))
    }

    /// Reads the gradient back (waits for submitted work); see
    /// [`read_grad_async`](Self::read_grad_async).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn read_grad(&self) -> Result<Option<Vec<f32>>> {
        self.gpu.block_on(self.read_grad_async())
    }

    /// Reads the per-row log-sum-exp back without blocking (see
    /// [`read_loss_async`](Self::read_loss_async)); `None` unless the loss was prepared with
    /// [`CrossEntropy::return_lse`](crate::CrossEntropy::return_lse). A recorded out-of-range
    /// target is an error, as for the loss.
    pub async fn read_lse_async(&self) -> Result<Option<Vec<f32>>> {
        let Some((buffer, len)) = &self.lse else {
            return Ok(None);
        };
        let values = self.read("read_lse", Some((buffer, 0, *len))).await?;
        Ok(Some(values.into_iter().next().unwrap_or_default()))
    }

    /// Reads the per-row log-sum-exp back (waits for submitted work); see
    /// [`read_lse_async`](Self::read_lse_async).
    ///
    /// ```
    /// use xent::wgpu::{self, util::DeviceExt};
    /// use xent::{Context, CrossEntropy, GpuInput, GpuTargets};
    ///
    /// let ctx = Context::new()?;
    /// let buffer = |contents: &[u8]| {
    ///     ctx.device().create_buffer_init(&wgpu::util::BufferInitDescriptor {
    ///         label: None,
    ///         contents,
    ///         usage: wgpu::BufferUsages::STORAGE,
    ///     })
    /// };
    /// let logits = buffer(xent::bytemuck::cast_slice(&[0.0f32, 0.0, 1.0, 1.0]));
    /// let labels = buffer(xent::bytemuck::cast_slice(&[0i32, 1]));
    /// let loss = CrossEntropy { return_lse: true, ..Default::default() };
    /// let prepared = ctx.prepare(&loss, GpuInput::new(&logits, [2, 2]), GpuTargets::indices(&labels))?;
    /// prepared.run()?;
    /// let lse = prepared.read_lse()?.unwrap();
    /// // log(e^0 + e^0) = ln 2, log(e^1 + e^1) = 1 + ln 2
    /// assert!((lse[0] - 2f32.ln()).abs() < 1e-6 && (lse[1] - 1.0 - 2f32.ln()).abs() < 1e-6);
    /// # Ok::<(), xent::Error>(())
    /// ```
    #[cfg(not(target_arch = "wasm32"))]
    pub fn read_lse(&self) -> Result<Option<Vec<f32>>> {
        self.gpu.block_on(self.read_lse_async())
    }

    /// Checks the targets of the last recorded run without blocking (reads back 16 bytes):
    /// [`Error::LabelOutOfRange`] if a class index was outside [0, C) and not `ignore_index`,
    /// [`Error::ProbabilityOutOfRange`] if a target of BCE or the focal loss (or a probability
    /// of [`BinaryCrossEntropy`](crate::BinaryCrossEntropy)) was outside [0, 1] or NaN,
    /// [`Error::NonFiniteTarget`] if a target of BCE with logits was infinite or NaN. For
    /// callers who never read the loss back; `Ok` at once for the losses whose targets cannot
    /// be out of range (probability targets and log-softmax).
    ///
    /// Every record clears the status first, so it describes the last recorded run.
    pub async fn check_targets_async(&self) -> Result<()> {
        if self.status.is_none() {
            return Ok(());
        }
        self.read("check_targets", None).await.map(|_| ())
    }

    /// [`check_targets_async`](Self::check_targets_async), waiting for submitted work.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn check_targets(&self) -> Result<()> {
        self.gpu.block_on(self.check_targets_async())
    }

    /// Reads `source` (and the target status, if this loss has one) back; an error if the
    /// status records an out-of-range target.
    async fn read(&self, what: &'static str, source: Option<Source<'_>>) -> Result<Vec<Vec<f32>>> {
        self.read_sources(what, source.into_iter().collect()).await
    }

    /// Reads `sources` (and the target status, if this loss has one) back in one copy; an
    /// error if the status records an out-of-range target.
    pub(crate) async fn read_sources(
        &self,
        what: &'static str,
        mut sources: Vec<Source<'_>>,
    ) -> Result<Vec<Vec<f32>>> {
        if let Some(status) = &self.status {
            sources.push((&status.buffer, 0, status.kind.words()));
        }
        sources.push((&self.stamp.last, 0, 1));
        let readback = self
            .gpu
            .checked(Operation::Read, || Ok(self.gpu.read(&sources)))
            .await?;
        let mut values = readback.values().await?;
        let stamp = values.pop().unwrap_or_default();
        self.stamp
            .check(what, stamp.first().copied().unwrap_or_default())?;
        self.checked_values(values)
    }

    /// The values read for a loss's sources followed by its target status, without the status;
    /// an error if the status records an out-of-range target.
    pub(crate) fn checked_values(&self, mut values: Vec<Vec<f32>>) -> Result<Vec<Vec<f32>>> {
        if let Some(status) = &self.status {
            status.check(&values.pop().unwrap_or_default())?;
        }
        Ok(values)
    }

    /// The buffers a host call reads back after recording this loss: the loss, the gradient
    /// if any, the log-sum-exp if any, then the target status if any.
    pub(crate) fn outputs(&self) -> Vec<Source<'_>> {
        let mut sources = vec![(&self.loss, self.loss_at, self.loss_len)];
        if let Some(grad) = &self.grad {
            sources.push((&grad.buffer, grad.offset, grad.words()));
        }
        if let Some((buffer, len)) = &self.lse {
            sources.push((buffer, 0, *len));
        }
        if let Some(status) = &self.status {
            sources.push((&status.buffer, 0, status.kind.words()));
        }
        sources
    }

    /// Makes the loss report the targets its kernel records in `status`.
    pub(crate) fn watch(mut self, status: TargetStatus) -> PreparedLoss {
        self.status = Some(status);
        self
    }

    /// The loss from the values of its buffer.
    pub(crate) fn loss_from(&self, values: Vec<f32>) -> Loss {
        match self.reduction {
            Reduction::None => Loss::Unreduced(values),
            Reduction::Mean | Reduction::Sum => {
                Loss::Reduced(values.first().copied().unwrap_or(f32::NAN))
            }
        }
    }
}
