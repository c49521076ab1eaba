//! The two verbs every loss goes through, [`Context::compute`] (host slices in, numbers out)
//! and [`Context::prepare`] (the caller's GPU buffers, recorded into the caller's work), with
//! their async forms; and [`Descriptor`], which says what each loss takes and gives.

use crate::context::Context;
use crate::error::Result;
#[cfg(not(target_arch = "wasm32"))]
use crate::linear::compute_linear_blocking;
use crate::linear::{compute_linear, prepare_linear, GpuLinearInput, PreparedLinear};
use crate::loss::Family;
use crate::loss::{
    BinaryCrossEntropy, BinaryCrossEntropyWithLogits, CrossEntropy, GpuInput, GpuTargets, Input,
    LinearCrossEntropy, LinearInput, LinearOutput, LogSoftmax, NllLoss, Output, SigmoidFocalLoss,
    Targets,
};
use crate::prepared::PreparedLoss;
use crate::shard::{
    finish_split, prepare_split_finish, prepare_split_states, split_states, GpuSplitTargets,
    PreparedStates, ShardStates, SplitFinish, SplitStates, SplitTargets,
};

/// A loss as a value: one of xent's descriptors, which [`Context::compute`] and
/// [`Context::prepare`] take, with the types of what each takes and gives.
///
/// | descriptor | host input, targets | host output | GPU input, targets | prepared |
/// |---|---|---|---|---|
/// | [`CrossEntropy`], [`NllLoss`], [`LogSoftmax`], [`BinaryCrossEntropy`], [`BinaryCrossEntropyWithLogits`], [`SigmoidFocalLoss`] | [`Input`], [`Targets`] | [`Output`] | [`GpuInput`], [`GpuTargets`] | [`PreparedLoss`] |
/// | [`LinearCrossEntropy`] | [`LinearInput`], [`Targets`] (class indices) | [`LinearOutput`] | [`GpuLinearInput`], [`GpuTargets`] (class indices) | [`PreparedLinear`] |
/// | [`SplitStates`] | [`Input`], [`Targets`] (class indices) | [`ShardStates`] | [`GpuInput`], [`GpuTargets`] (class indices) | [`PreparedStates`] |
/// | [`SplitFinish`] | [`Input`], [`SplitTargets`] | [`Output`] | [`GpuInput`], [`GpuSplitTargets`] | [`PreparedLoss`] |
///
/// Sealed: implemented by xent's descriptors only. Generic code names the types through the
/// trait:
///
/// ```
/// use xent::{Context, Descriptor};
///
/// /// The loss of any descriptor on host slices, with a message.
/// fn logged<'a, L: Descriptor>(
///     ctx: &Context,
///     loss: &L,
///     input: L::Input<'a>,
///     targets: L::Targets<'a>,
/// ) -> xent::Result<L::Output> {
///     println!("computing {loss:?}");
///     ctx.compute(loss, input, targets)
/// }
///
/// let ctx = Context::new()?;
/// let out = logged(&ctx, &xent::LogSoftmax, xent::Input::new(&[0.0f32, 0.0], [1, 2]), xent::Targets::None)?;
/// assert_eq!(out.loss.values().len(), 2);
/// # Ok::<(), xent::Error>(())
/// ```
pub trait Descriptor: sealed::Sealed + std::fmt::Debug + Sync {
    /// What the host form computes on.
    type Input<'a>;
    /// The host form's targets.
    type Targets<'a>;
    /// What the host form gives back.
    type Output;
    /// What the GPU form is prepared on.
    type GpuInput<'a>;
    /// The GPU form's targets.
    type GpuTargets<'a>;
    /// The loss prepared on GPU buffers.
    type Prepared;

    /// The host form (see [`Context::compute_async`]).
    #[doc(hidden)]
    #[allow(async_fn_in_trait)]
    async fn compute_on<'a>(
        &self,
        ctx: &Context,
        input: Self::Input<'a>,
        targets: Self::Targets<'a>,
        _: sealed::Token,
    ) -> Result<Self::Output>;

    /// The host form, blocking: by default one wait on the whole computation; a loss that
    /// runs as several submissions waits for each on its own.
    #[doc(hidden)]
    #[cfg(not(target_arch = "wasm32"))]
    fn compute_blocking<'a>(
        &self,
        ctx: &Context,
        input: Self::Input<'a>,
        targets: Self::Targets<'a>,
        token: sealed::Token,
    ) -> Result<Self::Output> {
        ctx.block_on(self.compute_on(ctx, input, targets, token))
    }

    /// The GPU form (see [`Context::prepare_async`]).
    #[doc(hidden)]
    #[allow(async_fn_in_trait)]
    async fn prepare_on<'a>(
        &self,
        ctx: &Context,
        input: Self::GpuInput<'a>,
        targets: Self::GpuTargets<'a>,
        _: sealed::Token,
    ) -> Result<Self::Prepared>;
}

pub(crate) mod sealed {
    /// Implemented by xent's descriptors only.
    pub trait Sealed {}

    /// Makes [`Descriptor`](super::Descriptor)'s hidden methods callable from xent only.
    #[derive(Clone, Copy)]
    pub struct Token(pub(super) ());
}

const TOKEN: sealed::Token = sealed::Token(());

/// Implements [`Descriptor`] for `$t`: the types it takes and gives, and the functions of its
/// host form, its GPU form and (where it waits more than once) its blocking host form, each
/// called as `f(ctx, descriptor, input, targets)`.
macro_rules! descriptor {
    (
        $t:ty: ($input:ident, $targets:ident) -> $output:ty,
        gpu ($gpu_input:ident, $gpu_targets:ident) -> $prepared:ty,
        compute $compute:path, prepare $prepare:path $(, blocking $blocking:path)?
    ) => {
        impl sealed::Sealed for $t {}
        impl Descriptor for $t {
            type Input<'a> = $input<'a>;
            type Targets<'a> = $targets<'a>;
            type Output = $output;
            type GpuInput<'a> = $gpu_input<'a>;
            type GpuTargets<'a> = $gpu_targets<'a>;
            type Prepared = $prepared;

            async fn compute_on<'a>(
                &self,
                ctx: &Context,
                input: Self::Input<'a>,
                targets: Self::Targets<'a>,
                _: sealed::Token,
            ) -> Result<Self::Output> {
                $compute(ctx, self, input, targets).await
            }

            $(
            #[cfg(not(target_arch = "wasm32"))]
            fn compute_blocking<'a>(
                &self,
                ctx: &Context,
                input: Self::Input<'a>,
                targets: Self::Targets<'a>,
                _: sealed::Token,
            ) -> Result<Self::Output> {
                $blocking(ctx, self, input, targets)
            }
            )?

            async fn prepare_on<'a>(
                &self,
                ctx: &Context,
                input: Self::GpuInput<'a>,
                targets: Self::GpuTargets<'a>,
                _: sealed::Token,
            ) -> Result<Self::Prepared> {
                $prepare(ctx, self, input, targets).await
            }
        }
    };
}

/// The host form of a loss of the categorical and binary families.
async fn compute_family<'a>(
    ctx: &Context,
    loss: &impl Family,
    input: Input<'a>,
    targets: Targets<'a>,
) -> Result<Output> {
    ctx.compute_family(loss.spec(), input, targets).await
}

/// The GPU form of a loss of the categorical and binary families.
async fn prepare_family<'a>(
    ctx: &Context,
    loss: &impl Family,
    input: GpuInput<'a>,
    targets: GpuTargets<'a>,
) -> Result<PreparedLoss> {
    ctx.prepare_family(loss.spec(), input, targets).await
}

/// The descriptors of the categorical and binary families, on [`Input`] and [`GpuInput`].
macro_rules! family {
    ($($t:ty),*) => {$(
        descriptor!(
            $t: (Input, Targets) -> Output,
            gpu (GpuInput, GpuTargets) -> PreparedLoss,
            compute compute_family, prepare prepare_family
        );
    )*};
}

family!(
    LogSoftmax,
    CrossEntropy,
    BinaryCrossEntropy,
    BinaryCrossEntropyWithLogits,
    SigmoidFocalLoss,
    NllLoss
);

// Fused linear cross-entropy waits for each block of work on its own when it blocks, so that a
// long run on a slow adapter is never one long wait.
descriptor!(
    LinearCrossEntropy: (LinearInput, Targets) -> LinearOutput,
    gpu (GpuLinearInput, GpuTargets) -> PreparedLinear,
    compute compute_linear, prepare prepare_linear, blocking compute_linear_blocking
);

descriptor!(
    SplitStates: (Input, Targets) -> ShardStates,
    gpu (GpuInput, GpuTargets) -> PreparedStates,
    compute split_states, prepare prepare_split_states
);

descriptor!(
    SplitFinish: (Input, SplitTargets) -> Output,
    gpu (GpuInput, GpuSplitTargets) -> PreparedLoss,
    compute finish_split, prepare prepare_split_finish
);

impl Context {
    /// Computes a loss on host slices, and its gradient when the input asks for it: the
    /// inputs are uploaded, the loss runs on the GPU and the results are read back. Buffers
    /// and pipelines are kept for the next call of the same shape and options (see
    /// [`CacheBudget`](crate::CacheBudget)).
    ///
    /// `loss` is any [`Descriptor`]; its table says what each takes and gives. For most
    /// losses `input` is an [`Input`] and `targets` are class indices (`&[u32]`, `&[i32]`,
    /// `&[i64]`, `&[usize]`), values (`&[f32]`) or [`Targets::None`]:
    ///
    /// ```
    /// use xent::{Context, CrossEntropy, Input};
    ///
    /// let ctx = Context::new()?;
    /// let logits = [2.0f32, 0.5, -1.0, 0.1, 0.2, 3.0];
    /// let out = ctx.compute(&CrossEntropy::default(), Input::new(&logits, [2, 3]).with_grad(), &[0u32, 2])?;
    /// println!("loss {:?}, gradient {:?}", out.loss.scalar(), out.grad);
    /// # Ok::<(), xent::Error>(())
    /// ```
    ///
    /// Errors: bad input (shapes, out-of-range targets or probabilities, options out of range)
    /// before anything runs; [`Error::TooLarge`](crate::Error::TooLarge) past an adapter
    /// limit; GPU failures as [`Error::Gpu`](crate::Error::Gpu),
    /// [`Error::OutOfMemory`](crate::Error::OutOfMemory) or
    /// [`Error::DeviceLost`](crate::Error::DeviceLost).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn compute<'a, L: Descriptor>(
        &self,
        loss: &L,
        input: L::Input<'a>,
        targets: impl Into<L::Targets<'a>>,
    ) -> Result<L::Output> {
        loss.compute_blocking(self, input, targets.into(), TOKEN)
    }

    /// [`Context::compute`] without blocking: the future resolves once the results are read
    /// back (on the web the browser drives it; natively it polls the device without
    /// waiting).
    pub async fn compute_async<'a, L: Descriptor>(
        &self,
        loss: &L,
        input: L::Input<'a>,
        targets: impl Into<L::Targets<'a>>,
    ) -> Result<L::Output> {
        loss.compute_on(self, input, targets.into(), TOKEN).await
    }

    /// Prepares a loss on GPU tensors your program owns: pipelines compiled, buffers and bind
    /// groups created once. The prepared loss ([`PreparedLoss`] for most descriptors; see
    /// [`Descriptor`]) records into your command encoders without allocating or reading
    /// anything back, and reads its results only when asked.
    ///
    /// Inputs are f32, f16 or bf16 ([`GpuTensor::with_dtype`](crate::GpuTensor::with_dtype));
    /// class-index targets are i32, values f32 (class indices and BCE values are checked by
    /// the kernel: see [`PreparedLoss::check_targets`]).
    ///
    /// Buffer usages, checked with a typed [`Error::BufferUsage`](crate::Error::BufferUsage)
    /// naming the flag before anything is recorded:
    ///
    /// | buffer | needs |
    /// |---|---|
    /// | input (logits, probabilities) | `STORAGE`; also `COPY_SRC` to [`read_grad`](PreparedLoss::read_grad) a [`GradMode::InPlace`](crate::GradMode::InPlace) gradient, which lies in it |
    /// | targets (class indices or values) | `STORAGE` |
    ///
    /// xent never maps your buffers or writes them from the host; only an in-place gradient
    /// writes your input, and only when the recorded work runs. The loss, a separate
    /// gradient and the upstream gradient live in buffers xent owns
    /// ([`PreparedLoss::loss_buffer`], [`PreparedLoss::grad_buffer`]).
    ///
    /// ```
    /// use xent::wgpu::{self, util::DeviceExt};
    /// use xent::{Context, CrossEntropy, GpuInput, GpuTargets, GradMode};
    ///
    /// let ctx = Context::new()?;
    /// let buffer = |contents: &[u8]| {
    ///     ctx.device().create_buffer_init(&wgpu::util::BufferInitDescriptor {
    ///         label: None,
    ///         contents,
    ///         usage: wgpu::BufferUsages::STORAGE,
    ///     })
    /// };
    /// let logits = buffer(xent::bytemuck::cast_slice(&[2.0f32, 0.5, -1.0, 0.1, 0.2, 3.0]));
    /// let labels = buffer(xent::bytemuck::cast_slice(&[0i32, 2]));
    /// let input = GpuInput::new(&logits, [2, 3]).with_grad(GradMode::Separate);
    /// let prepared = ctx.prepare(&CrossEntropy::default(), input, GpuTargets::indices(&labels))?;
    /// let mut encoder = ctx.device().create_command_encoder(&Default::default());
    /// prepared.record(&mut encoder);
    /// ctx.queue().submit([encoder.finish()]);
    /// let loss = prepared.read_loss()?.scalar().unwrap();
    /// let host = xent::Input::new(&[2.0f32, 0.5, -1.0, 0.1, 0.2, 3.0], [2, 3]);
    /// let want = xent::reference::compute(&CrossEntropy::default(), host, &[0i32, 2])?;
    /// assert!((f64::from(loss) - want.loss.scalar().unwrap()).abs() < 1e-6);
    /// assert_eq!(prepared.read_grad()?.unwrap().len(), 6);
    /// # Ok::<(), xent::Error>(())
    /// ```
    #[cfg(not(target_arch = "wasm32"))]
    pub fn prepare<'a, L: Descriptor>(
        &self,
        loss: &L,
        input: L::GpuInput<'a>,
        targets: impl Into<L::GpuTargets<'a>>,
    ) -> Result<L::Prepared> {
        self.block_on(self.prepare_async(loss, input, targets))
    }

    /// [`Context::prepare`] without blocking.
    pub async fn prepare_async<'a, L: Descriptor>(
        &self,
        loss: &L,
        input: L::GpuInput<'a>,
        targets: impl Into<L::GpuTargets<'a>>,
    ) -> Result<L::Prepared> {
        loss.prepare_on(self, input, targets.into(), TOKEN).await
    }
}
