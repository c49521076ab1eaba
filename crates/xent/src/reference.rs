//! The float64 CPU reference of every loss and gradient, with the same options and the same
//! validation as the GPU functions. Tests judge the GPU against it; users can cross-check with
//! it.
//!
//! Each function follows PyTorch's definition literally in f64 (max subtracted, then
//! `logp = x - m - log(s)`), so it gives NaN and infinity where PyTorch does. The gradients
//! are the closed forms PyTorch's autograd computes; the unit tests check them against
//! central finite differences of the losses.

use crate::error::Result;
use crate::loss::call::{check, Call, ClassShape, Given};
use crate::loss::linear::LinearShape;
use crate::loss::{
    validate, BinaryCrossEntropy, BinaryCrossEntropyWithLogits, CrossEntropy, Loss, Output,
    Reduction, SigmoidFocalLoss,
};
use crate::loss::{BinaryLoss, Input, NllLoss, Spec, Targets};
use crate::loss::{LinearCrossEntropy, LinearInput, LinearOutput};

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

/// The reference of fused linear cross-entropy (see [`compute`]).
fn linear_cross_entropy<'a>(
    loss: &LinearCrossEntropy,
    input: LinearInput<'a>,
    targets: Targets<'a>,
) -> Result<LinearOutput<f64>> {
    let call = crate::loss::linear::check(loss, &input, targets)?;
    let bias = input.bias.map(widen);
    let up = call.upstream.as_deref().map(widen);
    let params = (
        &widen(input.hidden)[..],
        &widen(input.classifier)[..],
        bias.as_deref(),
    );
    let (loss_value, grads) = linear_f64(params, call.shape, &call.labels, loss, up.as_deref());
    let [dh, dw, db] = grads.map(Some);
    Ok(LinearOutput {
        loss: loss_value,
        grad_hidden: up.as_ref().and(dh),
        grad_classifier: up.as_ref().and(dw),
        grad_bias: up.as_ref().and(bias.as_ref()).and(db),
    })
}

/// Fused linear cross-entropy in f64 on (hidden, classifier, bias): the loss and, with
/// `upstream`, the gradients of the three (empty without).
fn linear_f64(
    (h, w, b): (&[f64], &[f64], Option<&[f64]>),
    shape: LinearShape,
    labels: &[i64],
    loss: &LinearCrossEntropy,
    upstream: Option<&[f64]>,
) -> (Loss<f64>, [Vec<f64>; 3]) {
    let LinearShape { rows, dim, classes } = shape;
    let mut logits = vec![0.0; rows * classes];
    for (n, row) in logits.chunks_mut(classes).enumerate() {
        let x = &h[n * dim..(n + 1) * dim];
        for (c, out) in row.iter_mut().enumerate() {
            let wc = &w[c * dim..(c + 1) * dim];
            let dot: f64 = x.iter().zip(wc).map(|(a, b)| a * b).sum();
            *out = dot + b.map_or(0.0, |b| b[c]);
        }
    }
    let options = &loss.cross_entropy;
    let (value, g) = softcapped(&logits, options.softcap, |z| {
        cross_entropy_f64(z, classes, labels, options, upstream)
    });
    if upstream.is_none() {
        return (value, [Vec::new(), Vec::new(), Vec::new()]);
    }
    let mut dh = vec![0.0; rows * dim];
    let mut dw = vec![0.0; classes * dim];
    let mut db = vec![0.0; classes];
    for (n, grow) in g.chunks(classes).enumerate() {
        for (c, &gc) in grow.iter().enumerate() {
            db[c] += gc;
            for d in 0..dim {
                dh[n * dim + d] += gc * w[c * dim + d];
                dw[c * dim + d] += gc * h[n * dim + d];
            }
        }
    }
    (value, [dh, dw, db])
}

/// Each row's log-sum-exp over its (softcapped) logits, `CrossEntropy::return_lse`: NaN for
/// a row that holds NaN or (uncapped) +inf, as that row's loss is; -inf for a row of -inf.
fn rows_lse(x: &[f64], classes: usize, softcap: Option<f32>) -> Vec<f64> {
    let cap = |v: f64| softcap.map_or(v, |s| f64::from(s) * (v / f64::from(s)).tanh());
    x.chunks(classes)
        .map(|row| {
            let row: Vec<f64> = row.iter().map(|&v| cap(v)).collect();
            if row.iter().any(|v| v.is_nan() || *v == f64::INFINITY) {
                return f64::NAN;
            }
            log_sum_exp(&row)
        })
        .collect()
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

fn widen(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| f64::from(x)).collect()
}

/// Log-softmax of one row in f64. NaN anywhere (or +inf, or a row of -inf) gives a NaN row.
fn log_softmax_row(row: &[f64]) -> Vec<f64> {
    let m = row.iter().fold(f64::NEG_INFINITY, |m, &x| {
        if m.is_nan() || x.is_nan() {
            f64::NAN
        } else {
            m.max(x)
        }
    });
    let s: f64 = row.iter().map(|&x| (x - m).exp()).sum();
    let ls = s.ln();
    row.iter().map(|&x| x - m - ls).collect()
}

/// Log-softmax of each row in f64 and, with an upstream gradient of the logits' shape, its
/// backward `g - exp(logp) * sum_c g` per row.
fn log_softmax_f64(
    logits: &[f64],
    classes: usize,
    upstream: Option<&[f64]>,
) -> (Loss<f64>, Vec<f64>) {
    let logp: Vec<f64> = logits.chunks(classes).flat_map(log_softmax_row).collect();
    let mut grad = Vec::new();
    if let Some(g) = upstream {
        for (lp, gr) in logp.chunks(classes).zip(g.chunks(classes)) {
            let total: f64 = gr.iter().sum();
            grad.extend(lp.iter().zip(gr).map(|(l, g)| g - l.exp() * total));
        }
    }
    (Loss::Unreduced(logp), grad)
}

/// Combines per-item losses and their mean denominator as `reduction` says.
fn reduce(losses: Vec<f64>, denominator: f64, reduction: Reduction) -> Loss<f64> {
    match reduction {
        Reduction::None => Loss::Unreduced(losses),
        Reduction::Sum => Loss::Reduced(losses.iter().sum()),
        Reduction::Mean => Loss::Reduced(losses.iter().sum::<f64>() / denominator),
    }
}

/// The gradient scale of item `i`: its upstream value for `None`, the upstream value for `Sum`,
/// divided by the mean's denominator for `Mean`.
fn scale(upstream: &[f64], reduction: Reduction, denominator: f64, i: usize) -> f64 {
    match reduction {
        Reduction::None => upstream[i],
        Reduction::Sum => upstream[0],
        Reduction::Mean => upstream[0] / denominator,
    }
}

/// `loss` of the logits read through a softcap S (`S tanh(x / S)`, PyTorch's expression), its
/// gradient taken back through it (times `1 / cosh^2(x / S)`); `loss` of `x` itself without one.
fn softcapped(
    x: &[f64],
    softcap: Option<f32>,
    loss: impl FnOnce(&[f64]) -> (Loss<f64>, Vec<f64>),
) -> (Loss<f64>, Vec<f64>) {
    let Some(s) = softcap.map(f64::from) else {
        return loss(x);
    };
    let z: Vec<f64> = x.iter().map(|v| s * (v / s).tanh()).collect();
    let (out, mut grad) = loss(&z);
    for (g, v) in grad.iter_mut().zip(x) {
        let c = (v / s).cosh();
        *g /= c * c;
    }
    (out, grad)
}

/// The NLL loss of log-probabilities in f64: per-row losses `-w_y x[n, y]`, the mean over the
/// summed weight of the non-ignored targets, and with `upstream` the gradient (`-w_y` times the
/// scale at each target, 0 elsewhere). Labels are already checked.
fn nll_f64(
    x: &[f64],
    classes: usize,
    labels: &[i64],
    options: &NllLoss,
    upstream: Option<&[f64]>,
) -> (Loss<f64>, Vec<f64>) {
    let weight = |c: usize| options.weight.as_ref().map_or(1.0, |w| f64::from(w[c]));
    let target = |&y: &i64| (y != options.ignore_index).then_some(y as usize);
    let targets: Vec<Option<usize>> = labels.iter().map(target).collect();
    let denominator: f64 = targets.iter().flatten().map(|&c| weight(c)).sum();
    let losses = targets
        .iter()
        .enumerate()
        .map(|(n, y)| y.map_or(0.0, |c| -weight(c) * x[n * classes + c]))
        .collect();
    let mut grad = Vec::new();
    if let Some(upstream) = upstream {
        grad = vec![0.0; x.len()];
        for (n, y) in targets.iter().enumerate() {
            if let Some(c) = *y {
                grad[n * classes + c] =
                    -weight(c) * scale(upstream, options.reduction, denominator, n);
            }
        }
    }
    (reduce(losses, denominator, options.reduction), grad)
}

/// Class-index cross-entropy in f64: per-row losses, the mean's denominator, and with
/// `upstream` the gradient. Labels are already checked.
fn cross_entropy_f64(
    logits: &[f64],
    classes: usize,
    labels: &[i64],
    options: &CrossEntropy,
    upstream: Option<&[f64]>,
) -> (Loss<f64>, Vec<f64>) {
    let e = f64::from(options.label_smoothing);
    let w = |c: usize| options.weight.as_ref().map_or(1.0, |w| f64::from(w[c]));
    let total_weight: f64 = (0..classes).map(w).sum();
    let mut losses = Vec::with_capacity(labels.len());
    let mut denominator = 0.0;
    let mut logps = Vec::with_capacity(logits.len());
    for (row, &y) in logits.chunks(classes).zip(labels) {
        let logp = log_softmax_row(row);
        if y == options.ignore_index {
            losses.push(0.0);
        } else {
            let y = y as usize;
            let mut l = -w(y) * logp[y];
            if e > 0.0 {
                let smooth: f64 = -(0..classes).map(|c| w(c) * logp[c]).sum::<f64>();
                l = (1.0 - e) * l + e / classes as f64 * smooth;
            }
            losses.push(l + z_loss_term(options, row));
            denominator += w(y);
        }
        logps.push(logp);
    }
    let mut grad = Vec::new();
    if let Some(upstream) = upstream {
        grad.reserve(logits.len());
        for (n, (logp, &y)) in logps.iter().zip(labels).enumerate() {
            if y == options.ignore_index {
                grad.extend(std::iter::repeat_n(0.0, classes));
                continue;
            }
            let y = y as usize;
            let s = scale(upstream, options.reduction, denominator, n);
            let zc = z_loss_coefficient(options, &logits[n * classes..(n + 1) * classes]);
            grad.extend((0..classes).map(|c| {
                let p = logp[c].exp();
                let hard = (1.0 - e) * w(y) * (p - if c == y { 1.0 } else { 0.0 });
                let smooth = e / classes as f64 * (total_weight * p - w(c));
                s * (hard + smooth + zc * p)
            }));
        }
    }
    (reduce(losses, denominator, options.reduction), grad)
}

/// The log-sum-exp of a row of logits.
fn log_sum_exp(row: &[f64]) -> f64 {
    let m = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if m == f64::NEG_INFINITY {
        return m;
    }
    m + row.iter().map(|x| (x - m).exp()).sum::<f64>().ln()
}

/// A counted row's z-loss `z lse^2` (0 without one).
fn z_loss_term(options: &CrossEntropy, row: &[f64]) -> f64 {
    let z = f64::from(options.z_loss);
    if z == 0.0 {
        return 0.0;
    }
    z * log_sum_exp(row).powi(2)
}

/// The coefficient of `p_c` in a counted row's z-loss gradient, before the row's scale:
/// `2 z lse`.
fn z_loss_coefficient(options: &CrossEntropy, row: &[f64]) -> f64 {
    let z = f64::from(options.z_loss);
    if z == 0.0 {
        return 0.0;
    }
    2.0 * z * log_sum_exp(row)
}

/// Probability-target cross-entropy in f64, with the gradient when `upstream` is given.
fn cross_entropy_probs_f64(
    logits: &[f64],
    classes: usize,
    targets: &[f64],
    options: &CrossEntropy,
    upstream: Option<&[f64]>,
) -> (Loss<f64>, Vec<f64>) {
    let e = f64::from(options.label_smoothing);
    let rows = logits.len() / classes;
    let w = |c: usize| options.weight.as_ref().map_or(1.0, |w| f64::from(w[c]));
    let mut losses = Vec::with_capacity(rows);
    let mut grad = Vec::new();
    for (n, (row, t)) in logits
        .chunks(classes)
        .zip(targets.chunks(classes))
        .enumerate()
    {
        let logp = log_softmax_row(row);
        let q: Vec<f64> = (0..classes)
            .map(|c| w(c) * ((1.0 - e) * t[c] + e / classes as f64))
            .collect();
        losses.push(-(0..classes).map(|c| q[c] * logp[c]).sum::<f64>() + z_loss_term(options, row));
        if let Some(upstream) = upstream {
            let s = scale(upstream, options.reduction, rows as f64, n);
            let total: f64 = q.iter().sum();
            let zc = z_loss_coefficient(options, row);
            grad.extend((0..classes).map(|c| {
                let p = logp[c].exp();
                s * (p * total - q[c] + zc * p)
            }));
        }
    }
    (reduce(losses, rows as f64, options.reduction), grad)
}

/// The elementwise weight of element `i` (1 when absent).
fn element_weight(weight: Option<&Vec<f32>>, i: usize) -> f64 {
    // A weight of the input's trailing dimensions repeats over the leading ones.
    weight.map_or(1.0, |w| f64::from(w[i % w.len()]))
}

/// BCE on probabilities in f64, with the gradient when `upstream` is given.
fn bce_f64(
    p: &[f64],
    t: &[f64],
    options: &BinaryCrossEntropy,
    upstream: Option<&[f64]>,
) -> (Loss<f64>, Vec<f64>) {
    let len = p.len();
    let mut losses = Vec::with_capacity(len);
    let mut grad = Vec::new();
    for i in 0..len {
        let w = element_weight(options.weight.as_ref(), i);
        let log_p = p[i].ln().max(-100.0);
        let log_1mp = (-p[i]).ln_1p().max(-100.0);
        losses.push(-w * (t[i] * log_p + (1.0 - t[i]) * log_1mp));
        if let Some(upstream) = upstream {
            let s = scale(upstream, options.reduction, len as f64, i);
            grad.push(s * w * (p[i] - t[i]) / ((1.0 - p[i]) * p[i]).max(1e-12));
        }
    }
    (reduce(losses, len as f64, options.reduction), grad)
}

/// PyTorch's per-element loss `(1 - t) x - q logsigmoid(x)` (before the weight), in the
/// algebraically equal form `h + q log1p(exp(-|x|))` with `h = (1 - t) x` for `x >= 0` and
/// `-pos_weight t x` otherwise. PyTorch's form cancels catastrophically even in f64 when
/// `x << 0` and `t` is tiny (x = -8e29, t = 1e-30 gives 0 instead of 0.8); this one does not.
/// At an infinite `x` it is what PyTorch's form gives: NaN at -inf, `(1 - t) inf` at +inf.
fn bce_logits_term(x: f64, t: f64, pos_weight: f64) -> f64 {
    let q = 1.0 + (pos_weight - 1.0) * t;
    if x.is_infinite() {
        return if x < 0.0 { f64::NAN } else { (1.0 - t) * x };
    }
    let h = if x >= 0.0 {
        (1.0 - t) * x
    } else {
        -pos_weight * t * x
    };
    h + q * (-x.abs()).exp().ln_1p()
}

/// `sigmoid(x)`, stable for any x.
fn sigmoid(x: f64) -> f64 {
    let z = (-x.abs()).exp();
    if x >= 0.0 {
        1.0 / (1.0 + z)
    } else {
        z / (1.0 + z)
    }
}

/// BCE with logits in f64 (PyTorch's formula), with the gradient when `upstream` is given.
fn bce_logits_f64(
    x: &[f64],
    t: &[f64],
    options: &BinaryCrossEntropyWithLogits,
    pos_period: usize,
    upstream: Option<&[f64]>,
) -> (Loss<f64>, Vec<f64>) {
    let len = x.len();
    let mut losses = Vec::with_capacity(len);
    let mut grad = Vec::new();
    for i in 0..len {
        let w = element_weight(options.weight.as_ref(), i);
        let pw = options
            .pos_weight
            .as_ref()
            .map_or(1.0, |pw| f64::from(pw[i % pos_period]));
        losses.push(w * bce_logits_term(x[i], t[i], pw));
        if let Some(upstream) = upstream {
            let s = scale(upstream, options.reduction, len as f64, i);
            grad.push(s * w * ((pw * t[i] + 1.0 - t[i]) * sigmoid(x[i]) - pw * t[i]));
        }
    }
    (reduce(losses, len as f64, options.reduction), grad)
}

/// The sigmoid focal loss in f64, as torchvision defines it (`p_t = p t + (1 - p)(1 - t)`,
/// `ce (1 - p_t)^gamma`, times the alpha factor), with its analytic gradient when `upstream`
/// is given. `1 - p_t` is formed as `t sigmoid(-x) + (1 - t) sigmoid(x)`, which is exact where
/// `1 - p_t` cancels (torchvision's own form rounds it to 0 once `sigmoid(x)` rounds to 1, so
/// for `gamma < 1` autograd there gives NaN; this gives the gradient's value). At an infinite
/// logit the gradient is NaN for `gamma > 0` and `a (p - t)` for `gamma = 0`, as autograd
/// gives it there.
fn focal_f64(
    x: &[f64],
    t: &[f64],
    options: &SigmoidFocalLoss,
    upstream: Option<&[f64]>,
) -> (Loss<f64>, Vec<f64>) {
    let (alpha, gamma) = (f64::from(options.alpha), f64::from(options.gamma));
    let len = x.len();
    let mut losses = Vec::with_capacity(len);
    let mut grad = Vec::new();
    for i in 0..len {
        let (x, t) = (x[i], t[i]);
        let (p, q) = (sigmoid(x), sigmoid(-x));
        let ce = bce_logits_term(x, t, 1.0);
        let m = t * q + (1.0 - t) * p;
        let mg = if gamma == 0.0 { 1.0 } else { m.powf(gamma) };
        let a = if alpha >= 0.0 {
            alpha * t + (1.0 - alpha) * (1.0 - t)
        } else {
            1.0
        };
        losses.push(a * (ce * mg));
        if let Some(upstream) = upstream {
            let s = scale(upstream, options.reduction, len as f64, i);
            let g = if x.is_infinite() {
                if gamma > 0.0 {
                    f64::NAN
                } else {
                    a * (p - t)
                }
            } else {
                // d m^gamma / dx = gamma m^(gamma - 1) (1 - 2t) p q = gamma (1 - 2t) r m^gamma
                // with r = p q / m (r <= 1; 0 where m = 0).
                let r = if m > 0.0 { p * q / m } else { 0.0 };
                a * ((p - t) * mg + ce * gamma * (1.0 - 2.0 * t) * r * mg)
            };
            grad.push(s * g);
        }
    }
    (reduce(losses, len as f64, options.reduction), grad)
}

#[cfg(test)]
mod tests {
    //! The reference gradients against central finite differences of the reference losses.
    use super::*;

    /// A small seeded generator.
    fn values(seed: u64, len: usize, lo: f64, hi: f64) -> Vec<f64> {
        let mut state = seed;
        (0..len)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                lo + (hi - lo) * ((state >> 11) as f64 / (1u64 << 53) as f64)
            })
            .collect()
    }

    /// The scalar a gradient is taken of: the reduced loss, or sum_i u_i l_i for `None`.
    fn scalar(loss: &Loss<f64>, upstream: &[f64]) -> f64 {
        match loss {
            Loss::Reduced(v) => v * upstream[0],
            Loss::Unreduced(v) => v.iter().zip(upstream).map(|(l, u)| l * u).sum(),
        }
    }

    /// Asserts `grad` equals central differences of `f` at `x` (step 1e-6, error ~1e-9).
    fn check(name: &str, x: &[f64], grad: &[f64], f: impl Fn(&[f64]) -> f64) {
        let h = 1e-6;
        let scale = grad.iter().fold(1e-3f64, |m, g| m.max(g.abs()));
        for i in 0..x.len() {
            let mut plus = x.to_vec();
            let mut minus = x.to_vec();
            plus[i] += h;
            minus[i] -= h;
            let numeric = (f(&plus) - f(&minus)) / (2.0 * h);
            assert!(
                (numeric - grad[i]).abs() <= 1e-6 * scale,
                "{name}: d/dx[{i}] analytic {} vs numeric {numeric}",
                grad[i]
            );
        }
    }

    const REDUCTIONS: [Reduction; 3] = [Reduction::None, Reduction::Mean, Reduction::Sum];

    /// Checks the analytic gradient of `loss` (`loss(x, Some(u))` gives the loss and its
    /// gradient, `loss(x, None)` the loss) against central differences, for a seeded upstream
    /// gradient of the reduction's shape over `items` items.
    fn check_loss(
        name: &str,
        x: &[f64],
        (seed, items, reduction): (u64, usize, Reduction),
        loss: impl Fn(&[f64], Option<&[f64]>) -> (Loss<f64>, Vec<f64>),
    ) {
        let len = if reduction == Reduction::None {
            items
        } else {
            1
        };
        let u = values(seed, len, 0.5, 2.0);
        let (_, grad) = loss(x, Some(&u));
        check(&format!("{name} {reduction:?}"), x, &grad, |x| {
            scalar(&loss(x, None).0, &u)
        });
    }

    #[test]
    fn cross_entropy_gradients_match_finite_differences() {
        let (n, c) = (5, 4);
        let x = values(1, n * c, -3.0, 3.0);
        let labels = [0i64, 3, -100, 1, 2];
        for reduction in REDUCTIONS {
            for smoothing in [0.0f32, 0.3] {
                for weight in [None, Some(vec![0.5f32, 2.0, 1.0, 1.5])] {
                    let options = CrossEntropy {
                        weight,
                        label_smoothing: smoothing,
                        reduction,
                        ..Default::default()
                    };
                    check_loss(&format!("{options:?}"), &x, (2, n, reduction), |x, u| {
                        cross_entropy_f64(x, c, &labels, &options, u)
                    });
                }
            }
        }
    }

    #[test]
    fn linear_gradients_match_finite_differences() {
        let shape = LinearShape {
            rows: 4,
            dim: 3,
            classes: 5,
        };
        let (nh, nw) = (4 * 3, 5 * 3);
        // hidden, classifier and bias side by side.
        let x = values(11, nh + nw + 5, -1.5, 1.5);
        let labels = [0i64, 4, -100, 2];
        for reduction in REDUCTIONS {
            for (smoothing, softcap, z_loss) in [(0.0, None, 0.0), (0.2, Some(2.0f32), 1e-2)] {
                let loss = LinearCrossEntropy {
                    cross_entropy: CrossEntropy {
                        weight: Some(vec![0.5, 2.0, 1.0, 1.5, 0.7]),
                        label_smoothing: smoothing,
                        softcap,
                        z_loss,
                        reduction,
                        ..Default::default()
                    },
                    ..Default::default()
                };
                check_loss(
                    &format!("linear {loss:?}"),
                    &x,
                    (12, 4, reduction),
                    |x, u| {
                        let params = (&x[..nh], &x[nh..nh + nw], Some(&x[nh + nw..]));
                        let (l, grads) = linear_f64(params, shape, &labels, &loss, u);
                        (l, grads.concat())
                    },
                );
            }
        }
    }

    #[test]
    fn probability_target_gradients_match_finite_differences() {
        let (n, c) = (4, 5);
        let x = values(3, n * c, -3.0, 3.0);
        let t = values(4, n * c, 0.0, 1.0);
        for reduction in REDUCTIONS {
            let options = CrossEntropy {
                weight: Some(vec![0.5, 2.0, 1.0, 1.5, 0.7]),
                label_smoothing: 0.2,
                reduction,
                ..Default::default()
            };
            check_loss(&format!("{options:?}"), &x, (5, n, reduction), |x, u| {
                cross_entropy_probs_f64(x, c, &t, &options, u)
            });
        }
    }

    #[test]
    fn binary_gradients_match_finite_differences() {
        let len = 12;
        let p = values(6, len, 0.05, 0.95);
        let x = values(7, len, -6.0, 6.0);
        let t = values(8, len, 0.0, 1.0);
        for reduction in REDUCTIONS {
            let options = BinaryCrossEntropy {
                weight: Some(
                    values(10, len, 0.5, 2.0)
                        .iter()
                        .map(|&v| v as f32)
                        .collect(),
                ),
                reduction,
            };
            check_loss("bce", &p, (9, len, reduction), |p, u| {
                bce_f64(p, &t, &options, u)
            });
            let options = BinaryCrossEntropyWithLogits {
                weight: options.weight.clone(),
                pos_weight: Some(vec![0.5, 2.0, 3.0]),
                reduction,
            };
            check_loss("bce_with_logits", &x, (9, len, reduction), |x, u| {
                bce_logits_f64(x, &t, &options, 3, u)
            });
        }
    }

    #[test]
    fn softcap_and_z_loss_gradients_match_finite_differences() {
        let (n, c) = (4, 5);
        let x = values(18, n * c, -40.0, 40.0);
        let labels = [0i64, 4, -100, 2];
        let t = values(19, n * c, 0.0, 1.0);
        for reduction in REDUCTIONS {
            let options = CrossEntropy {
                weight: Some(vec![0.5, 2.0, 1.0, 1.5, 0.7]),
                label_smoothing: 0.2,
                reduction,
                softcap: Some(15.0),
                z_loss: 0.05,
                ..Default::default()
            };
            let cap = options.softcap;
            check_loss(
                &format!("indices {options:?}"),
                &x,
                (20, n, reduction),
                |x, u| softcapped(x, cap, |z| cross_entropy_f64(z, c, &labels, &options, u)),
            );
            check_loss(
                &format!("probs {options:?}"),
                &x,
                (21, n, reduction),
                |x, u| softcapped(x, cap, |z| cross_entropy_probs_f64(z, c, &t, &options, u)),
            );
        }
    }

    #[test]
    fn nll_gradients_match_finite_differences() {
        let (n, c) = (5, 4);
        let x = values(16, n * c, -4.0, 0.0);
        let labels = [0i64, 3, -100, 1, 3];
        for reduction in REDUCTIONS {
            for weight in [None, Some(vec![0.5f32, 2.0, 1.0, 1.5])] {
                let options = NllLoss {
                    weight,
                    reduction,
                    ..Default::default()
                };
                check_loss(&format!("{options:?}"), &x, (17, n, reduction), |x, u| {
                    nll_f64(x, c, &labels, &options, u)
                });
            }
        }
    }

    /// K-dimensional inputs go through the reference as rows of positions and back: the
    /// gradient moved back to the (N, C, d) layout is that of the loss of the (N, C, d)
    /// values, class indices, probabilities and NLL.
    #[test]
    fn k_dimensional_gradients_match_finite_differences() {
        let shape = ClassShape {
            rows: 6,
            classes: 4,
            positions: 3,
        };
        let x = values(30, 24, -3.0, 3.0);
        let t = values(31, 24, 0.0, 1.0);
        let labels = [0i64, 3, -100, 1, 2, 2];
        let options = CrossEntropy {
            weight: Some(vec![0.5, 2.0, 1.0, 1.5]),
            label_smoothing: 0.2,
            softcap: Some(2.0),
            z_loss: 0.1,
            ..Default::default()
        };
        type Computed = (Loss<f64>, Vec<f64>);
        type RowLoss<'a> = &'a dyn Fn(&[f64], Option<&[f64]>) -> Computed;
        fn moved(
            shape: ClassShape,
            f: RowLoss<'_>,
        ) -> impl Fn(&[f64], Option<&[f64]>) -> Computed + '_ {
            move |x, u| {
                let (loss, grad) = f(&to_rows(x, shape), u);
                (loss, from_rows(&grad, shape))
            }
        }
        check_loss(
            "k-dim indices",
            &x,
            (32, 6, Reduction::Mean),
            moved(shape, &|x, u| {
                softcapped(x, options.softcap, |z| {
                    cross_entropy_f64(z, 4, &labels, &options, u)
                })
            }),
        );
        let rows_t = to_rows(&t, shape);
        check_loss(
            "k-dim probs",
            &x,
            (33, 6, Reduction::None),
            moved(shape, &|x, u| {
                softcapped(x, options.softcap, |z| {
                    cross_entropy_probs_f64(z, 4, &rows_t, &options, u)
                })
            }),
        );
        let nll = NllLoss {
            reduction: Reduction::Sum,
            ..Default::default()
        };
        check_loss(
            "k-dim nll",
            &x,
            (34, 6, Reduction::Sum),
            moved(shape, &|x, u| nll_f64(x, 4, &labels, &nll, u)),
        );
        assert_eq!(from_rows(&to_rows(&x, shape), shape), x);
    }

    #[test]
    fn focal_gradients_match_finite_differences() {
        let len = 12;
        let x = values(13, len, -5.0, 5.0);
        let mut t = values(14, len, 0.0, 1.0);
        t[0] = 0.0;
        t[1] = 1.0;
        for reduction in REDUCTIONS {
            for (alpha, gamma) in [(0.25f32, 2.0f32), (-1.0, 0.5), (0.9, 0.0), (0.4, 3.7)] {
                let options = SigmoidFocalLoss {
                    alpha,
                    gamma,
                    reduction,
                };
                check_loss(&format!("{options:?}"), &x, (15, len, reduction), |x, u| {
                    focal_f64(x, &t, &options, u)
                });
            }
        }
    }

    #[test]
    fn log_softmax_gradient_matches_finite_differences() {
        let (n, c) = (3, 6);
        let x: Vec<f32> = values(11, n * c, -3.0, 3.0)
            .iter()
            .map(|&v| v as f32)
            .collect();
        let g: Vec<f32> = values(12, n * c, -1.0, 1.0)
            .iter()
            .map(|&v| v as f32)
            .collect();
        let g64 = widen(&g);
        let (_, grad) = log_softmax_f64(&widen(&x), c, Some(&g64));
        check("log_softmax", &widen(&x), &grad, |x| {
            let logp: Vec<f64> = x.chunks(c).flat_map(log_softmax_row).collect();
            logp.iter().zip(&g64).map(|(l, g)| l * g).sum()
        });
    }
}
