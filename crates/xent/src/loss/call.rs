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
        shape: ClassShape,
        targets: I,
    },
    /// Categorical cross-entropy with probabilities.
    Probs {
        options: &'a CrossEntropy,
        shape: ClassShape,
        targets: V,
    },
    /// Negative log-likelihood of log-probabilities with class indices.
    Nll {
        options: &'a NllLoss,
        shape: ClassShape,
        targets: I,
    },
    /// Binary cross-entropy over `len` elements.
    Binary {
        loss: BinaryLoss<'a>,
        len: usize,
        targets: V,
    },
}

/// A categorical input as the kernels see it: `rows` rows of `classes` values. A row is a
/// position: of an (N, C, d1, ..., dk) input, `positions` = d1 * ... * dk per sample, whose
/// classes lie `positions` values apart (rows = N * positions); of (N, C) or unbatched (C,)
/// inputs, `positions` is 1 and a row's classes are consecutive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ClassShape {
    pub(crate) rows: usize,
    pub(crate) classes: usize,
    pub(crate) positions: usize,
}

impl ClassShape {
    /// (N, C) rows of consecutive classes.
    pub(crate) fn rows(rows: usize, classes: usize) -> ClassShape {
        ClassShape {
            rows,
            classes,
            positions: 1,
        }
    }

    /// Samples (of `positions` rows each).
    pub(crate) fn samples(&self) -> usize {
        self.rows / self.positions
    }

    /// Values per sample: C x d1 x ... x dk.
    pub(crate) fn sample_len(&self) -> usize {
        self.classes * self.positions
    }

    /// Whether a row's classes lie apart (an input with dimensions after the classes).
    pub(crate) fn strided(&self) -> bool {
        self.positions > 1
    }
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

/// The shape of a cross-entropy or NLL input, as PyTorch takes it: (C,) unbatched, (N, C), or
/// (N, C, d1, ..., dk) with the classes second. The element count has been checked.
fn class_shape(loss: &str, shape: &[usize]) -> Result<ClassShape> {
    let (samples, classes, positions) = match *shape {
        [] => {
            return Err(Error::InvalidShape {
                reason: format!(
                    "{loss} takes inputs of shape (C,), (N, C) or (N, C, d1, ..., dk); got a \
                     scalar"
                ),
            })
        }
        [classes] => (1, classes, 1),
        [n, classes, ref rest @ ..] => (n, classes, rest.iter().product::<usize>()),
    };
    if classes == 0 {
        return Err(Error::InvalidShape {
            reason: "the number of classes must be at least 1".into(),
        });
    }
    // Elements were checked not to overflow, so neither does a part of them.
    let rows = samples * positions;
    Ok(match rows {
        0 => ClassShape::rows(0, classes),
        _ => ClassShape {
            rows,
            classes,
            positions,
        },
    })
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
        return Err(crate::loss::validate::no_in_place_gradient(name));
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
            let shape = class_shape(name, shape)?;
            match targets {
                Given::Indices(targets) => Call::Indices {
                    options,
                    shape,
                    targets,
                },
                Given::Values(targets) => Call::Probs {
                    options,
                    shape,
                    targets,
                },
                Given::None => {
                    return Err(wrong_targets(name, "class indices or probabilities", given))
                }
            }
        }
        Spec::NllLoss(options) => {
            let shape = class_shape(name, shape)?;
            match targets {
                Given::Indices(targets) => Call::Nll {
                    options,
                    shape,
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
