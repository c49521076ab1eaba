//! A loss, an input and targets checked against each other: what the host path, the GPU form
//! and the reference dispatch on, so each loss's shape rules are written once.

use crate::error::{Error, Result};
use crate::loss::inputs::{GpuTargets, Indices, Targets};
use crate::loss::{BinaryLoss, CrossEntropy, NllLoss, Spec};

/// A loss with its targets, its input's shape checked.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Call<'a, I, V> {
    /// Log-softmax over rows of `classes`.
    LogSoftmax { rows: usize, classes: usize },
    /// Categorical cross-entropy with class indices.
    Indices {
        options: &'a CrossEntropy,
        rows: usize,
        classes: usize,
        targets: I,
    },
    /// Categorical cross-entropy with probabilities.
    Probs {
        options: &'a CrossEntropy,
        rows: usize,
        classes: usize,
        targets: V,
    },
    /// Negative log-likelihood of log-probabilities with class indices.
    Nll {
        options: &'a NllLoss,
        rows: usize,
        classes: usize,
        targets: I,
    },
    /// Binary cross-entropy over `len` elements.
    Binary {
        loss: BinaryLoss<'a>,
        len: usize,
        targets: V,
    },
}

/// The kind of targets a call was given, for the dispatch.
pub(crate) enum Given<I, V> {
    None,
    Indices(I),
    Values(V),
}

impl<'a> From<Targets<'a>> for Given<Indices<'a>, &'a [f32]> {
    fn from(t: Targets<'a>) -> Self {
        match t {
            Targets::None => Given::None,
            Targets::Indices(i) => Given::Indices(i),
            Targets::Values(v) => Given::Values(v),
        }
    }
}

impl<'a> From<GpuTargets<'a>>
    for Given<crate::gpu::tensor::GpuTensor<'a>, crate::gpu::tensor::GpuTensor<'a>>
{
    fn from(t: GpuTargets<'a>) -> Self {
        match t {
            GpuTargets::None => Given::None,
            GpuTargets::Indices(i) => Given::Indices(i),
            GpuTargets::Values(v) => Given::Values(v),
        }
    }
}

/// The number of elements of `shape`; an error when it overflows.
fn elements(shape: &[usize]) -> Result<usize> {
    shape.iter().try_fold(1usize, |n, &d| {
        n.checked_mul(d).ok_or_else(|| Error::InvalidShape {
            reason: format!("the shape {shape:?} overflows"),
        })
    })
}

/// `(rows, classes)` of a categorical input: the shape must be `[N, C]` with C >= 1.
fn rows_classes(loss: &str, shape: &[usize]) -> Result<(usize, usize)> {
    match *shape {
        [rows, classes] if classes > 0 => Ok((rows, classes)),
        [_, 0] => Err(Error::InvalidShape {
            reason: "the number of classes must be at least 1".into(),
        }),
        _ => Err(Error::InvalidShape {
            reason: format!("{loss} takes inputs of shape [N, C]; got {shape:?}"),
        }),
    }
}

/// The error for targets of the wrong kind.
fn wrong_targets(loss: &'static str, expected: &'static str, got: &'static str) -> Error {
    Error::WrongTargets {
        loss,
        expected,
        got,
    }
}

/// Checks `spec` against an input of `shape` (holding `len` values, when known) and the
/// targets given; `in_place` says the gradient is to be written over the input.
pub(crate) fn check<'a, I, V>(
    spec: Spec<'a>,
    shape: &[usize],
    len: Option<usize>,
    in_place: bool,
    targets: Given<I, V>,
) -> Result<Call<'a, I, V>> {
    let elements = elements(shape)?;
    if let Some(len) = len {
        if len != elements {
            return Err(Error::ShapeMismatch {
                what: "input",
                expected: elements,
                got: len,
                hint: format!("the shape {shape:?}"),
            });
        }
    }
    let name = spec.name();
    if in_place && !matches!(spec, Spec::CrossEntropy(_)) {
        return Err(Error::InvalidOption {
            name: "grad",
            value: "in place".into(),
            reason: format!(
                "{name} writes its gradient to a buffer of its own; in place is for \
                 cross-entropy"
            ),
        });
    }
    let given = match &targets {
        Given::None => "none",
        Given::Indices(_) => "class indices",
        Given::Values(_) => "values",
    };
    let call = match spec {
        Spec::LogSoftmax => {
            let (rows, classes) = rows_classes(name, shape)?;
            if !matches!(targets, Given::None) {
                return Err(wrong_targets(name, "no targets (Targets::None)", given));
            }
            Call::LogSoftmax { rows, classes }
        }
        Spec::CrossEntropy(options) => {
            let (rows, classes) = rows_classes(name, shape)?;
            match targets {
                Given::Indices(targets) => Call::Indices {
                    options,
                    rows,
                    classes,
                    targets,
                },
                Given::Values(targets) => Call::Probs {
                    options,
                    rows,
                    classes,
                    targets,
                },
                Given::None => {
                    return Err(wrong_targets(name, "class indices or probabilities", given))
                }
            }
        }
        Spec::NllLoss(options) => {
            let (rows, classes) = rows_classes(name, shape)?;
            match targets {
                Given::Indices(targets) => Call::Nll {
                    options,
                    rows,
                    classes,
                    targets,
                },
                _ => return Err(wrong_targets(name, "class indices", given)),
            }
        }
        Spec::BinaryCrossEntropy(_)
        | Spec::BinaryCrossEntropyWithLogits(_)
        | Spec::SigmoidFocalLoss(_) => {
            let loss = match spec {
                Spec::BinaryCrossEntropyWithLogits(o) => BinaryLoss::Logits(o),
                Spec::BinaryCrossEntropy(o) => BinaryLoss::Probs(o),
                Spec::SigmoidFocalLoss(o) => BinaryLoss::Focal(o),
                _ => return Err(wrong_targets(name, "a binary loss", given)),
            };
            let (weight, pos_weight) = match loss {
                BinaryLoss::Probs(o) => (o.weight.as_deref(), None),
                BinaryLoss::Logits(o) => (o.weight.as_deref(), o.pos_weight.as_deref()),
                BinaryLoss::Focal(_) => (None, None),
            };
            trailing("weight", weight, shape)?;
            trailing("pos_weight", pos_weight, shape)?;
            match targets {
                Given::Values(targets) => Call::Binary {
                    loss,
                    len: elements,
                    targets,
                },
                _ => {
                    let expected = "f32 targets of the input's shape";
                    return Err(wrong_targets(name, expected, given));
                }
            }
        }
    };
    Ok(call)
}

/// Checks that a BCE `weight` or `pos_weight` has the length of a trailing part of the input's
/// shape (the whole shape, its last `k` dimensions, or one value): the shapes PyTorch
/// broadcasts over the input by repeating them along the leading dimensions. A weight with
/// size-1 dimensions inside (say (N, 1) for an (N, C) input) is repeated to one of these
/// shapes by the caller.
fn trailing(what: &'static str, values: Option<&[f32]>, shape: &[usize]) -> Result<()> {
    let Some(v) = values else {
        return Ok(());
    };
    let lengths: Vec<usize> = (0..=shape.len())
        .map(|k| shape[k..].iter().product())
        .collect();
    if lengths.contains(&v.len()) {
        return Ok(());
    }
    let parts: Vec<String> = (0..=shape.len())
        .map(|k| format!("{:?}: {}", &shape[k..], lengths[k]))
        .collect();
    Err(Error::ShapeMismatch {
        what,
        expected: lengths[0],
        got: v.len(),
        hint: format!(
            "the input's shape {shape:?} or a trailing part of it, repeated over the leading \
             dimensions as PyTorch broadcasts it ({})",
            parts.join(", ")
        ),
    })
}
