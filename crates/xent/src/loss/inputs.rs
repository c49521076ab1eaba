//! What a loss is computed on: [`Input`] and [`Targets`] on the host, [`GpuInput`] and
//! [`GpuTargets`] on the GPU, and what comes back, [`Output`].

use crate::error::{Error, Result};
use crate::gpu::tensor::GpuTensor;
use crate::loss::Loss;

/// Whether a prepared loss also computes the gradient, and where it goes.
///
/// ```
/// # let ctx = xent::Context::new()?;
/// # let logits = ctx.device().create_buffer(&xent::wgpu::BufferDescriptor {
/// #     label: None, size: 24, usage: xent::wgpu::BufferUsages::STORAGE, mapped_at_creation: false });
/// use xent::{GpuInput, GradMode};
/// let loss_only = GpuInput::new(&logits, [2, 3]); // GradMode::Off
/// let over_the_logits = GpuInput::new(&logits, [2, 3]).with_grad(GradMode::InPlace);
/// assert_eq!(GradMode::default(), GradMode::Off);
/// # Ok::<(), xent::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum GradMode {
    /// The loss only.
    #[default]
    Off,
    /// The gradient into an f32 buffer xent owns
    /// ([`PreparedLoss::grad_buffer`](crate::PreparedLoss::grad_buffer)).
    Separate,
    /// The gradient into a buffer xent owns, in the input's element type (f16 or bf16 inputs
    /// give an f16 or bf16 gradient; the same as `Separate` for f32).
    SeparateAsInput,
    /// The gradient written over the input (logits) in its layout and element type: one
    /// (N, C) buffer instead of two, what large vocabularies need. The input is gone after the
    /// work runs. Categorical cross-entropy only, f32 or f16 logits.
    InPlace,
}

/// The input of a loss on the host (logits, or BCE's input), with its shape and whether the
/// gradient with respect to it is wanted.
///
/// Shapes are PyTorch's, row-major: `[N, C]` for log-softmax; `[N, C]`, `[C]` (unbatched) or
/// `[N, C, d1, ..., dk]` for cross-entropy and the NLL loss; any shape for the binary losses
/// (their `weight` and `pos_weight` may span a trailing part of it).
///
/// ```
/// use xent::Input;
///
/// let logits = vec![2.0f32, 0.5, -1.0, 0.1, 0.2, 3.0];
/// let forward = Input::new(&logits, [2, 3]); // the loss only
/// let backward = Input::new(&logits, [2, 3]).with_grad(); // and its gradient
/// let scaled = Input::new(&logits, [2, 3]).with_upstream(&[0.5]); // for an upstream gradient
/// assert!(!forward.wants_grad() && backward.wants_grad() && scaled.wants_grad());
/// ```
#[derive(Debug)]
pub struct Input<'a> {
    pub(crate) values: Values<'a>,
    pub(crate) shape: Vec<usize>,
    /// `None`: the loss only; `Some(upstream)`: the gradient too, scaled by `upstream`
    /// (ones when `None`).
    pub(crate) grad: Option<Option<&'a [f32]>>,
}

/// An input's values: read, or read and then overwritten by the gradient.
#[derive(Debug)]
pub(crate) enum Values<'a> {
    Shared(&'a [f32]),
    InPlace(&'a mut [f32]),
}

impl<'a> Input<'a> {
    /// `values` of the given shape; the loss only, until [`with_grad`](Self::with_grad).
    pub fn new(values: &'a [f32], shape: impl Into<Vec<usize>>) -> Self {
        Input {
            values: Values::Shared(values),
            shape: shape.into(),
            grad: None,
        }
    }

    /// `values` of the given shape, overwritten by the gradient of the loss (only one copy
    /// of the logits exists on the GPU: what large vocabularies need). The output then has no
    /// `grad`: it is in `values`. Categorical cross-entropy only; on an error `values` are
    /// left unchanged.
    ///
    /// ```
    /// # let ctx = xent::Context::new()?;
    /// let mut logits = vec![2.0f32, 0.5, -1.0, 0.1, 0.2, 3.0];
    /// let out = ctx.compute(&xent::CrossEntropy::default(), xent::Input::in_place(&mut logits, [2, 3]), &[0u32, 2])?;
    /// assert!(out.grad.is_none()); // logits now hold the gradient
    /// # Ok::<(), xent::Error>(())
    /// ```
    pub fn in_place(values: &'a mut [f32], shape: impl Into<Vec<usize>>) -> Self {
        Input {
            values: Values::InPlace(values),
            shape: shape.into(),
            grad: Some(None),
        }
    }

    /// Asks for the gradient with respect to this input too, for an upstream gradient of
    /// ones.
    pub fn with_grad(self) -> Self {
        Input {
            grad: Some(self.grad.flatten()),
            ..self
        }
    }

    /// Asks for the gradient for the upstream gradient `upstream` (the gradient flowing into
    /// the loss, as PyTorch's `loss.backward(upstream)`): one value for `Mean` and `Sum`, one
    /// per row (categorical) or element (binary) for `None`, the input's shape for
    /// log-softmax.
    pub fn with_upstream(self, upstream: &'a [f32]) -> Self {
        Input {
            grad: Some(Some(upstream)),
            ..self
        }
    }

    /// Whether the gradient is asked for.
    pub fn wants_grad(&self) -> bool {
        self.grad.is_some()
    }

    /// The values.
    pub fn values(&self) -> &[f32] {
        match &self.values {
            Values::Shared(v) => v,
            Values::InPlace(v) => v,
        }
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The upstream gradient given, if any.
    pub(crate) fn upstream(&self) -> Option<&'a [f32]> {
        self.grad.flatten()
    }

    /// Whether the gradient is written over the values.
    pub(crate) fn is_in_place(&self) -> bool {
        matches!(self.values, Values::InPlace(_))
    }
}

/// Class-index targets from the host: `u32`, `i32`, `i64` or `usize`, compared with
/// `ignore_index` as i64 (as PyTorch). A `usize` beyond i64 is an error
/// ([`Error::LabelTooLarge`](crate::Error::LabelTooLarge)), never wrapped.
#[derive(Clone, Copy, Debug)]
pub enum Indices<'a> {
    /// `u32` class indices.
    U32(&'a [u32]),
    /// `i32` class indices.
    I32(&'a [i32]),
    /// `i64` class indices (PyTorch's `long`).
    I64(&'a [i64]),
    /// `usize` class indices (Rust's index type).
    Usize(&'a [usize]),
}

impl Indices<'_> {
    /// How many there are.
    pub fn len(&self) -> usize {
        match self {
            Indices::U32(v) => v.len(),
            Indices::I32(v) => v.len(),
            Indices::I64(v) => v.len(),
            Indices::Usize(v) => v.len(),
        }
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The indices as i64, the type PyTorch compares them with `ignore_index` in; a `usize`
    /// beyond i64 is [`Error::LabelTooLarge`].
    pub(crate) fn to_i64(self) -> Result<Vec<i64>> {
        Ok(match self {
            Indices::U32(v) => v.iter().map(|&l| i64::from(l)).collect(),
            Indices::I32(v) => v.iter().map(|&l| i64::from(l)).collect(),
            Indices::I64(v) => v.to_vec(),
            Indices::Usize(v) => v
                .iter()
                .enumerate()
                .map(|(row, &label)| {
                    i64::try_from(label).map_err(|_| Error::LabelTooLarge { row, label })
                })
                .collect::<Result<_>>()?,
        })
    }
}

/// The targets of a loss on the host. Slices convert into it: integers are class indices,
/// `f32` values are probabilities (categorical cross-entropy) or BCE targets.
///
/// ```
/// use xent::Targets;
///
/// let labels: Targets = (&[0u32, 2][..]).into();
/// let probabilities: Targets = (&[0.25f32, 0.75][..]).into();
/// assert!(matches!(labels, Targets::Indices(_)) && matches!(probabilities, Targets::Values(_)));
/// ```
#[derive(Clone, Copy, Debug)]
pub enum Targets<'a> {
    /// No targets (log-softmax).
    None,
    /// Class indices, one per row.
    Indices(Indices<'a>),
    /// Values of the input's shape: probabilities (categorical cross-entropy) or BCE
    /// targets.
    Values(&'a [f32]),
}

macro_rules! targets_from {
    ($t:ty, $make:expr) => {
        impl<'a> From<&'a [$t]> for Targets<'a> {
            fn from(v: &'a [$t]) -> Self {
                $make(v)
            }
        }
        impl<'a, const N: usize> From<&'a [$t; N]> for Targets<'a> {
            fn from(v: &'a [$t; N]) -> Self {
                $make(&v[..])
            }
        }
        impl<'a> From<&'a Vec<$t>> for Targets<'a> {
            fn from(v: &'a Vec<$t>) -> Self {
                $make(&v[..])
            }
        }
    };
}

targets_from!(u32, |v| Targets::Indices(Indices::U32(v)));
targets_from!(i32, |v| Targets::Indices(Indices::I32(v)));
targets_from!(i64, |v| Targets::Indices(Indices::I64(v)));
targets_from!(usize, |v| Targets::Indices(Indices::Usize(v)));
targets_from!(f32, Targets::Values);

/// The input of a loss on the GPU: a tensor in a caller's buffer, its shape, and where its
/// gradient goes (none by default).
///
/// ```
/// # fn f(ctx: &xent::Context, logits: &xent::wgpu::Buffer, labels: &xent::wgpu::Buffer) -> xent::Result<()> {
/// use xent::{CrossEntropy, GpuInput, GpuTargets, GradMode};
///
/// let input = GpuInput::new(logits, [1024, 32000]).with_grad(GradMode::InPlace);
/// let prepared = ctx.prepare(&CrossEntropy::default(), input, GpuTargets::indices(labels))?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct GpuInput<'a> {
    pub(crate) tensor: GpuTensor<'a>,
    pub(crate) shape: Vec<usize>,
    pub(crate) grad: GradMode,
}

impl<'a> GpuInput<'a> {
    /// `tensor` (a `&wgpu::Buffer` or a [`GpuTensor`]) of the given shape.
    pub fn new(tensor: impl Into<GpuTensor<'a>>, shape: impl Into<Vec<usize>>) -> Self {
        GpuInput {
            tensor: tensor.into(),
            shape: shape.into(),
            grad: GradMode::Off,
        }
    }

    /// Where the gradient goes (see [`GradMode`]).
    pub fn with_grad(self, grad: GradMode) -> Self {
        GpuInput { grad, ..self }
    }
}

/// The targets of a loss on the GPU: class indices (i32), values (f32: probabilities or BCE
/// targets), or none (log-softmax).
///
/// ```
/// # use xent::wgpu;
/// # let ctx = xent::Context::new()?;
/// # let new = |size| ctx.device().create_buffer(&wgpu::BufferDescriptor {
/// #     label: None, size, usage: wgpu::BufferUsages::STORAGE, mapped_at_creation: false });
/// let (labels, probabilities) = (new(8), new(24));
/// let indices = xent::GpuTargets::indices(&labels); // (N,) or (N, d1, ..., dk) i32 class indices
/// let values = xent::GpuTargets::values(&probabilities); // (N, C) f32, or BCE's shape
/// assert!(matches!(indices, xent::GpuTargets::Indices(_)));
/// assert!(matches!(values, xent::GpuTargets::Values(_)));
/// # Ok::<(), xent::Error>(())
/// ```
#[derive(Clone, Copy, Debug)]
pub enum GpuTargets<'a> {
    /// No targets (log-softmax).
    None,
    /// i32 class indices (u32 below 2^31 have the same bits), one per row; checked by the
    /// kernel (see [`PreparedLoss::check_targets`](crate::PreparedLoss::check_targets)).
    Indices(GpuTensor<'a>),
    /// f32 values of the input's shape: probabilities or BCE targets (BCE targets checked
    /// by the kernel to lie in [0, 1], see
    /// [`PreparedLoss::check_targets`](crate::PreparedLoss::check_targets)).
    Values(GpuTensor<'a>),
}

impl<'a> GpuTargets<'a> {
    /// Class indices in `tensor` (a `&wgpu::Buffer` or a [`GpuTensor`]).
    pub fn indices(tensor: impl Into<GpuTensor<'a>>) -> Self {
        GpuTargets::Indices(tensor.into())
    }

    /// Values (probabilities or BCE targets) in `tensor`.
    pub fn values(tensor: impl Into<GpuTensor<'a>>) -> Self {
        GpuTargets::Values(tensor.into())
    }
}

/// What a loss computes: the loss and, when asked for, the gradient with respect to the input
/// (as PyTorch's autograd gives it for the upstream gradient). xent's GPU results are
/// `Output<f32>`; [`crate::reference`] gives `Output<f64>`.
#[derive(Clone, Debug, PartialEq)]
pub struct Output<T = f32> {
    /// The loss (for log-softmax: its output, unreduced).
    pub loss: Loss<T>,
    /// The gradient with the input's shape; `None` when it was not asked for, or was written
    /// over the input ([`Input::in_place`]).
    pub grad: Option<Vec<T>>,
    /// Cross-entropy's log-sum-exp per row (per position of a K-dimensional input: the
    /// targets' shape without classes), ignored rows included, with
    /// [`CrossEntropy::return_lse`](crate::CrossEntropy::return_lse); `None` otherwise.
    pub lse: Option<Vec<T>>,
}
