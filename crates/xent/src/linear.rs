//! Fused linear cross-entropy on a [`Context`]: the host form
//! ([`Context::linear_cross_entropy`]) and the GPU form on the caller's buffers
//! ([`Context::prepare_linear`], [`PreparedLinear`]). The blocks and kernels are in
//! `kernels::linear`.

use crate::context::Context;
use crate::error::{Error, Operation, Result};
use crate::gpu::buffers;
use crate::gpu::tensor::GpuTensor;
use crate::kernels::cross_entropy::gpu_labels;
use crate::kernels::linear::{prepare_linear, LinearGrads, LinearTensors};
use crate::loss::linear::{check, check_options, LinearShape};
use crate::loss::{CrossEntropy, LinearCrossEntropy, LinearInput, LinearOutput, Loss, Targets};
use crate::prepared::{decode, GradOut, PreparedLoss};

/// The inputs of [`LinearCrossEntropy`] in the caller's GPU buffers: hidden states (N, D) and
/// classifier (V, D) as [`GpuTensor`]s (offsets and row strides allowed; f32, f16 where the
/// device has `SHADER_F16`, or bf16, each widened to f32 on load and accumulated in f32), an
/// optional bias (V, the classifier's element type), and whether the (f32) gradients are
/// wanted.
///
/// ```
/// # let ctx = xent::Context::new()?;
/// # let buffer = |n: u64| ctx.device().create_buffer(&xent::wgpu::BufferDescriptor {
/// #     label: None, size: 4 * n, usage: xent::wgpu::BufferUsages::STORAGE, mapped_at_creation: false });
/// let (hidden, classifier, bias) = (buffer(6), buffer(12), buffer(4));
/// let input = xent::GpuLinearInput::new(&hidden, &classifier, [2, 3, 4]).with_bias(&bias).with_grad();
/// assert_eq!(input.shape, [2, 3, 4]);
/// # Ok::<(), xent::Error>(())
/// ```
#[derive(Clone, Copy, Debug)]
pub struct GpuLinearInput<'a> {
    /// Hidden states, (N, D).
    pub hidden: GpuTensor<'a>,
    /// Classifier, (V, D).
    pub classifier: GpuTensor<'a>,
    /// Bias, (V); `None` for none.
    pub bias: Option<GpuTensor<'a>>,
    /// `[N, D, V]`.
    pub shape: [usize; 3],
    /// Whether the gradients of hidden, classifier and bias are computed.
    pub grads: bool,
}

impl<'a> GpuLinearInput<'a> {
    /// Hidden states and classifier of shape `[N, D, V]`, without bias or gradients.
    pub fn new(
        hidden: impl Into<GpuTensor<'a>>,
        classifier: impl Into<GpuTensor<'a>>,
        shape: [usize; 3],
    ) -> Self {
        GpuLinearInput {
            hidden: hidden.into(),
            classifier: classifier.into(),
            bias: None,
            shape,
            grads: false,
        }
    }

    /// Adds a bias (V).
    pub fn with_bias(self, bias: impl Into<GpuTensor<'a>>) -> Self {
        GpuLinearInput {
            bias: Some(bias.into()),
            ..self
        }
    }

    /// Also computes the gradients (into buffers xent owns, see [`PreparedLinear`]).
    pub fn with_grad(self) -> Self {
        GpuLinearInput {
            grads: true,
            ..self
        }
    }
}

/// Fused linear cross-entropy prepared on GPU buffers: [`record`](Self::record) adds the work
/// to a command encoder (allocating nothing, reading nothing back); reads copy results back
/// when asked. The gradients go to f32 buffers xent owns
/// ([`grad_hidden_buffer`](Self::grad_hidden_buffer) and the others), which the caller's next
/// kernels can read. The upstream gradient starts at ones.
///
/// ```
/// use xent::wgpu::{self, util::DeviceExt};
/// use xent::{Context, GpuLinearInput, LinearCrossEntropy};
///
/// let ctx = Context::new()?;
/// let buffer = |contents: &[u8]| {
///     ctx.device().create_buffer_init(&wgpu::util::BufferInitDescriptor {
///         label: None,
///         contents,
///         usage: wgpu::BufferUsages::STORAGE,
///     })
/// };
/// let hidden = buffer(xent::bytemuck::cast_slice(&[1.0f32, 0.0, 0.0, 1.0]));
/// let classifier = buffer(xent::bytemuck::cast_slice(&[2.0f32, 0.0, 0.0, 2.0, 1.0, 1.0]));
/// let labels = buffer(xent::bytemuck::cast_slice(&[0i32, 1]));
/// let input = GpuLinearInput::new(&hidden, &classifier, [2, 2, 3]).with_grad();
/// let prepared = ctx.prepare_linear(&LinearCrossEntropy::default(), input, &labels)?;
/// let mut encoder = ctx.device().create_command_encoder(&Default::default());
/// prepared.record(&mut encoder);
/// ctx.queue().submit([encoder.finish()]);
/// let out = prepared.read()?;
/// // Both tokens: logits (2, 0, 1), target 2 -> loss ln(e^2 + 1 + e) - 2.
/// let want = ((2f32).exp() + 1.0 + 1f32.exp()).ln() - 2.0;
/// assert!((out.loss.scalar().unwrap() - want).abs() < 1e-5);
/// assert_eq!(out.grad_hidden.unwrap().len(), 4);
/// # Ok::<(), xent::Error>(())
/// ```
pub struct PreparedLinear {
    inner: PreparedLoss,
    grads: Option<LinearGrads>,
}

impl PreparedLinear {
    /// Records the work into `encoder`. Reads return the results of the last recorded work once
    /// it has run, and [`Error::NotRun`] until then.
    pub fn record(&self, encoder: &mut wgpu::CommandEncoder) {
        self.inner.record(encoder);
    }

    /// Records and submits the work, and resolves once the GPU has finished it.
    pub async fn run_async(&self) -> Result<()> {
        self.inner.run_async().await
    }

    /// Records, submits and waits for the work.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn run(&self) -> Result<()> {
        self.inner.run()
    }

    /// Sets the upstream gradient the gradients are scaled by: one value for `Mean` and
    /// `Sum`, one per token for `None`. Written through the queue, so it takes effect for work
    /// submitted afterwards.
    pub fn set_upstream(&self, upstream: &[f32]) -> Result<()> {
        if self.grads.is_none() {
            return Err(Error::Misuse {
                what: "set_upstream",
                reason: "this loss was prepared without gradients".into(),
            });
        }
        let inner = &self.inner;
        if upstream.len() != inner.upstream_len {
            return Err(Error::ShapeMismatch {
                what: "upstream",
                expected: inner.upstream_len,
                got: upstream.len(),
                hint: format!("the upstream gradient of a {:?} loss", inner.reduction),
            });
        }
        inner
            .gpu
            .write_buffer(&inner.upstream, bytemuck::cast_slice(upstream))
    }

    /// The f32 loss buffer: one value for `Mean` and `Sum`, one per token for `None`.
    pub fn loss_buffer(&self) -> &wgpu::Buffer {
        self.inner.loss_buffer()
    }

    /// The f32 gradient of the hidden states, (N, D) packed; `None` without gradients.
    pub fn grad_hidden_buffer(&self) -> Option<&wgpu::Buffer> {
        self.grads.as_ref().map(|g| &g.hidden.buffer)
    }

    /// The f32 gradient of the classifier, (V, D) packed; `None` without gradients.
    pub fn grad_classifier_buffer(&self) -> Option<&wgpu::Buffer> {
        self.grads.as_ref().map(|g| &g.classifier.buffer)
    }

    /// The f32 gradient of the bias, (V); `None` without gradients or bias.
    pub fn grad_bias_buffer(&self) -> Option<&wgpu::Buffer> {
        self.grads
            .as_ref()
            .and_then(|g| g.bias.as_ref())
            .map(|g| &g.buffer)
    }

    /// Reads the loss back (once the work submitted before has finished); a recorded target
    /// outside [0, V) that is not `ignore_index` is [`Error::LabelOutOfRange`].
    pub async fn read_loss_async(&self) -> Result<Loss> {
        self.inner.read_loss_async().await
    }

    /// [`read_loss_async`](Self::read_loss_async), blocking.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn read_loss(&self) -> Result<Loss> {
        self.inner.gpu.block_on(self.read_loss_async())
    }

    /// Reads the loss and every gradient back in one copy, as
    /// [`read_loss_async`](Self::read_loss_async).
    pub async fn read_async(&self) -> Result<LinearOutput> {
        let inner = &self.inner;
        let mut sources = vec![(&inner.loss, inner.loss_len)];
        let grads: Vec<&GradOut> = match &self.grads {
            None => Vec::new(),
            Some(g) => [Some(&g.hidden), Some(&g.classifier), g.bias.as_ref()]
                .into_iter()
                .flatten()
                .collect(),
        };
        sources.extend(grads.iter().map(|g| (&g.buffer, g.words())));
        let mut values = inner.read_sources("read", sources).await?.into_iter();
        let loss = inner.loss_from(values.next().unwrap_or_default());
        let mut grads = grads
            .iter()
            .zip(values)
            .map(|(g, v)| decode(v, g.len, g.dtype));
        let has_bias = self.grads.as_ref().is_some_and(|g| g.bias.is_some());
        Ok(LinearOutput {
            loss,
            grad_hidden: grads.next(),
            grad_classifier: grads.next(),
            grad_bias: if has_bias { grads.next() } else { None },
        })
    }

    /// [`read_async`](Self::read_async), blocking.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn read(&self) -> Result<LinearOutput> {
        self.inner.gpu.block_on(self.read_async())
    }
}

/// A checked host call's inputs uploaded, with the loss as the GPU compares its labels.
struct HostLinear {
    loss: LinearCrossEntropy,
    shape: [usize; 3],
    grads: bool,
    upstream: Option<Vec<f32>>,
    hidden: wgpu::Buffer,
    classifier: wgpu::Buffer,
    bias: Option<wgpu::Buffer>,
    labels: wgpu::Buffer,
}

impl HostLinear {
    /// Checks the call (before anything is allocated) and uploads its inputs.
    fn new(
        ctx: &Context,
        loss: &LinearCrossEntropy,
        input: LinearInput<'_>,
        targets: Targets<'_>,
    ) -> Result<HostLinear> {
        let call = check(loss, &input, targets)?;
        let gpu = ctx.gpu();
        let (labels, ignore_index) = gpu_labels(&call.labels, loss.cross_entropy.ignore_index);
        Ok(HostLinear {
            loss: LinearCrossEntropy {
                cross_entropy: CrossEntropy {
                    ignore_index,
                    ..loss.cross_entropy.clone()
                },
                ..loss.clone()
            },
            shape: input.shape,
            grads: input.wants_grad(),
            upstream: call.upstream,
            hidden: buffers::upload(gpu, "hidden", input.hidden)?,
            classifier: buffers::upload(gpu, "classifier", input.classifier)?,
            bias: match input.bias {
                Some(b) => Some(buffers::upload(gpu, "bias", b)?),
                None => None,
            },
            labels: buffers::upload(gpu, "targets", &labels)?,
        })
    }

    /// The uploaded inputs as the GPU form takes them.
    fn input(&self) -> GpuLinearInput<'_> {
        GpuLinearInput {
            hidden: GpuTensor::new(&self.hidden),
            classifier: GpuTensor::new(&self.classifier),
            bias: self.bias.as_ref().map(GpuTensor::new),
            shape: self.shape,
            grads: self.grads,
        }
    }

    /// Gives `prepared` the call's upstream gradient, if any.
    fn set_upstream(&self, prepared: &PreparedLinear) -> Result<()> {
        match &self.upstream {
            Some(upstream) => prepared.set_upstream(upstream),
            None => Ok(()),
        }
    }
}

impl Context {
    /// Computes fused linear cross-entropy `loss` on host slices: the loss of
    /// `hidden classifier^T (+ bias)` against class-index `targets` (one per token, of the
    /// whole vocabulary) and, when `input` asks, the gradients of hidden, classifier and bias.
    /// See [`LinearCrossEntropy`] for an example.
    ///
    /// Errors: shapes and lengths ([`Error::InvalidShape`], [`Error::ShapeMismatch`]), options
    /// as [`CrossEntropy`](crate::CrossEntropy)'s (`return_lse` is refused), a target outside
    /// [0, V) that is not `ignore_index` ([`Error::LabelOutOfRange`]), a block budget too
    /// small ([`Error::InvalidOption`]), and device errors.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn linear_cross_entropy<'a>(
        &self,
        loss: &LinearCrossEntropy,
        input: LinearInput<'a>,
        targets: impl Into<Targets<'a>>,
    ) -> Result<LinearOutput> {
        // Each wait on its own (not one block_on around the whole call): a long run on a slow
        // adapter waits for one block of work at a time.
        let host = HostLinear::new(self, loss, input, targets.into())?;
        let prepared = self.prepare_linear(&host.loss, host.input(), &host.labels)?;
        host.set_upstream(&prepared)?;
        prepared.run()?;
        prepared.read()
    }

    /// [`linear_cross_entropy`](Self::linear_cross_entropy) without blocking.
    pub async fn linear_cross_entropy_async<'a>(
        &self,
        loss: &LinearCrossEntropy,
        input: LinearInput<'a>,
        targets: impl Into<Targets<'a>>,
    ) -> Result<LinearOutput> {
        let host = HostLinear::new(self, loss, input, targets.into())?;
        let prepared = self
            .prepare_linear_async(&host.loss, host.input(), &host.labels)
            .await?;
        host.set_upstream(&prepared)?;
        prepared.run_async().await?;
        prepared.read_async().await
    }

    /// Prepares fused linear cross-entropy `loss` on the caller's buffers: `input`'s tensors
    /// (f32, f16 or bf16) and `labels`, N i32 class indices (a target outside [0, V) that is not
    /// `ignore_index` gives a NaN loss and is reported by the reads). See [`PreparedLinear`]
    /// for an example.
    ///
    /// Errors as [`linear_cross_entropy`](Self::linear_cross_entropy), and for tensors that do
    /// not hold their shape.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn prepare_linear<'a>(
        &self,
        loss: &LinearCrossEntropy,
        input: GpuLinearInput<'a>,
        labels: impl Into<GpuTensor<'a>>,
    ) -> Result<PreparedLinear> {
        self.gpu()
            .block_on(self.prepare_linear_async(loss, input, labels))
    }

    /// [`prepare_linear`](Self::prepare_linear) without blocking.
    pub async fn prepare_linear_async<'a>(
        &self,
        loss: &LinearCrossEntropy,
        input: GpuLinearInput<'a>,
        labels: impl Into<GpuTensor<'a>>,
    ) -> Result<PreparedLinear> {
        let shape = LinearShape::new(input.shape)?;
        check_options(loss, shape.classes)?;
        let tensors = LinearTensors {
            hidden: input.hidden,
            classifier: input.classifier,
            bias: input.bias,
            labels: labels.into(),
        };
        let gpu = self.gpu();
        let options = &loss.cross_entropy;
        let (inner, grads) = gpu
            .checked(Operation::Prepare, || {
                prepare_linear(gpu, tensors, shape, options, input.grads, loss.block_bytes)
            })
            .await?;
        Ok(PreparedLinear { inner, grads })
    }
}
