//! The losses as values: their options with PyTorch's names and defaults, their results, and
//! the validation of host inputs. Pure: no GPU.

pub(crate) mod bound;
pub(crate) mod call;
pub(crate) mod inputs;
pub(crate) mod linear;
pub(crate) mod validate;

pub use inputs::{GpuInput, GpuTargets, GradMode, Indices, Input, Output, Targets};
pub use linear::{LinearCrossEntropy, LinearInput, LinearOutput};

/// How per-item losses are combined, as PyTorch's `reduction` argument.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Reduction {
    /// One loss per row (categorical; per position of a K-dimensional input) or per element
    /// (binary).
    None,
    /// The (weighted) mean; see each loss for its denominator. NaN for an empty batch, and
    /// for categorical cross-entropy with class indices when every row is ignored (as PyTorch).
    #[default]
    Mean,
    /// The sum (0 for an empty batch).
    Sum,
}

/// A loss value: a scalar for `Mean` and `Sum`, one value per row or element for `None`.
/// xent's GPU results are `Loss<f32>`; [`crate::reference`] gives `Loss<f64>`.
///
/// ```
/// use xent::{Input, Loss, LogSoftmax, Targets};
///
/// let out = xent::reference::compute(&LogSoftmax, Input::new(&[0.0f32, 0.0], [1, 2]), Targets::None)?;
/// let Loss::Unreduced(logp) = &out.loss else { unreachable!("log-softmax is per element") };
/// assert_eq!(out.loss.scalar(), None);
/// assert!((logp[0] + std::f64::consts::LN_2).abs() < 1e-12);
/// # Ok::<(), xent::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub enum Loss<T = f32> {
    /// The reduced loss (`Reduction::Mean` or `Reduction::Sum`).
    Reduced(T),
    /// Per-row or per-element losses (`Reduction::None`).
    Unreduced(Vec<T>),
}

impl<T: Copy> Loss<T> {
    /// The reduced value, or `None` for an unreduced loss.
    pub fn scalar(&self) -> Option<T> {
        match self {
            Loss::Reduced(v) => Some(*v),
            Loss::Unreduced(_) => None,
        }
    }

    /// The values as a vector: one value for a reduced loss.
    pub fn into_values(self) -> Vec<T> {
        match self {
            Loss::Reduced(v) => vec![v],
            Loss::Unreduced(v) => v,
        }
    }

    /// The values as a slice: one value for a reduced loss.
    pub fn values(&self) -> &[T] {
        match self {
            Loss::Reduced(v) => std::slice::from_ref(v),
            Loss::Unreduced(v) => v,
        }
    }
}

/// A class-index target type accepted from the host: `u32`, `i32` or `i64`.
pub trait ClassIndex: Copy + Send + Sync + 'static {
    /// The label as an i64 (labels are compared with `ignore_index`, an i64, as PyTorch).
    fn to_i64(self) -> i64;
}

impl ClassIndex for u32 {
    fn to_i64(self) -> i64 {
        i64::from(self)
    }
}

impl ClassIndex for i32 {
    fn to_i64(self) -> i64 {
        i64::from(self)
    }
}

impl ClassIndex for i64 {
    fn to_i64(self) -> i64 {
        self
    }
}

/// Categorical cross-entropy, `torch.nn.functional.cross_entropy`, with PyTorch's options,
/// names and defaults. Inputs are (N, C) logits; targets are N class indices
/// ([`Targets::Indices`]) or (N, C) probabilities ([`Targets::Values`]).
///
/// As in PyTorch, logits may also be unbatched, (C,) with one class index or (C,)
/// probabilities, or K-dimensional, (N, C, d1, ..., dk) with the classes second (segmentation
/// maps, sequences) and targets (N, d1, ..., dk) class indices or probabilities of the logits'
/// shape. Every position (n, d1, ..., dk) is then a row below: `Reduction::None` gives one
/// loss per position in (N, d1, ..., dk) order, `Mean` divides by the summed weight of the
/// non-ignored positions (by the number of positions with probabilities), and the gradient
/// has the logits' shape. On the GPU a K-dimensional sample's C x d1 x ... x dk logits must
/// fit one storage binding (their classes lie a sample apart, so a sample is not cut); an
/// error says so otherwise.
///
/// ```
/// use xent::{Context, CrossEntropy, Input, Reduction};
///
/// let ctx = Context::new()?;
/// // Two 2 x 2 maps over 3 classes: logits (2, 3, 2, 2), one class per pixel (2, 2, 2).
/// let logits: Vec<f32> = (0..24).map(|i| (i % 7) as f32 * 0.5).collect();
/// let labels = [0i64, 1, 2, 1, 2, 2, 0, -100];
/// let per_pixel = CrossEntropy { reduction: Reduction::None, ..Default::default() };
/// let out = ctx.compute(&per_pixel, Input::new(&logits, [2, 3, 2, 2]).with_grad(), &labels)?;
/// assert_eq!(out.loss.values().len(), 8); // (2, 2, 2)
/// assert_eq!(out.loss.values()[7], 0.0); // ignored
/// assert_eq!(out.grad.unwrap().len(), 24); // the logits' shape
/// # Ok::<(), xent::Error>(())
/// ```
///
/// Per row with class indices, `l_n = -w[y_n] logp[n, y_n]` (with label smoothing `e`:
/// `(1 - e) * that + (e / C) * -sum_c w[c] logp[n, c]`); rows whose target equals
/// `ignore_index` give 0, and `Mean` divides by the summed weight of the non-ignored targets
/// (NaN when every row is ignored or N = 0, as PyTorch; the gradient is then all zeros). With
/// probabilities, `l_n = -sum_c w[c] t'[n, c] logp[n, c]` with `t' = (1 - e) t + e / C`, and
/// `Mean` divides by N. The gradient is `s ((1 - e) w_y (softmax - onehot(y)) + (e / C)
/// (W softmax - w))` per row (class indices) or `s (softmax sum_c q_c - q)` with `q = w t'`
/// (probabilities), `s` the upstream value over the mean's denominator.
///
/// Errors: a target outside [0, C) that is not `ignore_index` (on the GPU: reported when
/// results are read), a weight of the wrong length or not finite, `label_smoothing` outside
/// [0, 1].
///
/// ```
/// use xent::{Context, CrossEntropy, Input, Reduction};
///
/// let ctx = Context::new()?;
/// let loss = CrossEntropy { label_smoothing: 0.1, reduction: Reduction::Sum, ..Default::default() };
/// let out = ctx.compute(&loss, Input::new(&[2.0, 0.5, -1.0, 0.1, 0.2, 3.0], [2, 3]), &[0i64, 2])?;
/// println!("{:?}", out.loss.scalar());
/// # Ok::<(), xent::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct CrossEntropy {
    /// Per-class weight, length C; all ones when `None`. Must be finite.
    pub weight: Option<Vec<f32>>,
    /// Rows whose class-index target equals this value contribute nothing (loss 0, weight 0).
    /// It may be a valid class id: such rows are ignored and the class still counts in the
    /// softmax. Does not apply to probability targets. Default -100.
    pub ignore_index: i64,
    /// Label smoothing e in [0, 1]: targets become (1 - e) t + e / C. Default 0.
    pub label_smoothing: f32,
    /// How row losses are combined. Default `Mean`: for class indices the sum divided by the
    /// summed weight of the non-ignored targets; for probabilities the sum divided by N.
    pub reduction: Reduction,
    /// Logit softcap S > 0 (Gemma 2): every logit `x` is replaced by `S tanh(x / S)` before
    /// anything else, and the gradient flows through it (times `1 - tanh^2(x / S)`). `None`
    /// (the default) leaves the logits as they are.
    ///
    /// ```
    /// use xent::{Context, CrossEntropy, Input};
    ///
    /// let ctx = Context::new()?;
    /// let capped = CrossEntropy { softcap: Some(30.0), ..Default::default() };
    /// let out = ctx.compute(&capped, Input::new(&[80.0f32, 0.0, -5.0], [1, 3]).with_grad(), &[1u32])?;
    /// // 80 is read as 30 tanh(8/3) = 29.71, so the loss is about 29.71, not 80.
    /// assert!((out.loss.scalar().unwrap() - 29.71).abs() < 0.01);
    /// # Ok::<(), xent::Error>(())
    /// ```
    pub softcap: Option<f32>,
    /// z-loss coefficient z >= 0 (PaLM; Liger's `lse_square_scale`): every row that counts
    /// (with class indices, every non-ignored row) adds `z * lse^2` to its loss, unweighted,
    /// where `lse` is the log-sum-exp of its (softcapped) logits. Reduced as the
    /// cross-entropy term: `Sum` adds it, `Mean` divides it by the same denominator. Default 0
    /// (none).
    ///
    /// ```
    /// use xent::{Context, CrossEntropy, Input};
    ///
    /// let ctx = Context::new()?;
    /// let logits = [0.0f32, 0.0]; // lse = ln 2
    /// let plain = ctx.compute(&CrossEntropy::default(), Input::new(&logits, [1, 2]), &[0u32])?;
    /// let with_z = CrossEntropy { z_loss: 1e-2, ..Default::default() };
    /// let out = ctx.compute(&with_z, Input::new(&logits, [1, 2]), &[0u32])?;
    /// let extra = out.loss.scalar().unwrap() - plain.loss.scalar().unwrap();
    /// assert!((extra - 1e-2 * 2f32.ln().powi(2)).abs() < 1e-7);
    /// # Ok::<(), xent::Error>(())
    /// ```
    pub z_loss: f32,
    /// Also return each row's log-sum-exp `lse_n` over classes of its (softcapped) logits,
    /// for every row (every position of a K-dimensional input), ignored ones included: in
    /// [`Output::lse`](crate::Output::lse), or from a prepared loss by
    /// [`PreparedLoss::read_lse`](crate::PreparedLoss::read_lse) and
    /// [`lse_buffer`](crate::PreparedLoss::lse_buffer). For callers that log it (z-loss
    /// monitoring) or reuse it (softmax of the logits as `exp(x - lse)`). Default `false`.
    ///
    /// ```
    /// use xent::{Context, CrossEntropy, Input};
    ///
    /// let ctx = Context::new()?;
    /// let loss = CrossEntropy { return_lse: true, ..Default::default() };
    /// let out = ctx.compute(&loss, Input::new(&[0.0f32, 0.0, 3.0, 3.0], [2, 2]), &[0u32, 1])?;
    /// let lse = out.lse.unwrap(); // ln 2 and 3 + ln 2
    /// assert!((lse[0] - 2f32.ln()).abs() < 1e-6 && (lse[1] - 3.0 - 2f32.ln()).abs() < 1e-6);
    /// # Ok::<(), xent::Error>(())
    /// ```
    pub return_lse: bool,
}

impl Default for CrossEntropy {
    fn default() -> Self {
        CrossEntropy {
            weight: None,
            ignore_index: -100,
            label_smoothing: 0.0,
            reduction: Reduction::Mean,
            softcap: None,
            z_loss: 0.0,
            return_lse: false,
        }
    }
}

/// Binary cross-entropy on probabilities, `torch.nn.functional.binary_cross_entropy`: input
/// probabilities `p` in [0, 1] of any shape, targets ([`Targets::Values`]) of the same shape,
/// `l_i = -w_i (t_i max(log p_i, -100) + (1 - t_i) max(log(1 - p_i), -100))`. Targets may be
/// soft. `Mean` averages over all elements (NaN for an empty input). The gradient is
/// `s w_i (p_i - t_i) / max((1 - p_i) p_i, 1e-12)` (PyTorch's clamp).
///
/// Errors: a probability or target outside [0, 1] or NaN ([`crate::Error::ProbabilityOutOfRange`]:
/// on the host before anything runs, for GPU tensors when results are read), a weight of a
/// shape that does not broadcast, or not finite.
///
/// ```
/// let ctx = xent::Context::new()?;
/// let out = ctx.compute(&xent::BinaryCrossEntropy::default(), xent::Input::new(&[0.9, 0.2], [2]), &[1.0f32, 0.0])?;
/// # Ok::<(), xent::Error>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BinaryCrossEntropy {
    /// Elementwise weight, broadcast as PyTorch does: the input's shape, or a trailing part of
    /// it (for an (N, C) input: N x C values, C values, or one), repeated over the leading
    /// dimensions. All ones when `None`. Must be finite. A weight with size-1 dimensions inside
    /// (such as (N, 1)) is repeated to one of these shapes first.
    pub weight: Option<Vec<f32>>,
    /// How element losses are combined. Default `Mean` (over all elements).
    pub reduction: Reduction,
}

/// Binary cross-entropy with logits, `torch.nn.functional.binary_cross_entropy_with_logits`:
/// logits `x` of any shape, targets ([`Targets::Values`]) of the same shape,
/// `l_i = w_i ((1 - t_i) x_i - q_i logsigmoid(x_i))` with `q_i = 1 + (pos_weight_d - 1) t_i`
/// and `pos_weight_d` its value for element `i` (see the field). Stable for any finite input. `Mean` averages over
/// all elements. The gradient is `s w_i ((pos_weight_d t_i + 1 - t_i) sigmoid(x_i) -
/// pos_weight_d t_i)`.
///
/// Targets may be any finite value, as PyTorch takes them (soft targets in [0, 1], and others
/// such as -1.3 or 2.5, for which the same formula and gradient hold).
///
/// Errors: a target that is NaN or infinite ([`crate::Error::NonFiniteTarget`]: on the host
/// before anything runs, for GPU tensors when results are read), a weight or pos_weight of a
/// shape that does not broadcast, or not finite.
///
/// ```
/// use xent::{BinaryCrossEntropyWithLogits, Context, Input};
///
/// let ctx = Context::new()?;
/// let loss = BinaryCrossEntropyWithLogits { pos_weight: Some(vec![1.0, 3.0]), ..Default::default() };
/// let out = ctx.compute(&loss, Input::new(&[0.5, -2.0, 1.5, 0.0], [2, 2]).with_grad(), &[1.0f32, 0.0, 1.0, 1.0])?;
/// # Ok::<(), xent::Error>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BinaryCrossEntropyWithLogits {
    /// Elementwise weight, broadcast as PyTorch does: the input's shape, or a trailing part of
    /// it (for an (N, C) input: N x C values, C values, or one), repeated over the leading
    /// dimensions. All ones when `None`. Must be finite. A weight with size-1 dimensions inside
    /// (such as (N, 1)) is repeated to one of these shapes first.
    pub weight: Option<Vec<f32>>,
    /// Weight of positive examples, broadcast as `weight` is: usually one per entry of the
    /// last dimension (C values for an (N, C) input), or the input's shape or another trailing
    /// part of it, repeated over the leading dimensions. All ones when `None`. Must be finite.
    pub pos_weight: Option<Vec<f32>>,
    /// How element losses are combined. Default `Mean` (over all elements).
    pub reduction: Reduction,
}

/// Negative log-likelihood, `torch.nn.functional.nll_loss`: (N, C) log-probabilities `x` (for
/// instance [`LogSoftmax`]'s output) and N class indices `y` ([`Targets::Indices`]), or, as
/// for [`CrossEntropy`], unbatched (C,) with one class index or (N, C, d1, ..., dk) with
/// (N, d1, ..., dk) class indices, each position a row below:
/// `l_n = -w_{y_n} x[n, y_n]`, 0 for rows whose target is `ignore_index`. `Mean` divides by
/// the summed weight of the non-ignored targets (NaN when every row is ignored, as PyTorch);
/// the gradient is `-w_{y_n}` (times the upstream scale) at each row's target and 0 elsewhere.
/// The input is taken as given, as PyTorch takes it: nothing checks that rows are
/// log-probabilities.
///
/// Errors: a class index outside [0, C) that is not `ignore_index`
/// ([`crate::Error::LabelOutOfRange`]: on the host before anything runs, for GPU tensors when
/// results are read), a weight of the wrong length or not finite.
///
/// ```
/// use xent::{Context, CrossEntropy, Input, LogSoftmax, NllLoss, Targets};
///
/// let ctx = Context::new()?;
/// let logits = [2.0f32, 0.5, -1.0, 0.1, 0.2, 3.0];
/// let logp = ctx.compute(&LogSoftmax, Input::new(&logits, [2, 3]), Targets::None)?.loss;
/// let nll = ctx.compute(&NllLoss::default(), Input::new(logp.values(), [2, 3]), &[0u32, 2])?;
/// let ce = ctx.compute(&CrossEntropy::default(), Input::new(&logits, [2, 3]), &[0u32, 2])?;
/// assert!((nll.loss.scalar().unwrap() - ce.loss.scalar().unwrap()).abs() < 1e-6);
/// # Ok::<(), xent::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct NllLoss {
    /// Per-class weight, length C; all ones when `None`. Must be finite.
    pub weight: Option<Vec<f32>>,
    /// Rows whose target equals this value contribute nothing (loss 0, weight 0). Default
    /// -100.
    pub ignore_index: i64,
    /// How row losses are combined. Default `Mean`.
    pub reduction: Reduction,
}

impl Default for NllLoss {
    fn default() -> Self {
        NllLoss {
            weight: None,
            ignore_index: -100,
            reduction: Reduction::Mean,
        }
    }
}

impl NllLoss {
    /// The same weight, `ignore_index` and reduction as cross-entropy options (no label
    /// smoothing): the categorical checks, parameters and denominator serve both.
    pub(crate) fn as_cross_entropy(&self) -> CrossEntropy {
        CrossEntropy {
            weight: self.weight.clone(),
            ignore_index: self.ignore_index,
            label_smoothing: 0.0,
            reduction: self.reduction,
            softcap: None,
            z_loss: 0.0,
            return_lse: false,
        }
    }
}

/// Sigmoid focal loss, `torchvision.ops.sigmoid_focal_loss`: logits `x` of any shape, targets
/// ([`Targets::Values`]) of the same shape in [0, 1]. With `p = sigmoid(x)`,
/// `ce = binary_cross_entropy_with_logits(x, t)` per element and `p_t = p t + (1 - p)(1 - t)`,
/// the loss of an element is `ce (1 - p_t)^gamma`, times `alpha t + (1 - alpha)(1 - t)` when
/// `alpha >= 0`. Defaults are torchvision's: `alpha` 0.25, `gamma` 2, reduction `None`; `Mean`
/// averages over all elements. Stable for any finite logit (`1 - p_t` is formed from
/// `sigmoid(x)` and `sigmoid(-x)`, never as a difference near 1). The gradient is fused:
/// `a ((p - t) m^gamma + gamma ce (1 - 2t) p (1 - p) m^(gamma - 1))` with `m = 1 - p_t` and
/// `a` the alpha factor; at an infinite logit it is NaN for `gamma > 0` (as autograd gives it).
///
/// Errors: a target outside [0, 1] or NaN ([`crate::Error::ProbabilityOutOfRange`]), `gamma`
/// negative or not finite, `alpha` not finite ([`crate::Error::InvalidOption`]).
///
/// ```
/// use xent::{Context, Input, SigmoidFocalLoss};
///
/// let ctx = Context::new()?;
/// let x = [2.0f32, -1.0, 0.5, -3.0];
/// let out = ctx.compute(&SigmoidFocalLoss::default(), Input::new(&x, [2, 2]).with_grad(), &[1.0f32, 0.0, 0.0, 1.0])?;
/// let want = xent::reference::compute(&SigmoidFocalLoss::default(), Input::new(&x, [2, 2]), &[1.0f32, 0.0, 0.0, 1.0])?;
/// for (g, w) in out.loss.values().iter().zip(want.loss.values()) {
///     assert!((f64::from(*g) - w).abs() <= 1e-5 * w.abs() + 1e-6);
/// }
/// # Ok::<(), xent::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SigmoidFocalLoss {
    /// Weight of positives, `1 - alpha` of negatives; below 0 turns the factor off. Default
    /// 0.25.
    pub alpha: f32,
    /// Focusing exponent, >= 0 (0 gives BCE with logits, times the alpha factor). Default 2.
    pub gamma: f32,
    /// How element losses are combined. Default `None`, as torchvision's.
    pub reduction: Reduction,
}

impl Default for SigmoidFocalLoss {
    fn default() -> Self {
        SigmoidFocalLoss {
            alpha: 0.25,
            gamma: 2.0,
            reduction: Reduction::None,
        }
    }
}

/// Log-softmax over the class dimension of (N, C) logits, `torch.nn.functional.log_softmax(x,
/// dim=1)`: `logp[n, c] = (x[n, c] - m_n) - log(sum_c exp(x[n, c] - m_n))` with `m_n` the row's
/// max. Its "loss" is the (N, C) log-softmax, unreduced; its backward takes an (N, C) upstream
/// gradient `g` and gives `g - exp(logp) sum_c g`. No targets ([`Targets::None`]).
///
/// Finite for any finite logits; a -inf logit gives -inf; a row holding NaN or +inf gives NaN
/// (as PyTorch).
///
/// ```
/// let ctx = xent::Context::new()?;
/// let out = ctx.compute(&xent::LogSoftmax, xent::Input::new(&[1.0, 2.0, 3.0], [1, 3]), xent::Targets::None)?;
/// assert_eq!(out.loss.values().len(), 3);
/// # Ok::<(), xent::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LogSoftmax;

/// The descriptors of the categorical and binary families, which share one input type and
/// dispatch on [`Spec`].
pub(crate) trait Family {
    /// The descriptor as one enum.
    fn spec(&self) -> Spec<'_>;
}

/// Every loss of the categorical and binary families, with its options.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Spec<'a> {
    /// Log-softmax and its backward.
    LogSoftmax,
    /// Categorical cross-entropy.
    CrossEntropy(&'a CrossEntropy),
    /// Binary cross-entropy on probabilities.
    BinaryCrossEntropy(&'a BinaryCrossEntropy),
    /// Binary cross-entropy with logits.
    BinaryCrossEntropyWithLogits(&'a BinaryCrossEntropyWithLogits),
    /// Sigmoid focal loss.
    SigmoidFocalLoss(&'a SigmoidFocalLoss),
    /// Negative log-likelihood.
    NllLoss(&'a NllLoss),
}

macro_rules! family {
    ($t:ty, $self:ident => $spec:expr) => {
        impl Family for $t {
            fn spec(&self) -> Spec<'_> {
                let $self = self;
                $spec
            }
        }
    };
}

family!(LogSoftmax, _s => Spec::LogSoftmax);
family!(CrossEntropy, s => Spec::CrossEntropy(s));
family!(BinaryCrossEntropy, s => Spec::BinaryCrossEntropy(s));
family!(BinaryCrossEntropyWithLogits, s => Spec::BinaryCrossEntropyWithLogits(s));
family!(SigmoidFocalLoss, s => Spec::SigmoidFocalLoss(s));
family!(NllLoss, s => Spec::NllLoss(s));

/// Which binary cross-entropy, with its options: the two share their kernels' shape and host
/// path.
#[derive(Clone, Copy, Debug)]
pub(crate) enum BinaryLoss<'a> {
    /// On probabilities (`input` in [0, 1]).
    Probs(&'a BinaryCrossEntropy),
    /// With logits.
    Logits(&'a BinaryCrossEntropyWithLogits),
    /// Sigmoid focal loss (on logits).
    Focal(&'a SigmoidFocalLoss),
}

impl BinaryLoss<'_> {
    /// Its reduction.
    pub(crate) fn reduction(&self) -> Reduction {
        match self {
            BinaryLoss::Probs(o) => o.reduction,
            BinaryLoss::Logits(o) => o.reduction,
            BinaryLoss::Focal(o) => o.reduction,
        }
    }
}

impl Spec<'_> {
    /// The loss's name, for errors.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Spec::LogSoftmax => "log-softmax",
            Spec::CrossEntropy(_) => "cross-entropy",
            Spec::BinaryCrossEntropy(_) => "binary cross-entropy",
            Spec::BinaryCrossEntropyWithLogits(_) => "binary cross-entropy with logits",
            Spec::SigmoidFocalLoss(_) => "sigmoid focal loss",
            Spec::NllLoss(_) => "NLL loss",
        }
    }
}

impl Reduction {
    /// The value of the shaders' `params.reduction`.
    pub(crate) fn shader_code(self) -> u32 {
        match self {
            Reduction::None => 0,
            Reduction::Mean => 1,
            Reduction::Sum => 2,
        }
    }
}
