//! Input validation shared by the GPU losses and the float64 reference: every bad input gets a
//! typed error before anything is dispatched.

use crate::error::{Error, Result};
use crate::loss::{BinaryLoss, ClassIndex, CrossEntropy, Reduction, SigmoidFocalLoss, Targets};

/// Checks an (N, C) logits buffer against its class count; returns N.
pub(crate) fn rows_of(logits: &[f32], classes: usize) -> Result<usize> {
    if classes == 0 {
        return Err(Error::InvalidShape {
            reason: "the number of classes must be at least 1".into(),
        });
    }
    if !logits.len().is_multiple_of(classes) {
        return Err(Error::InvalidShape {
            reason: format!(
                "logits has {} elements, which is not a multiple of the {classes} classes",
                logits.len()
            ),
        });
    }
    Ok(logits.len() / classes)
}

/// Checks that a buffer has the length its shape requires.
pub(crate) fn length(what: &'static str, got: usize, expected: usize, hint: &str) -> Result<()> {
    if got != expected {
        return Err(Error::ShapeMismatch {
            what,
            expected,
            got,
            hint: hint.to_string(),
        });
    }
    Ok(())
}

/// Checks an optional weight vector: its length and that every entry is finite.
pub(crate) fn weights(
    what: &'static str,
    weight: Option<&[f32]>,
    expected: usize,
    hint: &str,
) -> Result<()> {
    if let Some(w) = weight {
        length(what, w.len(), expected, hint)?;
        if let Some((index, &value)) = w.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(Error::NonFiniteWeight { what, index, value });
        }
    }
    Ok(())
}

/// Checks label smoothing is in [0, 1].
fn label_smoothing(e: f32) -> Result<()> {
    if !(0.0..=1.0).contains(&e) {
        return Err(Error::InvalidOption {
            name: "label_smoothing",
            value: e.to_string(),
            reason: "it must be in [0, 1]".into(),
        });
    }
    Ok(())
}

/// Checks a logit softcap is finite and above 0 when given.
pub(crate) fn softcap(s: Option<f32>) -> Result<()> {
    match s {
        Some(s) if !(s.is_finite() && s > 0.0) => Err(Error::InvalidOption {
            name: "softcap",
            value: s.to_string(),
            reason: "it must be finite and above 0 (None turns it off)".into(),
        }),
        _ => Ok(()),
    }
}

/// Checks every class-index target is in [0, C) or equal to `ignore_index`.
pub(crate) fn labels<L: ClassIndex>(labels: &[L], classes: usize, ignore_index: i64) -> Result<()> {
    let is_bad = |l: &L| {
        let v = l.to_i64();
        v != ignore_index && !(0..classes as i64).contains(&v)
    };
    let Some(row) = labels.iter().position(is_bad) else {
        return Ok(());
    };
    Err(Error::LabelOutOfRange {
        row,
        label: labels[row].to_i64(),
        count: labels[row..].iter().filter(|l| is_bad(l)).count(),
        classes,
        ignore_index,
    })
}

/// The class-index targets of a call `what` that takes no other kind (a split vocabulary, fused
/// linear cross-entropy), checked: one per row of `rows`, each in [0, classes) or
/// `ignore_index`; as i64.
pub(crate) fn class_indices(
    what: &'static str,
    targets: Targets<'_>,
    rows: usize,
    classes: usize,
    ignore_index: i64,
) -> Result<Vec<i64>> {
    let Targets::Indices(indices) = targets else {
        return Err(Error::Misuse {
            what,
            reason: "it takes class-index targets".into(),
        });
    };
    let labels = indices.to_i64()?;
    length("targets", labels.len(), rows, "one class index per row")?;
    self::labels(&labels, classes, ignore_index)?;
    Ok(labels)
}

/// Checks every value of `p` (BCE input probabilities or targets, named by `what`) is in
/// [0, 1]; NaN is rejected too.
pub(crate) fn probabilities(what: &'static str, p: &[f32]) -> Result<()> {
    let outside = |v: &&f32| !(0.0..=1.0).contains(*v);
    let Some(index) = p.iter().position(|v| outside(&v)) else {
        return Ok(());
    };
    Err(Error::ProbabilityOutOfRange {
        what,
        index,
        value: Some(p[index]),
        count: p[index..].iter().filter(outside).count(),
    })
}

/// Checks a BCE weight or pos_weight that repeats over an input of `len` elements (the shape
/// rule, a trailing part of the input's shape, is `loss::call`'s): its length divides `len`
/// and every value is finite. Returns the period, 1 for `None`.
pub(crate) fn period(what: &'static str, values: Option<&[f32]>, len: usize) -> Result<usize> {
    let Some(v) = values else {
        return Ok(1);
    };
    if v.is_empty() && len == 0 {
        return Ok(1); // no elements, nothing to weigh
    }
    if v.is_empty() || !len.is_multiple_of(v.len()) {
        return Err(Error::InvalidShape {
            reason: format!(
                "{what} has {} values, which do not repeat a whole number of times over the \
                 input's {len} elements",
                v.len()
            ),
        });
    }
    weights(what, Some(v), v.len(), "")?;
    Ok(v.len())
}

/// Checks the inputs of class-index cross-entropy; returns the rows (positions).
pub(crate) fn cross_entropy_indices<L: ClassIndex>(
    logits: &[f32],
    classes: usize,
    targets: &[L],
    options: &CrossEntropy,
) -> Result<usize> {
    let rule = "one class index per row: (N,) for (N, C) logits, (N, d1, ..., dk) for (N, C, \
                d1, ..., dk), one for unbatched (C,)";
    let rows = categorical_rows(logits, classes, options, (targets.len(), 1, rule))?;
    labels(targets, classes, options.ignore_index)?;
    Ok(rows)
}

/// Checks the inputs of probability-target cross-entropy; returns the rows (positions).
pub(crate) fn cross_entropy_probs(
    logits: &[f32],
    classes: usize,
    targets: &[f32],
    options: &CrossEntropy,
) -> Result<usize> {
    let rule = "probability targets have the logits' shape";
    categorical_rows(logits, classes, options, (targets.len(), classes, rule))
}

/// The rows of categorical `logits`, checked with the options and the targets' length
/// (`targets` values, `per_row` a row, as `rule` says).
fn categorical_rows(
    logits: &[f32],
    classes: usize,
    options: &CrossEntropy,
    (targets, per_row, rule): (usize, usize, &str),
) -> Result<usize> {
    let rows = rows_of(logits, classes)?;
    length("targets", targets, rows.saturating_mul(per_row), rule)?;
    cross_entropy_options(options, classes)?;
    Ok(rows)
}

/// Checks cross-entropy's options for `classes` classes: label smoothing, softcap, weights.
pub(crate) fn cross_entropy_options(options: &CrossEntropy, classes: usize) -> Result<()> {
    label_smoothing(options.label_smoothing)?;
    softcap(options.softcap)?;
    if !(options.z_loss.is_finite() && options.z_loss >= 0.0) {
        return Err(Error::InvalidOption {
            name: "z_loss",
            value: options.z_loss.to_string(),
            reason: "it must be finite and at least 0".into(),
        });
    }
    weights(
        "weight",
        options.weight.as_deref(),
        classes,
        "one weight per class",
    )
}

/// Checks the inputs of binary cross-entropy: targets of the input's length, weight and
/// pos_weight repeating over it, probabilities and targets in [0, 1] (targets of BCE with
/// logits finite).
pub(crate) fn binary(input: &[f32], target: &[f32], loss: BinaryLoss<'_>) -> Result<()> {
    let weight = match loss {
        BinaryLoss::Probs(o) => o.weight.as_deref(),
        BinaryLoss::Logits(o) => o.weight.as_deref(),
        BinaryLoss::Focal(_) => None,
    };
    length("target", target.len(), input.len(), "the input's shape")?;
    period("weight", weight, input.len())?;
    match loss {
        BinaryLoss::Probs(_) => probabilities("input probability", input)?,
        BinaryLoss::Logits(o) => {
            period("pos_weight", o.pos_weight.as_deref(), input.len())?;
            return finite_targets(target);
        }
        BinaryLoss::Focal(o) => focal(o)?,
    }
    probabilities("target", target)
}

/// Checks every target of BCE with logits is finite (PyTorch takes any finite target).
pub(crate) fn finite_targets(target: &[f32]) -> Result<()> {
    let bad = |v: &&f32| !v.is_finite();
    let Some(index) = target.iter().position(|v| bad(&v)) else {
        return Ok(());
    };
    Err(Error::NonFiniteTarget {
        index,
        value: Some(target[index]),
        count: target[index..].iter().filter(bad).count(),
    })
}

/// Checks the focal loss's options: `gamma` finite and >= 0 (a negative one makes a perfect
/// prediction's loss infinite), `alpha` finite.
pub(crate) fn focal(options: &SigmoidFocalLoss) -> Result<()> {
    if !(options.gamma.is_finite() && options.gamma >= 0.0) {
        return Err(Error::InvalidOption {
            name: "gamma",
            value: options.gamma.to_string(),
            reason: "it must be finite and at least 0".into(),
        });
    }
    if !options.alpha.is_finite() {
        return Err(Error::InvalidOption {
            name: "alpha",
            value: options.alpha.to_string(),
            reason: "it must be finite (below 0 turns the alpha factor off)".into(),
        });
    }
    Ok(())
}

/// Checks the upstream gradient and returns it, ones when `None`: one value for `Mean` and
/// `Sum`, one per item (row or element) for `None`.
pub(crate) fn upstream(
    upstream: Option<&[f32]>,
    reduction: Reduction,
    items: usize,
    item: &str,
) -> Result<Vec<f32>> {
    let expected = match reduction {
        Reduction::None => items,
        Reduction::Mean | Reduction::Sum => 1,
    };
    match upstream {
        None => Ok(vec![1.0; expected]),
        Some(u) => {
            let hint = match reduction {
                Reduction::None => format!("one upstream gradient per {item} for reduction None"),
                _ => "one upstream gradient for a reduced loss".to_string(),
            };
            length("upstream", u.len(), expected, &hint)?;
            Ok(u.to_vec())
        }
    }
}

/// The error for an in-place gradient asked of `loss`, which writes its gradient to a buffer
/// of its own (only cross-entropy writes over its logits).
pub(crate) fn no_in_place_gradient(loss: &str) -> Error {
    Error::Misuse {
        what: "an in-place gradient",
        reason: format!(
            "{loss} writes its gradient to a buffer of its own (only cross-entropy writes over \
             its logits): use Input::with_grad, or GradMode::Separate on the GPU"
        ),
    }
}
