//! The losses as values: their options with PyTorch's names and defaults, their results, and
//! the validation of host inputs. Pure: no GPU.

pub(crate) mod validate;

/// How per-item losses are combined, as PyTorch's `reduction` argument.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Reduction {
    /// One loss per row (categorical) or per element (binary).
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

/// Options of categorical cross-entropy, with PyTorch's names and defaults
/// (`torch.nn.functional.cross_entropy`).
#[derive(Clone, Debug, PartialEq)]
pub struct CrossEntropyOptions {
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
}

impl Default for CrossEntropyOptions {
    fn default() -> Self {
        CrossEntropyOptions {
            weight: None,
            ignore_index: -100,
            label_smoothing: 0.0,
            reduction: Reduction::Mean,
        }
    }
}

/// Options of binary cross-entropy on probabilities (`torch.nn.functional.binary_cross_entropy`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BceOptions {
    /// Elementwise weight, the input's length; all ones when `None`. Must be finite.
    pub weight: Option<Vec<f32>>,
    /// How element losses are combined. Default `Mean` (over all elements).
    pub reduction: Reduction,
}

/// Options of binary cross-entropy with logits
/// (`torch.nn.functional.binary_cross_entropy_with_logits`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BceWithLogitsOptions {
    /// Elementwise weight, the input's length; all ones when `None`. Must be finite.
    pub weight: Option<Vec<f32>>,
    /// Weight of positive examples per entry of the last dimension: its length D is the
    /// input's last dimension (the input length must be a multiple of D) and it broadcasts over
    /// the leading dimensions. All ones when `None`. Must be finite.
    pub pos_weight: Option<Vec<f32>>,
    /// How element losses are combined. Default `Mean` (over all elements).
    pub reduction: Reduction,
}

/// A loss and its gradient with respect to the input (logits, or BCE's input), as PyTorch's
/// autograd gives it for the upstream gradient passed in.
#[derive(Clone, Debug, PartialEq)]
pub struct LossAndGrad<T = f32> {
    /// The loss (for log-softmax: its output, unreduced).
    pub loss: Loss<T>,
    /// The gradient, with the input's shape.
    pub grad: Vec<T>,
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
