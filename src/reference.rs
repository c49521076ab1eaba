//! The float64 CPU reference of every loss, with the same options and the same validation as
//! the GPU functions. Tests judge the GPU against it; users can cross-check with it.
//!
//! Each function follows PyTorch's definition literally in f64 (max subtracted, then
//! `logp = x - m - log(s)`), so it is exact to about 1e-15 for f32 inputs and gives NaN and
//! infinity where PyTorch does.

use crate::error::Result;
use crate::loss::{
    validate, BceOptions, BceWithLogitsOptions, ClassIndex, CrossEntropyOptions, Loss, Reduction,
};

/// Log-softmax of one row in f64. NaN anywhere (or +inf, or a row of -inf) gives a NaN row.
fn log_softmax_row(row: &[f32]) -> Vec<f64> {
    let m = row.iter().fold(f64::NEG_INFINITY, |m, &x| {
        let x = f64::from(x);
        if m.is_nan() || x.is_nan() {
            f64::NAN
        } else {
            m.max(x)
        }
    });
    let s: f64 = row.iter().map(|&x| (f64::from(x) - m).exp()).sum();
    let ls = s.ln();
    row.iter().map(|&x| f64::from(x) - m - ls).collect()
}

/// Log-softmax of each row of an (N, C) batch, in f64.
pub fn log_softmax(logits: &[f32], classes: usize) -> Result<Vec<f64>> {
    validate::rows_of(logits, classes)?;
    Ok(logits.chunks(classes).flat_map(log_softmax_row).collect())
}

/// Combines per-item losses and their mean denominators as `reduction` says.
fn reduce(losses: Vec<f64>, denominator: f64, reduction: Reduction) -> Loss<f64> {
    match reduction {
        Reduction::None => Loss::Unreduced(losses),
        Reduction::Sum => Loss::Reduced(losses.iter().sum()),
        Reduction::Mean => Loss::Reduced(losses.iter().sum::<f64>() / denominator),
    }
}

fn class_weight(options: &CrossEntropyOptions, c: usize) -> f64 {
    options.weight.as_ref().map_or(1.0, |w| f64::from(w[c]))
}

/// Categorical cross-entropy with class-index targets, in f64; see
/// [`crate::Context::cross_entropy`].
pub fn cross_entropy<L: ClassIndex>(
    logits: &[f32],
    classes: usize,
    targets: &[L],
    options: &CrossEntropyOptions,
) -> Result<Loss<f64>> {
    let rows = validate::rows_of(logits, classes)?;
    validate::length("targets", targets.len(), rows, "one class index per row")?;
    validate::label_smoothing(options.label_smoothing)?;
    validate::weights(
        "weight",
        options.weight.as_deref(),
        classes,
        "one weight per class",
    )?;
    validate::labels(targets, classes, options.ignore_index)?;
    let e = f64::from(options.label_smoothing);
    let mut losses = Vec::with_capacity(rows);
    let mut denominator = 0.0;
    for (row, target) in logits.chunks(classes.max(1)).zip(targets) {
        let y = target.to_i64();
        if y == options.ignore_index {
            losses.push(0.0);
            continue;
        }
        let y = y as usize;
        let logp = log_softmax_row(row);
        let wy = class_weight(options, y);
        let mut l = -wy * logp[y];
        if e > 0.0 {
            let smooth: f64 = -(0..classes)
                .map(|c| class_weight(options, c) * logp[c])
                .sum::<f64>();
            l = (1.0 - e) * l + e / classes as f64 * smooth;
        }
        losses.push(l);
        denominator += wy;
    }
    Ok(reduce(losses, denominator, options.reduction))
}

/// Categorical cross-entropy with probability targets, in f64; see
/// [`crate::Context::cross_entropy_probs`].
pub fn cross_entropy_probs(
    logits: &[f32],
    classes: usize,
    targets: &[f32],
    options: &CrossEntropyOptions,
) -> Result<Loss<f64>> {
    let rows = validate::rows_of(logits, classes)?;
    validate::length(
        "targets",
        targets.len(),
        logits.len(),
        "probability targets have the logits' shape (N, C)",
    )?;
    validate::label_smoothing(options.label_smoothing)?;
    validate::weights(
        "weight",
        options.weight.as_deref(),
        classes,
        "one weight per class",
    )?;
    let e = f64::from(options.label_smoothing);
    let losses: Vec<f64> = logits
        .chunks(classes)
        .zip(targets.chunks(classes))
        .map(|(row, t)| {
            let logp = log_softmax_row(row);
            -(0..classes)
                .map(|c| {
                    let tc = (1.0 - e) * f64::from(t[c]) + e / classes as f64;
                    class_weight(options, c) * tc * logp[c]
                })
                .sum::<f64>()
        })
        .collect();
    Ok(reduce(losses, rows as f64, options.reduction))
}

fn element_weight(weight: Option<&Vec<f32>>, i: usize) -> f64 {
    weight.map_or(1.0, |w| f64::from(w[i]))
}

/// Binary cross-entropy on probabilities, in f64; see
/// [`crate::Context::binary_cross_entropy`].
pub fn binary_cross_entropy(
    input: &[f32],
    target: &[f32],
    options: &BceOptions,
) -> Result<Loss<f64>> {
    validate::length("target", target.len(), input.len(), "the input's shape")?;
    validate::weights(
        "weight",
        options.weight.as_deref(),
        input.len(),
        "one weight per input element",
    )?;
    validate::probabilities(input)?;
    let losses: Vec<f64> = input
        .iter()
        .zip(target)
        .enumerate()
        .map(|(i, (&p, &t))| {
            let (p, t) = (f64::from(p), f64::from(t));
            let log_p = p.ln().max(-100.0);
            let log_1mp = (-p).ln_1p().max(-100.0);
            -element_weight(options.weight.as_ref(), i) * (t * log_p + (1.0 - t) * log_1mp)
        })
        .collect();
    Ok(reduce(losses, input.len() as f64, options.reduction))
}

/// `log(sigmoid(x))`, stable for any x.
fn log_sigmoid(x: f64) -> f64 {
    x.min(0.0) - (-x.abs()).exp().ln_1p()
}

/// Binary cross-entropy with logits, in f64; see
/// [`crate::Context::binary_cross_entropy_with_logits`].
pub fn binary_cross_entropy_with_logits(
    input: &[f32],
    target: &[f32],
    options: &BceWithLogitsOptions,
) -> Result<Loss<f64>> {
    validate::length("target", target.len(), input.len(), "the input's shape")?;
    validate::weights(
        "weight",
        options.weight.as_deref(),
        input.len(),
        "one weight per input element",
    )?;
    let last_dim = validate::last_dim(input.len(), options.pos_weight.as_deref())?;
    let losses: Vec<f64> = input
        .iter()
        .zip(target)
        .enumerate()
        .map(|(i, (&x, &t))| {
            let (x, t) = (f64::from(x), f64::from(t));
            let q = options
                .pos_weight
                .as_ref()
                .map_or(1.0, |pw| 1.0 + (f64::from(pw[i % last_dim]) - 1.0) * t);
            element_weight(options.weight.as_ref(), i) * ((1.0 - t) * x - q * log_sigmoid(x))
        })
        .collect();
    Ok(reduce(losses, input.len() as f64, options.reduction))
}
