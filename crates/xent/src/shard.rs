//! Cross-entropy over a vocabulary split across devices: each device holds the logits of a
//! range of classes, computes a small per-row state over them, the states of every shard are
//! merged (on any machine, in any grouping), and each device then gets the full loss and the
//! gradient of its own classes from the merged state.
//!
//! The state of a row over shard k's classes is four f32 values, `(lse_k, t_k, W_k, b_k)`:
//! the log-sum-exp of the shard's (softcapped) logits z, the target's logit if the target is
//! in the shard (else 0), the shard's summed class weight, and `b_k = sum_c w_c (z_c - lse_k)`.
//! Two states merge exactly into one over the union of their classes:
//!
//! ```text
//! lse = logaddexp(lse_1, lse_2)   t = t_1 + t_2   W = W_1 + W_2
//! b = b_1 + W_1 (lse_1 - lse) + b_2 + W_2 (lse_2 - lse)
//! ```
//!
//! From the merged state, with `e` the label smoothing and `V` the vocabulary's size, a row's
//! loss is `(1 - e) w_y (lse - t) - (e / V) b + z lse^2`, and its gradient on class c is that
//! of unsplit cross-entropy with `p_c = exp(z_c - lse)`.

use crate::context::Context;
use crate::error::{Error, Result};
use crate::gpu::buffers;
use crate::gpu::tensor::GpuTensor;
use crate::gpu::Gpu;
use crate::kernels::cross_entropy::{gpu_labels, prepare_shard_step, ShardStep, SHARD_STATE_LEN};
use crate::loss::call::ClassShape;
use crate::loss::GradMode;
use crate::loss::{validate, CrossEntropy, Input, Output, Reduction, Targets};

/// Where one device's logits sit in a vocabulary split across devices: its (N, C) logits are
/// the classes `first .. first + C` of a vocabulary of `vocab` classes.
///
/// ```
/// // Two devices, a vocabulary of 50000: classes 0..25000 and 25000..50000.
/// let shards = [xent::VocabShard { first: 0, vocab: 50_000 }, xent::VocabShard { first: 25_000, vocab: 50_000 }];
/// assert_eq!(shards[1].first, 25_000);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VocabShard {
    /// The vocabulary index of the shard's first class.
    pub first: usize,
    /// The classes of the whole vocabulary.
    pub vocab: usize,
}

/// The per-row states of cross-entropy over some of a vocabulary's classes (see
/// [`Context::shard_states`]): four f32 per row, a plain buffer that a distributed engine can
/// gather between machines ([`values`](Self::values), [`from_values`](Self::from_values)) and
/// merge with [`merge`](Self::merge). Merging is exact up to f32 rounding, in any order and
/// grouping. The states know the classes they cover: merging overlapping shards, or
/// finishing with states that miss some of the vocabulary, is an error.
///
/// ```
/// use xent::{Context, CrossEntropy, Input, ShardStates, VocabShard};
///
/// let ctx = Context::new()?;
/// let loss = CrossEntropy::default();
/// let labels = [2i64, 0];
/// // Rows of 4 classes, held as classes 0..2 and 2..4.
/// let (left, right) = ([1.0f32, 2.0, -1.0, 0.5], [0.0f32, 3.0, 1.0, 1.0]);
/// let a = ctx.shard_states(&loss, VocabShard { first: 0, vocab: 4 }, Input::new(&left, [2, 2]), &labels)?;
/// let b = ctx.shard_states(&loss, VocabShard { first: 2, vocab: 4 }, Input::new(&right, [2, 2]), &labels)?;
/// // The values travel as plain f32 (to another machine, say) with the classes they cover.
/// let a = ShardStates::from_values(a.values().to_vec(), 0..2, 4)?;
/// let merged = a.merge(&b)?;
/// assert_eq!(merged.classes(), &[0..4]);
/// // The first value of each row's merged state is its log-sum-exp over all four classes.
/// let lse0 = (1f32.exp() + 2f32.exp() + 0f32.exp() + 3f32.exp()).ln();
/// assert!((merged.values()[0] - lse0).abs() < 1e-5);
/// # Ok::<(), xent::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct ShardStates {
    values: Vec<f32>,
    /// The classes covered: sorted, disjoint, none empty, touching ranges joined.
    classes: Vec<std::ops::Range<usize>>,
    vocab: usize,
}

impl ShardStates {
    /// The f32 values of one row's state: `(lse, target logit, weight sum, b)`.
    pub const VALUES_PER_ROW: usize = SHARD_STATE_LEN;

    /// States from their plain values (as [`values`](Self::values) gave them, on this machine
    /// or another), over the classes `classes` of a vocabulary of `vocab`: a multiple of
    /// [`VALUES_PER_ROW`](Self::VALUES_PER_ROW) values, and classes within the vocabulary.
    ///
    /// ```
    /// let states = xent::ShardStates::from_values(vec![0.0; 8], 0..3, 10)?;
    /// assert_eq!(states.rows(), 2);
    /// assert!(xent::ShardStates::from_values(vec![0.0; 6], 0..3, 10).is_err());
    /// assert!(xent::ShardStates::from_values(vec![0.0; 8], 8..12, 10).is_err());
    /// # Ok::<(), xent::Error>(())
    /// ```
    pub fn from_values(
        values: Vec<f32>,
        classes: std::ops::Range<usize>,
        vocab: usize,
    ) -> Result<ShardStates> {
        if !values.len().is_multiple_of(Self::VALUES_PER_ROW) {
            return Err(Error::InvalidShape {
                reason: format!(
                    "{} shard state values are not rows of {}",
                    values.len(),
                    Self::VALUES_PER_ROW
                ),
            });
        }
        if classes.is_empty() || classes.end > vocab {
            return Err(Error::InvalidShape {
                reason: format!(
                    "shard states over classes {classes:?} of a vocabulary of {vocab}: they \
                     cover at least one class, within the vocabulary"
                ),
            });
        }
        Ok(ShardStates {
            values,
            classes: vec![classes],
            vocab,
        })
    }

    /// The classes these states cover, in order, touching ranges joined.
    ///
    /// ```
    /// let a = xent::ShardStates::from_values(vec![0.0; 4], 0..3, 10)?;
    /// let b = xent::ShardStates::from_values(vec![0.0; 4], 5..10, 10)?;
    /// assert_eq!(a.merge(&b)?.classes(), &[0..3, 5..10]);
    /// # Ok::<(), xent::Error>(())
    /// ```
    pub fn classes(&self) -> &[std::ops::Range<usize>] {
        &self.classes
    }

    /// Whether these states cover the whole vocabulary, each class once: what
    /// [`Context::shard_finish`] needs.
    ///
    /// ```
    /// let a = xent::ShardStates::from_values(vec![0.0; 4], 0..3, 5)?;
    /// assert!(!a.is_complete());
    /// let b = xent::ShardStates::from_values(vec![0.0; 4], 3..5, 5)?;
    /// assert!(a.merge(&b)?.is_complete());
    /// # Ok::<(), xent::Error>(())
    /// ```
    pub fn is_complete(&self) -> bool {
        matches!(&self.classes[..], [only] if *only == (0..self.vocab))
    }

    /// The states as plain values, [`VALUES_PER_ROW`](Self::VALUES_PER_ROW) per row.
    ///
    /// ```
    /// let states = xent::ShardStates::from_values(vec![1.0, 0.0, 1.0, 0.0], 0..1, 1)?;
    /// assert_eq!(states.values(), &[1.0, 0.0, 1.0, 0.0]);
    /// # Ok::<(), xent::Error>(())
    /// ```
    pub fn values(&self) -> &[f32] {
        &self.values
    }

    /// Rows.
    ///
    /// ```
    /// assert_eq!(xent::ShardStates::from_values(vec![0.0; 12], 0..4, 4)?.rows(), 3);
    /// # Ok::<(), xent::Error>(())
    /// ```
    pub fn rows(&self) -> usize {
        self.values.len() / Self::VALUES_PER_ROW
    }

    /// The states over the classes of both `self` and `other` (disjoint shards of one
    /// vocabulary, for the same rows); an error when their rows or vocabularies differ, or
    /// their classes overlap. A row of -inf logits (lse -inf) adds nothing.
    ///
    /// ```
    /// // Each shard alone: lse ln 2 over two equal logits of 0, weight sum 2, b = -2 ln 2.
    /// let ln2 = 2f32.ln();
    /// let state = vec![ln2, 0.0, 2.0, -2.0 * ln2];
    /// let left = xent::ShardStates::from_values(state.clone(), 0..2, 4)?;
    /// let right = xent::ShardStates::from_values(state, 2..4, 4)?;
    /// let whole = left.merge(&right)?;
    /// let ln4 = 4f32.ln();
    /// assert!((whole.values()[0] - ln4).abs() < 1e-6 && (whole.values()[3] + 4.0 * ln4).abs() < 1e-5);
    /// # Ok::<(), xent::Error>(())
    /// ```
    pub fn merge(&self, other: &ShardStates) -> Result<ShardStates> {
        if self.rows() != other.rows() {
            return Err(Error::ShapeMismatch {
                what: "shard states",
                expected: self.rows(),
                got: other.rows(),
                hint: "states of the same rows, from shards of one vocabulary".into(),
            });
        }
        if self.vocab != other.vocab {
            return Err(Error::ShapeMismatch {
                what: "shard states' vocabulary",
                expected: self.vocab,
                got: other.vocab,
                hint: "states of shards of one vocabulary".into(),
            });
        }
        let classes = union(&self.classes, &other.classes)?;
        let values = self
            .values
            .chunks(Self::VALUES_PER_ROW)
            .zip(other.values.chunks(Self::VALUES_PER_ROW))
            .flat_map(|(a, b)| merge_row(a, b))
            .collect();
        Ok(ShardStates {
            values,
            classes,
            vocab: self.vocab,
        })
    }
}

/// The classes of two disjoint sets of ranges together, touching ranges joined; an error
/// naming the classes both hold.
fn union(
    a: &[std::ops::Range<usize>],
    b: &[std::ops::Range<usize>],
) -> Result<Vec<std::ops::Range<usize>>> {
    let mut all: Vec<_> = a.iter().chain(b).cloned().collect();
    all.sort_by_key(|r| r.start);
    let mut out: Vec<std::ops::Range<usize>> = Vec::with_capacity(all.len());
    for r in all {
        match out.last_mut() {
            Some(last) if r.start < last.end => {
                return Err(Error::Misuse {
                    what: "ShardStates::merge",
                    reason: format!(
                        "the shards overlap: classes {:?} are in both; merge each shard's \
                         states once",
                        r.start..r.end.min(last.end)
                    ),
                });
            }
            Some(last) if r.start == last.end => last.end = r.end,
            _ => out.push(r),
        }
    }
    Ok(out)
}

/// Two rows' states merged (see the module header), in f64 and rounded once.
fn merge_row(a: &[f32], b: &[f32]) -> [f32; SHARD_STATE_LEN] {
    let [l1, t1, w1, b1] = [a[0], a[1], a[2], a[3]].map(f64::from);
    let [l2, t2, w2, b2] = [b[0], b[1], b[2], b[3]].map(f64::from);
    let m = l1.max(l2);
    let lse = if m == f64::NEG_INFINITY || m.is_nan() {
        // Both empty (or NaN, which stays NaN through the sums below).
        l1 + l2
    } else {
        m + ((l1 - m).exp() + (l2 - m).exp()).ln()
    };
    // A shard with lse -inf has only -inf logits: its b terms are 0 by the kernel's rule that
    // -inf logits add nothing, and W (lse - lse_k) would be -inf times its weight.
    let rebased = |l: f64, w: f64, b: f64| {
        if l == f64::NEG_INFINITY {
            0.0
        } else {
            b + w * (l - lse)
        }
    };
    let bsum = rebased(l1, w1, b1) + rebased(l2, w2, b2);
    [lse, t1 + t2, w1 + w2, bsum].map(|v| v as f32)
}

/// A shard's checked call: its shape, its labels as the GPU reads them (with the
/// `ignore_index` they are compared with), and its options.
struct ShardCall {
    shape: ClassShape,
    labels: Vec<i32>,
    options: CrossEntropy,
}

impl ShardCall {
    /// The shard's logits and labels in GPU buffers, as the kernel reads them.
    fn upload(&self, gpu: &Gpu, logits: &[f32]) -> Result<[wgpu::Buffer; 2]> {
        Ok([
            buffers::upload(gpu, "logits", logits)?,
            buffers::upload(gpu, "targets", &self.labels)?,
        ])
    }
}

/// Checks a shard's logits, targets and options against the vocabulary.
fn check_shard(
    loss: &CrossEntropy,
    shard: VocabShard,
    input: &Input<'_>,
    targets: Targets<'_>,
) -> Result<ShardCall> {
    let [rows, classes] = input.shape[..] else {
        return Err(Error::InvalidShape {
            reason: format!(
                "a shard's logits are (N, C), not {:?}: its classes of each row",
                input.shape
            ),
        });
    };
    let end = shard.first.checked_add(classes);
    if classes == 0 || end.is_none_or(|end| end > shard.vocab) {
        return Err(Error::InvalidShape {
            reason: format!(
                "a shard of {classes} classes from class {} does not fit a vocabulary of {} \
                 (it needs at least one class, within the vocabulary)",
                shard.first, shard.vocab
            ),
        });
    }
    if loss.return_lse {
        return Err(Error::InvalidOption {
            name: "return_lse",
            value: "true".into(),
            reason: "a shard's log-sum-exp over the whole vocabulary is the first value of each \
                     row's merged state"
                .into(),
        });
    }
    let len = rows
        .checked_mul(classes)
        .ok_or_else(|| Error::InvalidShape {
            reason: format!("{rows} x {classes} logits overflow"),
        })?;
    validate::length("logits", input.values().len(), len, "(N, C)")?;
    validate::cross_entropy_options(loss, shard.vocab)?;
    let labels = validate::class_indices(
        "shard_states",
        targets,
        rows,
        shard.vocab,
        loss.ignore_index,
    )?;
    let (labels, ignore_index) = gpu_labels(&labels, loss.ignore_index);
    Ok(ShardCall {
        shape: ClassShape::rows(rows, classes),
        labels,
        options: CrossEntropy {
            ignore_index,
            ..loss.clone()
        },
    })
}

impl Context {
    /// The per-row states of cross-entropy `loss` over this device's classes of a vocabulary
    /// (`shard`): `input` holds (N, C) logits, the classes `shard.first .. shard.first + C`;
    /// `targets` are class indices of the whole vocabulary. Merge every shard's states
    /// ([`ShardStates::merge`]), then finish on each device with
    /// [`shard_finish`](Self::shard_finish). `loss` holds the whole vocabulary's options
    /// (class weights of length `shard.vocab`).
    ///
    /// See [`ShardStates`] for an example. Errors as [`Context::compute`], and
    /// [`Error::InvalidShape`] for a shard outside the vocabulary.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn shard_states<'a>(
        &self,
        loss: &CrossEntropy,
        shard: VocabShard,
        input: Input<'a>,
        targets: impl Into<Targets<'a>>,
    ) -> Result<ShardStates> {
        self.gpu()
            .block_on(self.shard_states_async(loss, shard, input, targets))
    }

    /// [`shard_states`](Self::shard_states) without blocking.
    pub async fn shard_states_async<'a>(
        &self,
        loss: &CrossEntropy,
        shard: VocabShard,
        input: Input<'a>,
        targets: impl Into<Targets<'a>>,
    ) -> Result<ShardStates> {
        let call = check_shard(loss, shard, &input, targets.into())?;
        let gpu = self.gpu();
        let [logits, labels] = call.upload(gpu, input.values())?;
        let step = ShardStep::State {
            first: shard.first,
            total: shard.vocab,
        };
        let tensors = (GpuTensor::new(&logits), GpuTensor::new(&labels));
        let options = CrossEntropy {
            reduction: Reduction::None,
            ..call.options
        };
        let prepared = prepare_shard_step(gpu, tensors, call.shape, &options, GradMode::Off, step)?;
        prepared.run_async().await?;
        let values = prepared.read_lse_async().await?.unwrap_or_default();
        let classes = call.shape.classes;
        ShardStates::from_values(values, shard.first..shard.first + classes, shard.vocab)
    }

    /// The loss of `loss` over the whole vocabulary and the gradient of this device's
    /// classes, from the states of every shard merged (`merged`, see
    /// [`shard_states`](Self::shard_states)): `input` holds this shard's (N, C) logits (with
    /// [`Input::with_grad`] for the gradient, (N, C)), `targets` the class indices of the whole
    /// vocabulary. Every shard gets the same loss; the gradients of all shards side by side
    /// are the unsplit gradient.
    ///
    /// ```
    /// use xent::{Context, CrossEntropy, Input, VocabShard};
    ///
    /// let ctx = Context::new()?;
    /// let loss = CrossEntropy { label_smoothing: 0.1, ..Default::default() };
    /// let labels = [2i64, 0];
    /// let (left, right) = ([1.0f32, 2.0, -1.0, 0.5], [0.0f32, 3.0, 1.0, 1.0]);
    /// let (a, b) = (VocabShard { first: 0, vocab: 4 }, VocabShard { first: 2, vocab: 4 });
    /// let merged = ctx
    ///     .shard_states(&loss, a, Input::new(&left, [2, 2]), &labels)?
    ///     .merge(&ctx.shard_states(&loss, b, Input::new(&right, [2, 2]), &labels)?)?;
    /// let out = ctx.shard_finish(&loss, a, Input::new(&left, [2, 2]).with_grad(), &labels, &merged)?;
    /// // The same loss as the unsplit logits give.
    /// let whole = [1.0f32, 2.0, 0.0, 3.0, -1.0, 0.5, 1.0, 1.0];
    /// let want = ctx.compute(&loss, Input::new(&whole, [2, 4]), &labels)?;
    /// assert!((out.loss.scalar().unwrap() - want.loss.scalar().unwrap()).abs() < 1e-5);
    /// assert_eq!(out.grad.unwrap().len(), 4); // this shard's (2, 2)
    /// # Ok::<(), xent::Error>(())
    /// ```
    #[cfg(not(target_arch = "wasm32"))]
    pub fn shard_finish<'a>(
        &self,
        loss: &CrossEntropy,
        shard: VocabShard,
        input: Input<'a>,
        targets: impl Into<Targets<'a>>,
        merged: &ShardStates,
    ) -> Result<Output> {
        self.gpu()
            .block_on(self.shard_finish_async(loss, shard, input, targets, merged))
    }

    /// [`shard_finish`](Self::shard_finish) without blocking.
    pub async fn shard_finish_async<'a>(
        &self,
        loss: &CrossEntropy,
        shard: VocabShard,
        input: Input<'a>,
        targets: impl Into<Targets<'a>>,
        merged: &ShardStates,
    ) -> Result<Output> {
        if input.is_in_place() {
            return Err(Error::Misuse {
                what: "shard_finish",
                reason: "a shard's gradient goes to a buffer of its own: use Input::with_grad"
                    .into(),
            });
        }
        let call = check_shard(loss, shard, &input, targets.into())?;
        let rows = call.shape.rows;
        validate::length(
            "merged shard states",
            merged.rows(),
            rows,
            "one state per row",
        )?;
        if merged.vocab != shard.vocab || !merged.is_complete() {
            return Err(Error::Misuse {
                what: "shard_finish",
                reason: format!(
                    "the merged states cover classes {:?} of a vocabulary of {}, not every \
                     class of the shard's vocabulary of {} once: merge the states of every \
                     shard first",
                    merged.classes, merged.vocab, shard.vocab
                ),
            });
        }
        let mode = match input.wants_grad() {
            true => GradMode::Separate,
            false => GradMode::Off,
        };
        let upstream = match mode {
            GradMode::Off => None,
            _ => Some(validate::upstream(
                input.upstream(),
                loss.reduction,
                rows,
                "row",
            )?),
        };
        let gpu = self.gpu();
        let [logits, labels] = call.upload(gpu, input.values())?;
        let states = buffers::upload(gpu, "merged shard states", merged.values())?;
        let step = ShardStep::Finish {
            first: shard.first,
            total: shard.vocab,
            merged: &states,
        };
        let tensors = (GpuTensor::new(&logits), GpuTensor::new(&labels));
        let prepared = prepare_shard_step(gpu, tensors, call.shape, &call.options, mode, step)?;
        if let Some(upstream) = &upstream {
            prepared.set_upstream(upstream)?;
        }
        prepared.run_async().await?;
        let loss = prepared.read_loss_async().await?;
        let grad = prepared.read_grad_async().await?;
        Ok(Output {
            loss,
            grad,
            lse: None,
        })
    }
}
