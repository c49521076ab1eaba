//! The float64 CPU reference of every loss and gradient, with the same options and the same
//! validation as the GPU functions. Tests judge the GPU against it; users can cross-check with
//! it.
//!
//! Each function follows PyTorch's definition literally in f64 (max subtracted, then
//! `logp = x - m - log(s)`), so it gives NaN and infinity where PyTorch does. The gradients
//! are the closed forms PyTorch's autograd computes; the unit tests check them against
//! central finite differences of the losses.

mod binary;
mod categorical;
mod linear;
#[cfg(test)]
mod tests;

use crate::error::Result;
use crate::loss::call::{check, Call, ClassShape, Given};
use crate::loss::{
    validate, BinaryCrossEntropy, BinaryCrossEntropyWithLogits, CrossEntropy, Loss, Output,
    Reduction, SigmoidFocalLoss,
};
use crate::loss::{BinaryLoss, Input, NllLoss, Spec, Targets};
use crate::loss::{LinearCrossEntropy, LinearInput, LinearOutput};
use binary::{bce_f64, bce_logits_f64, focal_f64};
use categorical::{
    cross_entropy_f64, cross_entropy_probs_f64, log_softmax_f64, nll_f64, rows_lse, softcapped,
};
use linear::linear_cross_entropy;

/// A descriptor the reference computes: every loss but the vocabulary split's steps
/// ([`SplitStates`](crate::SplitStates), [`SplitFinish`](crate::SplitFinish)), whose reference
/// is the unsplit [`CrossEntropy`] on the whole logits. The host input and targets are those
/// of [`Context::compute`](crate::Context::compute); the output is in f64. Sealed.
pub trait Exact: crate::Descriptor {
    /// What the reference gives: the loss's output type in f64.
    type Exact;

    /// The reference computation.
    #[doc(hidden)]
    fn exact<'a>(&self, input: Self::Input<'a>, targets: Self::Targets<'a>) -> Result<Self::Exact>;
}

macro_rules! exact_family {
    ($($t:ty),*) => {$(
        impl Exact for $t {
            type Exact = Output<f64>;
            fn exact<'a>(&self, input: Input<'a>, targets: Targets<'a>) -> Result<Output<f64>> {
                family(crate::loss::Family::spec(self), input, targets)
            }
        }
    )*};
}

exact_family!(
    crate::LogSoftmax,
    CrossEntropy,
    BinaryCrossEntropy,
    BinaryCrossEntropyWithLogits,
    SigmoidFocalLoss,
    NllLoss
);

impl Exact for LinearCrossEntropy {
    type Exact = LinearOutput<f64>;
    fn exact<'a>(&self, input: LinearInput<'a>, targets: Targets<'a>) -> Result<LinearOutput<f64>> {
        linear_cross_entropy(self, input, targets)
    }
}

/// Computes `loss` on the host in f64, as [`Context::compute`](crate::Context::compute) does
/// on the GPU, with the same checks: the loss and, when the input asks for it, its gradient.
/// The reference never writes its input: an [`Input::in_place`] gets its gradient in
/// [`Output::grad`].
///
/// ```
/// use xent::{reference, CrossEntropy, Input};
///
/// let logits = [2.0f32, 0.5, -1.0, 0.1, 0.2, 3.0];
/// let out = reference::compute(&CrossEntropy::default(), Input::new(&logits, [2, 3]).with_grad(), &[0u32, 2])?;
/// assert!(out.loss.scalar().unwrap() > 0.0 && out.grad.unwrap().len() == 6);
/// # Ok::<(), xent::Error>(())
/// ```
///
/// Fused linear cross-entropy's reference makes the logits `hidden classifier^T + bias` in
/// f64 and takes the cross-entropy of them; with gradients `dH = G classifier`,
/// `dW = G^T hidden`, `db = sum over tokens of G`, where G is the logits' gradient:
///
/// ```
/// use xent::{reference, LinearCrossEntropy, LinearInput};
///
/// // One token, D = 1, two classes with logits 1 and -1.
/// let input = LinearInput::new(&[1.0], &[1.0, -1.0], [1, 1, 2]).with_grad();
/// let out = reference::compute(&LinearCrossEntropy::default(), input, &[0u32])?;
/// let p0 = 1.0 / (1.0 + (-2f64).exp());
/// assert!((out.loss.scalar().unwrap() + p0.ln()).abs() < 1e-12);
/// // d loss / d hidden = sum_c (p_c - onehot_c) w_c = (p0 - 1) - (1 - p0).
/// assert!((out.grad_hidden.unwrap()[0] - 2.0 * (p0 - 1.0)).abs() < 1e-12);
/// # Ok::<(), xent::Error>(())
/// ```
pub fn compute<'a, L: Exact>(
    loss: &L,
    input: L::Input<'a>,
    targets: impl Into<L::Targets<'a>>,
) -> Result<L::Exact> {
    loss.exact(input, targets.into())
}

/// The reference of a loss of the categorical and binary families.
fn family<'a>(spec: Spec<'_>, input: Input<'a>, targets: Targets<'a>) -> Result<Output<f64>> {
    let given = Given::from(targets);
    let values = input.values();
    let call = check(
        spec,
        input.shape(),
        Some(values.len()),
        input.is_in_place(),
        given,
    )?;
    // The inputs first, as the GPU path checks them; then the upstream gradient.
    let (items, reduction) = match call {
        Call::LogSoftmax { .. } => (values.len(), Reduction::None),
        Call::Indices {
            options,
            shape,
            targets,
        } => {
            let labels = targets.to_i64()?;
            let rows = validate::cross_entropy_indices(values, shape.classes, &labels, options)?;
            (rows, options.reduction)
        }
        Call::Nll {
            options,
            shape,
            targets,
        } => {
            let labels = targets.to_i64()?;
            let options = options.as_cross_entropy();
            let rows = validate::cross_entropy_indices(values, shape.classes, &labels, &options)?;
            (rows, options.reduction)
        }
        Call::Probs {
            options,
            shape,
            targets,
        } => {
            let rows = validate::cross_entropy_probs(values, shape.classes, targets, options)?;
            (rows, options.reduction)
        }
        Call::Binary { loss, targets, .. } => {
            validate::binary(values, targets, loss)?;
            (values.len(), loss.reduction())
        }
    };
    let upstream = match (input.wants_grad(), call) {
        (false, _) => None,
        (true, Call::LogSoftmax { .. }) => {
            let ones = vec![1.0; items];
            let u = input.upstream().unwrap_or(&ones);
            validate::length("upstream", u.len(), items, "the logits' shape")?;
            Some(widen(u))
        }
        (true, Call::Binary { .. }) => Some(widen(&validate::upstream(
            input.upstream(),
            reduction,
            items,
            "element",
        )?)),
        (true, _) => Some(widen(&validate::upstream(
            input.upstream(),
            reduction,
            items,
            "row",
        )?)),
    };
    let (x, up) = (widen(values), upstream.as_deref());
    // K-dimensional categorical inputs as rows of consecutive classes, one per position.
    let class_shape = match call {
        Call::Indices { shape, .. } | Call::Probs { shape, .. } | Call::Nll { shape, .. } => {
            Some(shape)
        }
        _ => None,
    };
    let x = match class_shape {
        Some(shape) => to_rows(&x, shape),
        None => x,
    };
    let (loss, grad) = match call {
        Call::LogSoftmax { classes, .. } => log_softmax_f64(&x, classes, up),
        Call::Indices {
            options,
            shape,
            targets,
        } => {
            let labels = targets.to_i64()?;
            softcapped(&x, options.softcap, |z| {
                cross_entropy_f64(z, shape.classes, &labels, options, up)
            })
        }
        Call::Probs {
            options,
            shape,
            targets,
        } => {
            let t = to_rows(&widen(targets), shape);
            softcapped(&x, options.softcap, |z| {
                cross_entropy_probs_f64(z, shape.classes, &t, options, up)
            })
        }
        Call::Nll {
            options,
            shape,
            targets,
        } => nll_f64(&x, shape.classes, &targets.to_i64()?, options, up),
        Call::Binary {
            loss: BinaryLoss::Probs(o),
            targets,
            ..
        } => bce_f64(&x, &widen(targets), o, up),
        Call::Binary {
            loss: BinaryLoss::Logits(o),
            targets,
            ..
        } => {
            let pos_period = o.pos_weight.as_ref().map_or(1, Vec::len);
            bce_logits_f64(&x, &widen(targets), o, pos_period, up)
        }
        Call::Binary {
            loss: BinaryLoss::Focal(o),
            targets,
            ..
        } => focal_f64(&x, &widen(targets), o, up),
    };
    let grad = match class_shape {
        Some(shape) if !grad.is_empty() => from_rows(&grad, shape),
        _ => grad,
    };
    let lse = match call {
        Call::Indices { options, shape, .. } | Call::Probs { options, shape, .. }
            if options.return_lse =>
        {
            Some(rows_lse(&x, shape.classes, options.softcap))
        }
        _ => None,
    };
    Ok(Output {
        loss,
        grad: upstream.map(|_| grad),
        lse,
    })
}

/// The values of an (N, C, P) layout (P = d1 * ... * dk) as N P rows of C consecutive
/// values, one per position; (N, C) values as they are.
fn to_rows<T: Copy>(values: &[T], shape: ClassShape) -> Vec<T> {
    transpose_samples(values, shape.classes, shape.positions)
}

/// Rows of consecutive classes (see [`to_rows`]) back in the (N, C, P) layout.
fn from_rows<T: Copy>(rows: &[T], shape: ClassShape) -> Vec<T> {
    transpose_samples(rows, shape.positions, shape.classes)
}

/// Each sample of `height * width` values, read as a `height` by `width` row-major matrix,
/// written out transposed.
fn transpose_samples<T: Copy>(values: &[T], height: usize, width: usize) -> Vec<T> {
    if height == 1 || width == 1 {
        return values.to_vec();
    }
    let mut out = Vec::with_capacity(values.len());
    for sample in values.chunks(height * width) {
        for w in 0..width {
            out.extend((0..height).map(|h| sample[h * width + w]));
        }
    }
    out
}

pub(super) fn widen(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| f64::from(x)).collect()
}

/// Combines per-item losses and their mean denominator as `reduction` says.
pub(super) fn reduce(losses: Vec<f64>, denominator: f64, reduction: Reduction) -> Loss<f64> {
    match reduction {
        Reduction::None => Loss::Unreduced(losses),
        Reduction::Sum => Loss::Reduced(losses.iter().sum()),
        Reduction::Mean => Loss::Reduced(losses.iter().sum::<f64>() / denominator),
    }
}

/// The gradient scale of item `i`: its upstream value for `None`, the upstream value for `Sum`,
/// divided by the mean's denominator for `Mean`.
pub(super) fn scale(upstream: &[f64], reduction: Reduction, denominator: f64, i: usize) -> f64 {
    match reduction {
        Reduction::None => upstream[i],
        Reduction::Sum => upstream[0],
        Reduction::Mean => upstream[0] / denominator,
    }
}
