//! The references of the categorical family: log-softmax, NLL, cross-entropy with class
//! indices or probabilities, with softcap, z-loss and log-sum-exp outputs.

use super::{reduce, scale};
use crate::loss::{CrossEntropy, Loss, NllLoss};

/// Log-softmax of one row in f64. NaN anywhere (or +inf, or a row of -inf) gives a NaN row.
pub(super) fn log_softmax_row(row: &[f64]) -> Vec<f64> {
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
pub(super) fn log_softmax_f64(
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

/// Each row's log-sum-exp over its (softcapped) logits, `CrossEntropy::return_lse`: NaN for
/// a row that holds NaN or (uncapped) +inf, as that row's loss is; -inf for a row of -inf.
pub(super) fn rows_lse(x: &[f64], classes: usize, softcap: Option<f32>) -> Vec<f64> {
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

/// `loss` of the logits read through a softcap S (`S tanh(x / S)`, PyTorch's expression), its
/// gradient taken back through it (times `1 / cosh^2(x / S)`); `loss` of `x` itself without one.
pub(super) fn softcapped(
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
pub(super) fn nll_f64(
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
pub(super) fn cross_entropy_f64(
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
pub(super) fn log_sum_exp(row: &[f64]) -> f64 {
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
pub(super) fn cross_entropy_probs_f64(
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
