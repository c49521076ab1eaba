//! Fused linear cross-entropy as a value: [`LinearCrossEntropy`], what it is computed on
//! ([`LinearInput`]) and what comes back ([`LinearOutput`]), with the checks the GPU and the
//! reference share.

use crate::error::{Error, Result};
use crate::loss::{validate, CrossEntropy, Loss, Targets};

/// Cross-entropy of a linear classifier head, `cross_entropy(hidden classifier^T + bias,
/// targets)`, with its gradients with respect to hidden (N, D), classifier (V, D) and bias (V),
/// computed without ever holding the (N, V) logits: they are made block by block on the GPU,
/// each block folded into per-token states and dropped, then made again for the gradients.
/// Device memory beyond the inputs and gradients is one block of at most
/// [`block_bytes`](Self::block_bytes) (64 MiB by default) plus 16 bytes per token, whatever
/// N and V are; host memory is about 30 KB per block (its recorded dispatches), at most 4096
/// blocks. Results repeat bit for bit (every sum runs in a fixed order).
///
/// ```
/// use xent::{Context, CrossEntropy, LinearCrossEntropy, LinearInput};
///
/// let ctx = Context::new()?;
/// // N = 2 tokens of D = 3 features, a vocabulary of V = 4 classes.
/// let hidden = [0.5f32, -1.0, 2.0, 1.0, 0.0, -0.5];
/// let classifier = [0.1f32, 0.2, 0.3, -0.3, 0.2, 0.1, 0.0, 1.0, -1.0, 0.5, 0.5, 0.5];
/// let loss = LinearCrossEntropy {
///     cross_entropy: CrossEntropy { label_smoothing: 0.1, ..Default::default() },
///     ..Default::default()
/// };
/// let input = LinearInput::new(&hidden, &classifier, [2, 3, 4]).with_grad();
/// let out = ctx.compute(&loss, input, &[3u32, 0])?;
/// let want = xent::reference::compute(&loss, input, &[3u32, 0])?;
/// assert!((f64::from(out.loss.scalar().unwrap()) - want.loss.scalar().unwrap()).abs() < 1e-5);
/// assert_eq!(out.grad_classifier.unwrap().len(), 12);
/// # Ok::<(), xent::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct LinearCrossEntropy {
    /// The cross-entropy over the logits, with every option of [`CrossEntropy`] (class
    /// `weight` of length V, `ignore_index`, `label_smoothing`, `reduction`, `softcap`,
    /// `z_loss`) but `return_lse`.
    pub cross_entropy: CrossEntropy,
    /// The most device memory one block of logits takes, in bytes (default
    /// [`DEFAULT_BLOCK_BYTES`](Self::DEFAULT_BLOCK_BYTES)). A block is as many classes as fit
    /// for all tokens (at least 1024 where the budget allows, fewer tokens per block then),
    /// also within the device's largest binding. Larger blocks mean fewer, larger dispatches;
    /// a budget that would cut the logits into more than 4096 blocks is an error.
    pub block_bytes: u64,
}

impl LinearCrossEntropy {
    /// The default block budget: 64 MiB.
    ///
    /// ```
    /// assert_eq!(xent::LinearCrossEntropy::default().block_bytes, 64 << 20);
    /// ```
    pub const DEFAULT_BLOCK_BYTES: u64 = 64 << 20;
}

impl Default for LinearCrossEntropy {
    fn default() -> Self {
        LinearCrossEntropy {
            cross_entropy: CrossEntropy::default(),
            block_bytes: Self::DEFAULT_BLOCK_BYTES,
        }
    }
}

/// The sizes of fused linear cross-entropy: N tokens of D features, V classes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LinearShape {
    pub(crate) rows: usize,
    pub(crate) dim: usize,
    pub(crate) classes: usize,
}

impl LinearShape {
    /// The shape `[N, D, V]`, D and V at least 1 (N = 0 gives PyTorch's empty results), with
    /// N D, V D and N V within `usize`.
    pub(crate) fn new([rows, dim, classes]: [usize; 3]) -> Result<LinearShape> {
        if dim == 0 || classes == 0 {
            return Err(Error::InvalidShape {
                reason: format!(
                    "linear cross-entropy of shape [N, D, V] = [{rows}, {dim}, {classes}] needs at \
                     least one feature and one class"
                ),
            });
        }
        let overflow = [(rows, dim), (classes, dim), (rows, classes)]
            .iter()
            .any(|(a, b)| a.checked_mul(*b).is_none());
        if overflow {
            return Err(Error::InvalidShape {
                reason: format!("[N, D, V] = [{rows}, {dim}, {classes}] overflows"),
            });
        }
        Ok(LinearShape { rows, dim, classes })
    }
}

/// The inputs of [`LinearCrossEntropy`] on the host: hidden states (N, D) and classifier
/// (V, D) row-major (PyTorch's `nn.Linear(D, V).weight`), an optional bias (V), and whether the
/// gradients are wanted.
///
/// ```
/// use xent::LinearInput;
///
/// let (hidden, classifier, bias) = (vec![0.0f32; 6], vec![0.0f32; 12], vec![0.0f32; 4]);
/// let input = LinearInput::new(&hidden, &classifier, [2, 3, 4]).with_bias(&bias).with_grad();
/// assert!(input.wants_grad() && input.shape() == [2, 3, 4]);
/// ```
#[derive(Clone, Copy, Debug)]
pub struct LinearInput<'a> {
    pub(crate) hidden: &'a [f32],
    pub(crate) classifier: &'a [f32],
    pub(crate) bias: Option<&'a [f32]>,
    pub(crate) shape: [usize; 3],
    pub(crate) grad: Option<Option<&'a [f32]>>,
}

impl<'a> LinearInput<'a> {
    /// Hidden states and classifier of shape `[N, D, V]`; the loss only, until
    /// [`with_grad`](Self::with_grad).
    pub fn new(hidden: &'a [f32], classifier: &'a [f32], shape: [usize; 3]) -> Self {
        LinearInput {
            hidden,
            classifier,
            bias: None,
            shape,
            grad: None,
        }
    }

    /// Adds a bias of V values to every token's logits.
    pub fn with_bias(self, bias: &'a [f32]) -> Self {
        LinearInput {
            bias: Some(bias),
            ..self
        }
    }

    /// Asks for the gradients of hidden, classifier and bias (if any), for an upstream
    /// gradient of ones.
    pub fn with_grad(self) -> Self {
        LinearInput {
            grad: Some(self.grad.flatten()),
            ..self
        }
    }

    /// Asks for the gradients for the upstream gradient `upstream`: one value for `Mean` and
    /// `Sum`, one per token for `None`.
    ///
    /// ```
    /// let (h, w) = ([1.0f32, 2.0], [0.5f32, 0.5]);
    /// let input = xent::LinearInput::new(&h, &w, [2, 1, 2]).with_upstream(&[0.5]);
    /// assert!(input.wants_grad());
    /// ```
    pub fn with_upstream(self, upstream: &'a [f32]) -> Self {
        LinearInput {
            grad: Some(Some(upstream)),
            ..self
        }
    }

    /// Whether the gradients are asked for.
    pub fn wants_grad(&self) -> bool {
        self.grad.is_some()
    }

    /// The shape `[N, D, V]`.
    pub fn shape(&self) -> [usize; 3] {
        self.shape
    }
}

/// What [`LinearCrossEntropy`] computes: the loss and, when asked for, the gradients with
/// respect to hidden (N, D), classifier (V, D) and bias (V, when given), as PyTorch's
/// autograd gives them for the upstream gradient. xent's GPU results are `LinearOutput<f32>`;
/// [`crate::reference::compute`] gives `LinearOutput<f64>`.
#[derive(Clone, Debug, PartialEq)]
pub struct LinearOutput<T = f32> {
    /// The loss: reduced, or one per token.
    pub loss: Loss<T>,
    /// d loss / d hidden, (N, D).
    pub grad_hidden: Option<Vec<T>>,
    /// d loss / d classifier, (V, D).
    pub grad_classifier: Option<Vec<T>>,
    /// d loss / d bias, (V); `None` without a bias.
    pub grad_bias: Option<Vec<T>>,
}

/// A checked host call: its shape, labels (i64, each in [0, V) or `ignore_index`) and the
/// upstream gradient (with gradients).
pub(crate) struct LinearCall {
    pub(crate) shape: LinearShape,
    pub(crate) labels: Vec<i64>,
    pub(crate) upstream: Option<Vec<f32>>,
}

/// Checks a host call of `loss` on `input` and `targets`: shapes, lengths, options, labels
/// and the upstream gradient.
pub(crate) fn check(
    loss: &LinearCrossEntropy,
    input: &LinearInput<'_>,
    targets: Targets<'_>,
) -> Result<LinearCall> {
    let shape = LinearShape::new(input.shape)?;
    let LinearShape { rows, dim, classes } = shape;
    check_options(loss, classes)?;
    // Products within usize: checked by LinearShape::new.
    validate::length("hidden", input.hidden.len(), rows * dim, "(N, D)")?;
    validate::length(
        "classifier",
        input.classifier.len(),
        classes * dim,
        "(V, D)",
    )?;
    if let Some(bias) = input.bias {
        validate::length("bias", bias.len(), classes, "(V)")?;
    }
    let options = &loss.cross_entropy;
    let labels = validate::class_indices(
        "linear_cross_entropy",
        targets,
        rows,
        classes,
        options.ignore_index,
    )?;
    let upstream = match input.grad {
        None => None,
        Some(u) => Some(validate::upstream(u, options.reduction, rows, "token")?),
    };
    Ok(LinearCall {
        shape,
        labels,
        upstream,
    })
}

/// Checks the options of `loss` over `classes` classes.
pub(crate) fn check_options(loss: &LinearCrossEntropy, classes: usize) -> Result<()> {
    let options = &loss.cross_entropy;
    if options.return_lse {
        return Err(Error::InvalidOption {
            name: "return_lse",
            value: "true".into(),
            reason: "fused linear cross-entropy does not return the log-sum-exp".into(),
        });
    }
    validate::cross_entropy_options(options, classes)
}
