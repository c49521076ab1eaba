//! Fused linear cross-entropy on a [`Context`]: the host form and the GPU form on the
//! caller's buffers ([`GpuLinearInput`], [`PreparedLinear`]), both reached through
//! [`Context::compute`] and [`Context::prepare`]. The blocks and kernels are in
//! `kernels::linear`.

use crate::context::Context;
use crate::error::{Error, Operation, Result};
use crate::gpu::tensor::GpuTensor;
use crate::host::categorical::host_key;
use crate::host::{HostCall, HostKey, HostLoss};
use crate::kernels;
use crate::kernels::cross_entropy::gpu_labels;
use crate::kernels::linear::{LinearGrads, LinearTensors};
use crate::loss::call::ClassShape;
use crate::loss::linear::{check, check_options, LinearShape};
use crate::loss::{
    CrossEntropy, GpuTargets, GradMode, LinearCrossEntropy, LinearInput, LinearOutput, Loss,
    Reduction, Targets,
};
use crate::prepared::{decode, GradOut, PreparedLoss};

/// The inputs of [`LinearCrossEntropy`] in the caller's GPU buffers: hidden states (N, D) and
/// classifier (V, D) as [`GpuTensor`]s (offsets and row strides allowed; f32, f16 where the
/// device has `SHADER_F16`, or bf16, each widened to f32 on load and accumulated in f32), an
/// optional bias (V, the classifier's element type), and where the gradients go:
/// [`GradMode::Off`] (the default) or [`GradMode::Separate`] (f32 gradients in buffers xent
/// owns).
///
/// ```
/// # let ctx = xent::Context::new()?;
/// # let buffer = |n: u64| ctx.device().create_buffer(&xent::wgpu::BufferDescriptor {
/// #     label: None, size: 4 * n, usage: xent::wgpu::BufferUsages::STORAGE, mapped_at_creation: false });
/// let (hidden, classifier, bias) = (buffer(6), buffer(12), buffer(4));
/// let input = xent::GpuLinearInput::new(&hidden, &classifier, [2, 3, 4])
///     .with_bias(&bias)
///     .with_grad(xent::GradMode::Separate);
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
    /// Where the gradients of hidden, classifier and bias go: [`GradMode::Off`] or
    /// [`GradMode::Separate`].
    pub grad: GradMode,
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
            grad: GradMode::Off,
        }
    }

    /// Adds a bias (V).
    pub fn with_bias(self, bias: impl Into<GpuTensor<'a>>) -> Self {
        GpuLinearInput {
            bias: Some(bias.into()),
            ..self
        }
    }

    /// Where the gradients go: [`GradMode::Separate`] computes them into f32 buffers xent
    /// owns (see [`PreparedLinear`]); the other modes that write a gradient over an input, or
    /// in the input's element type, are refused by [`Context::prepare`].
    pub fn with_grad(self, grad: GradMode) -> Self {
        GpuLinearInput { grad, ..self }
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
/// use xent::{Context, GpuLinearInput, GpuTargets, GradMode, LinearCrossEntropy};
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
/// let input = GpuLinearInput::new(&hidden, &classifier, [2, 2, 3]).with_grad(GradMode::Separate);
/// let prepared = ctx.prepare(&LinearCrossEntropy::default(), input, GpuTargets::indices(&labels))?;
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

crate::prepared::runs_its_inner_loss!(PreparedLinear);

impl PreparedLinear {
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
        let mut sources = vec![(&inner.loss, inner.loss_at, inner.loss_len)];
        let grads: Vec<&GradOut> = match &self.grads {
            None => Vec::new(),
            Some(g) => [Some(&g.hidden), Some(&g.classifier), g.bias.as_ref()]
                .into_iter()
                .flatten()
                .collect(),
        };
        sources.extend(grads.iter().map(|g| (&g.buffer, g.offset, g.words())));
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

/// A checked host call: its inputs, the loss as the GPU compares its labels and the labels
/// as it reads them.
struct HostLinear<'a> {
    loss: LinearCrossEntropy,
    input: LinearInput<'a>,
    upstream: Option<Vec<f32>>,
    labels: Vec<i32>,
}

impl<'a> HostLinear<'a> {
    /// Checks the call before anything is allocated.
    fn new(
        loss: &LinearCrossEntropy,
        input: LinearInput<'a>,
        targets: Targets<'_>,
    ) -> Result<HostLinear<'a>> {
        let call = check(loss, &input, targets)?;
        let (labels, ignore_index) = gpu_labels(&call.labels, loss.cross_entropy.ignore_index);
        Ok(HostLinear {
            loss: LinearCrossEntropy {
                cross_entropy: CrossEntropy {
                    ignore_index,
                    ..loss.cross_entropy.clone()
                },
                ..loss.clone()
            },
            input,
            upstream: call.upstream,
            labels,
        })
    }

    /// Whether the call asks for the gradients.
    fn grad(&self) -> GradMode {
        match self.input.wants_grad() {
            true => GradMode::Separate,
            false => GradMode::Off,
        }
    }

    /// The key its prepared work is kept under in the host cache: everything it bakes in.
    fn key(&self, ctx: &Context) -> HostKey {
        let [rows, dim, classes] = self.input.shape;
        let shape = ClassShape {
            rows,
            classes,
            positions: 1,
        };
        let options = &self.loss.cross_entropy;
        let key = host_key(HostLoss::Linear, shape, options, self.grad(), ctx.tuning());
        HostKey {
            shape: [rows, dim, classes],
            sizes: [u64::from(self.input.bias.is_some()), self.loss.block_bytes],
            ..key
        }
    }

    /// The call's prepared work: kept from an earlier call of the same key with this call's
    /// inputs written into its buffers, or prepared on new ones.
    async fn take_or_prepare(
        &self,
        ctx: &Context,
        key: &HostKey,
    ) -> Result<HostCall<PreparedLinear>> {
        let input = &self.input;
        let mut inputs: Vec<(&'static str, &[u8])> = vec![
            ("hidden", bytemuck::cast_slice(input.hidden)),
            ("classifier", bytemuck::cast_slice(input.classifier)),
            ("targets", bytemuck::cast_slice(&self.labels)),
        ];
        if let Some(bias) = input.bias {
            inputs.push(("bias", bytemuck::cast_slice(bias)));
        }
        let host = ctx.host();
        let gpu = ctx.gpu();
        let call = gpu
            .checked(Operation::Prepare, || {
                host.take_or_prepare(key, &inputs, |gpu, b| {
                    let tensors = LinearTensors {
                        hidden: GpuTensor::new(&b[0]),
                        classifier: GpuTensor::new(&b[1]),
                        labels: GpuTensor::new(&b[2]),
                        bias: input.bias.map(|_| GpuTensor::new(&b[3])),
                    };
                    let shape = LinearShape::new(input.shape)?;
                    let (options, grads) = (&self.loss.cross_entropy, input.wants_grad());
                    let budget = self.loss.block_bytes;
                    let (inner, grads) = kernels::linear::prepare_linear(
                        gpu, tensors, shape, options, grads, budget,
                    )?;
                    Ok(PreparedLinear { inner, grads })
                })
            })
            .await?;
        if let Some(upstream) = &self.upstream {
            call.prepared.set_upstream(upstream)?;
        }
        Ok(call)
    }

    /// Keeps `call` under `key` for the next call of the same key.
    fn keep(&self, ctx: &Context, key: HostKey, call: HostCall<PreparedLinear>) {
        let input = &self.input;
        let params =
            input.hidden.len() + input.classifier.len() + input.bias.map_or(0, <[f32]>::len);
        let rows = self.labels.len();
        let grads = match self.grad() {
            GradMode::Off => 0,
            _ => params,
        };
        let loss = match self.loss.cross_entropy.reduction {
            Reduction::None => rows,
            _ => 1,
        };
        // The inputs as uploaded (labels one i32 per token), the loss and the gradients.
        let bytes = 4 * (params + rows + grads + loss) as u64;
        ctx.host().keep(key, call, bytes);
    }
}

/// The host form of fused linear cross-entropy (see [`Context::compute`]): the loss of
/// `hidden classifier^T (+ bias)` against class-index `targets` (one per token, of the whole
/// vocabulary) and, when `input` asks, the gradients of hidden, classifier and bias. The
/// inputs' buffers and the prepared work are kept for the next call of the same shape and
/// options (see [`CacheBudget`](crate::CacheBudget)).
pub(crate) async fn compute_linear<'a>(
    ctx: &Context,
    loss: &LinearCrossEntropy,
    input: LinearInput<'a>,
    targets: Targets<'a>,
) -> Result<LinearOutput> {
    let host = HostLinear::new(loss, input, targets)?;
    let key = host.key(ctx);
    let call = host.take_or_prepare(ctx, &key).await?;
    call.prepared.run_async().await?;
    let out = call.prepared.read_async().await?;
    host.keep(ctx, key, call);
    Ok(out)
}

/// [`compute_linear`], blocking: each wait on its own (not one wait around the whole call),
/// so that a long run on a slow adapter waits for one block of work at a time.
#[cfg(not(target_arch = "wasm32"))]
pub(crate) fn compute_linear_blocking<'a>(
    ctx: &Context,
    loss: &LinearCrossEntropy,
    input: LinearInput<'a>,
    targets: Targets<'a>,
) -> Result<LinearOutput> {
    let host = HostLinear::new(loss, input, targets)?;
    let key = host.key(ctx);
    let call = ctx.block_on(host.take_or_prepare(ctx, &key))?;
    call.prepared.run()?;
    let out = call.prepared.read()?;
    host.keep(ctx, key, call);
    Ok(out)
}

/// The GPU form of fused linear cross-entropy (see [`Context::prepare`]): `input`'s tensors
/// (f32, f16 or bf16) and N i32 class indices (a target outside [0, V) that is not
/// `ignore_index` gives a NaN loss and is reported by the reads).
pub(crate) async fn prepare_linear<'a>(
    ctx: &Context,
    loss: &LinearCrossEntropy,
    input: GpuLinearInput<'a>,
    targets: GpuTargets<'a>,
) -> Result<PreparedLinear> {
    let shape = LinearShape::new(input.shape)?;
    check_options(loss, shape.classes)?;
    let GpuTargets::Indices(labels) = targets else {
        return Err(Error::WrongTargets {
            loss: "linear cross-entropy",
            expected: "class indices (GpuTargets::indices)",
            got: match targets {
                GpuTargets::None => "none",
                _ => "values",
            },
        });
    };
    let grads = match input.grad {
        GradMode::Off => false,
        GradMode::Separate => true,
        mode => {
            return Err(Error::InvalidOption {
                name: "grad",
                value: format!("{mode:?}"),
                reason: "fused linear cross-entropy writes f32 gradients into buffers of their \
                         own: use GradMode::Separate"
                    .into(),
            })
        }
    };
    let tensors = LinearTensors {
        hidden: input.hidden,
        classifier: input.classifier,
        bias: input.bias,
        labels,
    };
    let gpu = ctx.gpu();
    let options = &loss.cross_entropy;
    let (inner, grads) = gpu
        .checked(Operation::Prepare, || {
            kernels::linear::prepare_linear(gpu, tensors, shape, options, grads, loss.block_bytes)
        })
        .await?;
    Ok(PreparedLinear { inner, grads })
}
