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
use crate::error::{Error, Operation, Result};
use crate::gpu::tensor::GpuTensor;
use crate::gpu::Gpu;
use crate::host::categorical::host_key;
use crate::host::{HostKey, HostLoss};
use crate::kernels::cross_entropy::{gpu_labels, prepare_shard_step, ShardStep, SHARD_STATE_LEN};
use crate::loss::call::ClassShape;
use crate::loss::{validate, CrossEntropy, GpuInput, GpuTargets, GradMode, Input, Output};
use crate::loss::{Reduction, Targets};
use crate::prepared::PreparedLoss;

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
/// [`SplitStates`]): four f32 per row, a plain buffer that a distributed engine can
/// gather between machines ([`values`](Self::values), [`from_values`](Self::from_values)) and
/// merge with [`merge`](Self::merge). Merging is exact up to f32 rounding, in any order and
/// grouping. The states know the classes they cover: merging overlapping shards, or
/// finishing with states that miss some of the vocabulary, is an error.
///
/// ```
/// use xent::{Context, CrossEntropy, Input, ShardStates, SplitStates, VocabShard};
///
/// let ctx = Context::new()?;
/// let states = |first| SplitStates { cross_entropy: CrossEntropy::default(), shard: VocabShard { first, vocab: 4 } };
/// let labels = [2i64, 0];
/// // Rows of 4 classes, held as classes 0..2 and 2..4.
/// let (left, right) = ([1.0f32, 2.0, -1.0, 0.5], [0.0f32, 3.0, 1.0, 1.0]);
/// let a = ctx.compute(&states(0), Input::new(&left, [2, 2]), &labels)?;
/// let b = ctx.compute(&states(2), Input::new(&right, [2, 2]), &labels)?;
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

    /// The states as plain bytes (little-endian f32 on every platform wgpu runs on): what a
    /// transport carries between machines, to [`from_bytes`](Self::from_bytes) there. The
    /// same bytes as a [`PreparedStates::states_buffer`] holds.
    ///
    /// ```
    /// let states = xent::ShardStates::from_values(vec![1.5, 0.0, 2.0, -1.0], 0..2, 4)?;
    /// let bytes = states.as_bytes().to_vec(); // sent, received
    /// let back = xent::ShardStates::from_bytes(&bytes, 0..2, 4)?;
    /// assert_eq!(back, states);
    /// # Ok::<(), xent::Error>(())
    /// ```
    pub fn as_bytes(&self) -> &[u8] {
        bytemuck::cast_slice(&self.values)
    }

    /// States from plain bytes (as [`as_bytes`](Self::as_bytes) or a states buffer gave
    /// them) over the classes `classes` of a vocabulary of `vocab`: as
    /// [`from_values`](Self::from_values), and an error for bytes that are not whole f32.
    pub fn from_bytes(
        bytes: &[u8],
        classes: std::ops::Range<usize>,
        vocab: usize,
    ) -> Result<ShardStates> {
        if !bytes.len().is_multiple_of(4) {
            return Err(Error::InvalidShape {
                reason: format!(
                    "{} bytes of shard states are not whole f32 values",
                    bytes.len()
                ),
            });
        }
        let values: Vec<f32> = bytemuck::pod_collect_to_vec(bytes);
        ShardStates::from_values(values, classes, vocab)
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
    /// [`SplitFinish`] needs.
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

/// The per-row states of cross-entropy over one device's classes of a vocabulary split across
/// devices: the first step of the split. [`Context::compute`] takes (N, C) logits (an
/// [`Input`], the classes `shard.first .. shard.first + C`) and class-index targets of the
/// whole vocabulary, and gives [`ShardStates`]; [`Context::prepare`] takes them in GPU buffers
/// and gives a [`PreparedStates`], whose states stay in a GPU buffer. `cross_entropy` holds
/// the whole vocabulary's options (class weights of length `shard.vocab`; `return_lse` is
/// refused: a row's log-sum-exp is the first value of its merged state).
///
/// Merge every shard's states ([`ShardStates::merge`]), then finish on each device with
/// [`SplitFinish`]:
///
/// ```
/// use xent::{Context, CrossEntropy, Input, ShardStates, SplitFinish, SplitStates, VocabShard};
///
/// let ctx = Context::new()?;
/// let loss = CrossEntropy { label_smoothing: 0.1, ..Default::default() };
/// let labels = [2i64, 0];
/// // Rows of 4 classes, held as classes 0..2 and 2..4.
/// let (left, right) = ([1.0f32, 2.0, -1.0, 0.5], [0.0f32, 3.0, 1.0, 1.0]);
/// let (a, b) = (VocabShard { first: 0, vocab: 4 }, VocabShard { first: 2, vocab: 4 });
/// let states = |shard| SplitStates { cross_entropy: loss.clone(), shard };
/// let sa = ctx.compute(&states(a), Input::new(&left, [2, 2]), &labels)?;
/// let sb = ctx.compute(&states(b), Input::new(&right, [2, 2]), &labels)?;
/// // The values travel as plain f32 (to another machine, say) with the classes they cover.
/// let sa = ShardStates::from_values(sa.values().to_vec(), 0..2, 4)?;
/// let merged = sa.merge(&sb)?;
/// let finish = SplitFinish { cross_entropy: loss.clone(), shard: a };
/// let out = ctx.compute(&finish, Input::new(&left, [2, 2]).with_grad(), (&labels, &merged))?;
/// // The same loss as the unsplit logits give.
/// let whole = [1.0f32, 2.0, 0.0, 3.0, -1.0, 0.5, 1.0, 1.0];
/// let want = ctx.compute(&loss, Input::new(&whole, [2, 4]), &labels)?;
/// assert!((out.loss.scalar().unwrap() - want.loss.scalar().unwrap()).abs() < 1e-5);
/// assert_eq!(out.grad.unwrap().len(), 4); // this shard's (2, 2)
/// # Ok::<(), xent::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct SplitStates {
    /// The cross-entropy over the whole vocabulary.
    pub cross_entropy: CrossEntropy,
    /// Where this device's classes sit in the vocabulary.
    pub shard: VocabShard,
}

/// The loss over the whole vocabulary and the gradient of one device's classes, from the
/// states of every shard merged: the last step of the split (see [`SplitStates`] for an
/// example). [`Context::compute`] takes this shard's (N, C) logits (with
/// [`Input::with_grad`] for the (N, C) gradient) and [`SplitTargets`]; [`Context::prepare`]
/// takes GPU buffers and [`GpuSplitTargets`], and gives a [`PreparedLoss`]. Every shard gets
/// the same loss; the gradients of all shards side by side are the unsplit gradient.
///
/// ```
/// let finish = xent::SplitFinish {
///     cross_entropy: xent::CrossEntropy::default(),
///     shard: xent::VocabShard { first: 25_000, vocab: 50_000 },
/// };
/// assert_eq!(finish.shard.first, 25_000);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct SplitFinish {
    /// The cross-entropy over the whole vocabulary (the same as the states were made with).
    pub cross_entropy: CrossEntropy,
    /// Where this device's classes sit in the vocabulary.
    pub shard: VocabShard,
}

/// The targets of [`SplitFinish`] on the host: class indices of the whole vocabulary, one per
/// row, and the states of every shard merged. A pair `(labels, &merged)` converts into it.
///
/// ```
/// let merged = xent::ShardStates::from_values(vec![0.0; 8], 0..4, 4)?;
/// let targets: xent::SplitTargets = (&[1u32, 3], &merged).into();
/// assert_eq!(targets.merged.rows(), 2);
/// # Ok::<(), xent::Error>(())
/// ```
#[derive(Clone, Copy, Debug)]
pub struct SplitTargets<'a> {
    /// Class indices of the whole vocabulary.
    pub labels: Targets<'a>,
    /// The states of every shard, merged.
    pub merged: &'a ShardStates,
}

impl<'a, L: Into<Targets<'a>>> From<(L, &'a ShardStates)> for SplitTargets<'a> {
    fn from((labels, merged): (L, &'a ShardStates)) -> Self {
        SplitTargets {
            labels: labels.into(),
            merged,
        }
    }
}

/// The targets of [`SplitFinish`] on the GPU: i32 class indices of the whole vocabulary, one
/// per row, and the states of every shard, [`ShardStates::VALUES_PER_ROW`] f32 per row,
/// packed: either merged already (one shard's worth), or the states of `shards` shards back to
/// back in shard order, as an all-gather of each device's
/// [`PreparedStates::states_buffer`] leaves them, which the finish merges on the GPU in that
/// fixed order (so every device gets the same bits). The states' buffer needs `COPY_SRC` as
/// well as `STORAGE`, and they start at a multiple of 16 bytes; that they cover the whole
/// vocabulary, each class once, is the caller's to ensure (a GPU buffer does not carry the
/// classes it covers).
///
/// ```
/// # fn f(labels: &xent::wgpu::Buffer, gathered: &xent::wgpu::Buffer) {
/// // Four devices' states, gathered into one buffer.
/// let targets = xent::GpuSplitTargets::new(labels, gathered).gathered(4);
/// assert_eq!(targets.shards, 4);
/// # }
/// ```
#[derive(Clone, Copy, Debug)]
pub struct GpuSplitTargets<'a> {
    /// i32 class indices of the whole vocabulary.
    pub labels: GpuTensor<'a>,
    /// The states: (shards, N, 4) f32.
    pub states: GpuTensor<'a>,
    /// How many shards' states `states` holds, back to back (1: merged already).
    pub shards: usize,
}

impl<'a> GpuSplitTargets<'a> {
    /// Labels and merged states (`&wgpu::Buffer`s or [`GpuTensor`]s).
    pub fn new(labels: impl Into<GpuTensor<'a>>, states: impl Into<GpuTensor<'a>>) -> Self {
        GpuSplitTargets {
            labels: labels.into(),
            states: states.into(),
            shards: 1,
        }
    }

    /// The states are `shards` shards' states back to back, in shard order, to be merged.
    pub fn gathered(self, shards: usize) -> Self {
        GpuSplitTargets { shards, ..self }
    }
}

/// [`SplitStates`] prepared on GPU buffers: [`record`](Self::record) adds the work to a
/// command encoder; the states land in [`states_buffer`](Self::states_buffer)
/// ([`ShardStates::VALUES_PER_ROW`] f32 per row), for a merge or a transport; reads copy them
/// back when asked.
///
/// ```
/// use xent::wgpu::{self, util::DeviceExt};
/// use xent::{Context, CrossEntropy, GpuInput, GpuTargets, SplitStates, VocabShard};
///
/// let ctx = Context::new()?;
/// let buffer = |contents: &[u8]| {
///     ctx.device().create_buffer_init(&wgpu::util::BufferInitDescriptor {
///         label: None,
///         contents,
///         usage: wgpu::BufferUsages::STORAGE,
///     })
/// };
/// let logits = buffer(xent::bytemuck::cast_slice(&[0.0f32, 0.0]));
/// let labels = buffer(xent::bytemuck::cast_slice(&[3i32]));
/// let states = SplitStates { cross_entropy: CrossEntropy::default(), shard: VocabShard { first: 2, vocab: 4 } };
/// let prepared = ctx.prepare(&states, GpuInput::new(&logits, [1, 2]), GpuTargets::indices(&labels))?;
/// prepared.run()?;
/// let read = prepared.read()?;
/// assert_eq!(read.classes(), &[2..4]);
/// // lse ln 2, the target's logit 0, weight sum 2, b = -2 ln 2.
/// assert!((read.values()[0] - 2f32.ln()).abs() < 1e-6 && read.values()[2] == 2.0);
/// # Ok::<(), xent::Error>(())
/// ```
pub struct PreparedStates {
    inner: PreparedLoss,
    classes: std::ops::Range<usize>,
    vocab: usize,
}

crate::prepared::runs_its_inner_loss!(PreparedStates);

impl PreparedStates {
    /// The f32 buffer of the states, [`ShardStates::VALUES_PER_ROW`] per row, packed (with
    /// `COPY_SRC`, so it can be copied out, gathered, or be [`GpuSplitTargets::states`] itself).
    pub fn states_buffer(&self) -> &wgpu::Buffer {
        self.inner.lse_buffer().unwrap_or(&self.inner.loss)
    }

    /// Reads the states back, with the classes they cover; a recorded target outside the
    /// vocabulary that is not `ignore_index` is [`Error::LabelOutOfRange`].
    pub async fn read_async(&self) -> Result<ShardStates> {
        let values = self.inner.read_lse_async().await?.unwrap_or_default();
        ShardStates::from_values(values, self.classes.clone(), self.vocab)
    }

    /// [`read_async`](Self::read_async), blocking.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn read(&self) -> Result<ShardStates> {
        self.inner.gpu.block_on(self.read_async())
    }
}

/// A shard's logits of `shape` checked against the vocabulary and `loss`'s options: (N, C),
/// at least one class, within the vocabulary, no `return_lse`.
fn shard_shape(loss: &CrossEntropy, shard: VocabShard, shape: &[usize]) -> Result<ClassShape> {
    let [rows, classes] = shape[..] else {
        return Err(Error::InvalidShape {
            reason: format!("a shard's logits are (N, C), not {shape:?}: its classes of each row"),
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
    if rows.checked_mul(classes).is_none() {
        return Err(Error::InvalidShape {
            reason: format!("{rows} x {classes} logits overflow"),
        });
    }
    Ok(ClassShape::rows(rows, classes))
}

/// The class-index tensor of a step's GPU targets.
fn gpu_indices<'a>(what: &'static str, targets: GpuTargets<'a>) -> Result<GpuTensor<'a>> {
    match targets {
        GpuTargets::Indices(labels) => Ok(labels),
        other => Err(Error::WrongTargets {
            loss: what,
            expected: "class indices (GpuTargets::indices)",
            got: match other {
                GpuTargets::None => "none",
                _ => "values",
            },
        }),
    }
}

/// A shard's host call checked: its labels as the GPU reads them, and its options with the
/// `ignore_index` the labels are compared with.
struct HostShard {
    labels: Vec<i32>,
    options: CrossEntropy,
    shape: ClassShape,
}

impl HostShard {
    /// Checks a shard's logits, targets and options against the vocabulary.
    fn new(
        loss: &CrossEntropy,
        shard: VocabShard,
        input: &Input<'_>,
        targets: Targets<'_>,
    ) -> Result<HostShard> {
        let shape = shard_shape(loss, shard, &input.shape)?;
        let ClassShape { rows, classes, .. } = shape;
        validate::length("logits", input.values().len(), rows * classes, "(N, C)")?;
        validate::cross_entropy_options(loss, shard.vocab)?;
        let labels =
            validate::class_indices("a split", targets, rows, shard.vocab, loss.ignore_index)?;
        let (labels, ignore_index) = gpu_labels(&labels, loss.ignore_index);
        Ok(HostShard {
            labels,
            options: CrossEntropy {
                ignore_index,
                ..loss.clone()
            },
            shape,
        })
    }

    /// The key its prepared step is kept under in the host cache.
    fn key(&self, loss: HostLoss, shard: VocabShard, mode: GradMode, ctx: &Context) -> HostKey {
        let sizes = [shard.first as u64, shard.vocab as u64];
        let key = host_key(loss, self.shape, &self.options, mode, ctx.tuning());
        HostKey { sizes, ..key }
    }
}

/// The host form of [`SplitStates`]: the shard's logits and labels uploaded into buffers kept
/// for the next call of the same shape and options, the states computed and read back.
pub(crate) async fn split_states<'a>(
    ctx: &Context,
    step: &SplitStates,
    input: Input<'a>,
    targets: Targets<'a>,
) -> Result<ShardStates> {
    if input.wants_grad() {
        return Err(no_state_gradient());
    }
    let host = HostShard::new(&step.cross_entropy, step.shard, &input, targets)?;
    let key = host.key(HostLoss::SplitStates, step.shard, GradMode::Off, ctx);
    let inputs = [
        ("logits", bytemuck::cast_slice(input.values())),
        ("targets", bytemuck::cast_slice(&host.labels)),
    ];
    let out = ctx
        .host()
        .run(key, &inputs, None, |gpu, b| {
            let tensors = (GpuTensor::new(&b[0]), GpuTensor::new(&b[1]));
            states_step(gpu, tensors, host.shape, &host.options, step.shard)
        })
        .await?;
    let first = step.shard.first;
    let classes = first..first + host.shape.classes;
    ShardStates::from_values(out.lse.unwrap_or_default(), classes, step.shard.vocab)
}

/// The states step prepared on `tensors` (logits and i32 labels): each row's state over the
/// shard's classes, into the prepared loss's log-sum-exp slot.
fn states_step(
    gpu: &Gpu,
    tensors: (GpuTensor<'_>, GpuTensor<'_>),
    shape: ClassShape,
    loss: &CrossEntropy,
    shard: VocabShard,
) -> Result<PreparedLoss> {
    let kernel_step = ShardStep::State {
        first: shard.first,
        total: shard.vocab,
    };
    let options = CrossEntropy {
        reduction: Reduction::None,
        ..loss.clone()
    };
    prepare_shard_step(gpu, tensors, shape, &options, GradMode::Off, kernel_step)
}

/// States have no gradient.
fn no_state_gradient() -> Error {
    Error::Misuse {
        what: "SplitStates",
        reason: "a shard's states have no gradient; the gradient comes from SplitFinish".into(),
    }
}

/// The GPU form of [`SplitStates`].
pub(crate) async fn prepare_split_states<'a>(
    ctx: &Context,
    step: &SplitStates,
    input: GpuInput<'a>,
    targets: GpuTargets<'a>,
) -> Result<PreparedStates> {
    let loss = &step.cross_entropy;
    let shape = shard_shape(loss, step.shard, &input.shape)?;
    if input.grad != GradMode::Off {
        return Err(no_state_gradient());
    }
    let labels = gpu_indices("a split's states", targets)?;
    let gpu = ctx.gpu();
    let tensors = (input.tensor, labels);
    let inner = gpu
        .checked(Operation::Prepare, || {
            states_step(gpu, tensors, shape, loss, step.shard)
        })
        .await?;
    let first = step.shard.first;
    Ok(PreparedStates {
        inner,
        classes: first..first + shape.classes,
        vocab: step.shard.vocab,
    })
}

/// The host form of [`SplitFinish`].
pub(crate) async fn finish_split<'a>(
    ctx: &Context,
    step: &SplitFinish,
    input: Input<'a>,
    targets: SplitTargets<'a>,
) -> Result<Output> {
    if input.is_in_place() {
        return Err(Error::Misuse {
            what: "SplitFinish",
            reason: "a shard's gradient goes to a buffer of its own: use Input::with_grad".into(),
        });
    }
    let (loss, shard, merged) = (&step.cross_entropy, step.shard, targets.merged);
    let host = HostShard::new(loss, shard, &input, targets.labels)?;
    let rows = host.shape.rows;
    validate::length(
        "merged shard states",
        merged.rows(),
        rows,
        "one state per row",
    )?;
    if merged.vocab != shard.vocab || !merged.is_complete() {
        return Err(Error::Misuse {
            what: "SplitFinish",
            reason: format!(
                "the merged states cover classes {:?} of a vocabulary of {}, not every class of \
                 the shard's vocabulary of {} once: merge the states of every shard first",
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
    let key = host.key(HostLoss::SplitFinish, shard, mode, ctx);
    let inputs = [
        ("logits", bytemuck::cast_slice(input.values())),
        ("targets", bytemuck::cast_slice(&host.labels)),
        ("merged shard states", bytemuck::cast_slice(merged.values())),
    ];
    ctx.host()
        .run(key, &inputs, upstream, |gpu, b| {
            let tensors = (GpuTensor::new(&b[0]), GpuTensor::new(&b[1]));
            let states = (GpuTensor::new(&b[2]), 1);
            finish_step(
                gpu,
                tensors,
                states,
                (host.shape, &host.options, mode),
                shard,
            )
        })
        .await
}

/// The finish step prepared on `tensors` (logits and i32 labels) and `states` (the states of
/// that many shards back to back, checked): the loss over the whole vocabulary and the
/// gradient of the shard's classes, with `mode`.
fn finish_step(
    gpu: &Gpu,
    tensors: (GpuTensor<'_>, GpuTensor<'_>),
    (states, shards): (GpuTensor<'_>, usize),
    (shape, loss, mode): (ClassShape, &CrossEntropy, GradMode),
    shard: VocabShard,
) -> Result<PreparedLoss> {
    let kernel_step = ShardStep::Finish {
        first: shard.first,
        total: shard.vocab,
        states,
        shards,
    };
    prepare_shard_step(gpu, tensors, shape, loss, mode, kernel_step)
}

/// The GPU form of [`SplitFinish`].
pub(crate) async fn prepare_split_finish<'a>(
    ctx: &Context,
    step: &SplitFinish,
    input: GpuInput<'a>,
    targets: GpuSplitTargets<'a>,
) -> Result<PreparedLoss> {
    let loss = &step.cross_entropy;
    let shape = shard_shape(loss, step.shard, &input.shape)?;
    if !matches!(input.grad, GradMode::Off | GradMode::Separate) {
        return Err(Error::InvalidOption {
            name: "grad",
            value: format!("{:?}", input.grad),
            reason: "a shard's gradient is f32 in a buffer of its own: use GradMode::Separate"
                .into(),
        });
    }
    let what = "shard states";
    let states = targets.states.four_byte(what)?;
    let shards = targets.shards;
    if states.row_stride.is_some() || !states.offset.is_multiple_of(16) {
        return Err(Error::InvalidLayout {
            what,
            reason: format!(
                "they are packed, 4 f32 per row (no row stride), from a multiple of 16 bytes \
                 (an offset of {})",
                states.offset
            ),
        });
    }
    if shards == 0 {
        return Err(Error::InvalidShape {
            reason: "the states of at least one shard finish a split".into(),
        });
    }
    let state_rows = shape
        .rows
        .checked_mul(shards)
        .ok_or_else(|| Error::InvalidShape {
            reason: format!("{shards} shards of {} rows overflow", shape.rows),
        })?;
    states.check_extent(what, state_rows, SHARD_STATE_LEN)?;
    if !states.buffer.usage().contains(wgpu::BufferUsages::COPY_SRC) {
        return Err(Error::BufferUsage {
            what,
            needed: "COPY_SRC",
            why: "the finish copies each chunk's states next to its rows",
        });
    }
    let gpu = ctx.gpu();
    let tensors = (input.tensor, targets.labels);
    gpu.checked(Operation::Prepare, || {
        let call = (shape, loss, input.grad);
        finish_step(gpu, tensors, (states, shards), call, step.shard)
    })
    .await
}
