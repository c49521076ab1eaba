//! The references of the binary family: BCE on probabilities, BCE with logits, sigmoid focal
//! loss.

use super::{reduce, scale};
use crate::loss::{BinaryCrossEntropy, BinaryCrossEntropyWithLogits, Loss, SigmoidFocalLoss};

/// The elementwise weight of element `i` (1 when absent).
fn element_weight(weight: Option<&Vec<f32>>, i: usize) -> f64 {
    // A weight of the input's trailing dimensions repeats over the leading ones.
    weight.map_or(1.0, |w| f64::from(w[i % w.len()]))
}

/// BCE on probabilities in f64, with the gradient when `upstream` is given.
pub(super) fn bce_f64(
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
/// The two forms are equal for any target, in [0, 1] or not. At an infinite `x` it is
/// PyTorch's form itself, in IEEE arithmetic (`logsigmoid(inf) = 0`, `logsigmoid(-inf) = -inf`).
pub(super) fn bce_logits_term(x: f64, t: f64, pos_weight: f64) -> f64 {
    let q = 1.0 + (pos_weight - 1.0) * t;
    if x.is_infinite() {
        let logsigmoid = if x > 0.0 { 0.0 } else { f64::NEG_INFINITY };
        return (1.0 - t) * x - q * logsigmoid;
    }
    let h = if x >= 0.0 {
        (1.0 - t) * x
    } else {
        -pos_weight * t * x
    };
    h + q * (-x.abs()).exp().ln_1p()
}

/// `sigmoid(x)`, stable for any x.
pub(super) fn sigmoid(x: f64) -> f64 {
    let z = (-x.abs()).exp();
    if x >= 0.0 {
        1.0 / (1.0 + z)
    } else {
        z / (1.0 + z)
    }
}

/// BCE with logits in f64 (PyTorch's formula), with the gradient when `upstream` is given.
pub(super) fn bce_logits_f64(
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
pub(super) fn focal_f64(
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
