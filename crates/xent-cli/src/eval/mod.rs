//! `xent eval`: losses and gradients of arrays in .npy files, a subcommand per loss family
//! (ce.rs, nll.rs, binary.rs for bce and focal, linear.rs for linear-ce), the arrays read and
//! written in arrays.rs.

mod arrays;
mod binary;
mod ce;
mod linear;
mod nll;

use clap::ValueEnum;

use crate::files;
use arrays::*;
pub use binary::{BceArgs, FocalArgs};
pub use ce::CeArgs;
pub use linear::LinearCeArgs;
pub use nll::NllArgs;
use xent::{
    BinaryCrossEntropy, BinaryCrossEntropyWithLogits, Context, CrossEntropy, Error, Input, Loss,
    NllLoss, Output, Reduction, SigmoidFocalLoss, Targets,
};
use xent_cli::npy::{self, Array, Data};

/// The loss to evaluate.
#[derive(clap::Subcommand)]
pub enum Command {
    /// Categorical cross-entropy of (N, C) logits against (N,) class indices or (N, C)
    /// probabilities. Floats of any float type (computed in float32), indices of any integer
    /// type, C or Fortran order.
    Ce(CeArgs),
    /// Binary cross-entropy of an input of any shape (probabilities, or logits with --logits)
    /// against a target of the same shape. Floats of any float type (computed in float32).
    Bce(BceArgs),
    /// Sigmoid focal loss (torchvision.ops.sigmoid_focal_loss) of logits of any shape against
    /// targets in [0, 1] of the same shape; reduction none unless --reduction says otherwise.
    Focal(FocalArgs),
    /// The NLL loss (torch.nn.functional.nll_loss) of (N, C) log-probabilities against (N,)
    /// class indices of any integer type.
    Nll(NllArgs),
    /// Fused linear cross-entropy: cross-entropy of the logits hidden classifier^T (+ bias)
    /// against (N,) class indices, computed without holding the (N, V) logits, and the
    /// gradients of hidden, classifier and bias.
    LinearCe(LinearCeArgs),
}

/// `--reduction`, as PyTorch's.
#[derive(Clone, Copy, ValueEnum)]
pub enum ReductionArg {
    Mean,
    Sum,
    None,
}

impl From<ReductionArg> for Reduction {
    fn from(r: ReductionArg) -> Reduction {
        match r {
            ReductionArg::Mean => Reduction::Mean,
            ReductionArg::Sum => Reduction::Sum,
            ReductionArg::None => Reduction::None,
        }
    }
}

/// The options of `xent eval ce` and `linear-ce`, as `CrossEntropy`'s.
#[derive(clap::Args)]
pub struct CeOptions {
    /// Class weights, one per class.
    #[arg(long, value_name = "W.npy")]
    weight: Option<String>,
    /// Positions (tokens) whose class index equals this are ignored.
    #[arg(long, default_value_t = -100, allow_hyphen_values = true)]
    ignore_index: i64,
    /// Label smoothing in [0, 1].
    #[arg(long, default_value_t = 0.0)]
    label_smoothing: f32,
    /// Logit softcap S > 0: logits are read as S tanh(x / S).
    #[arg(long, value_name = "S", allow_hyphen_values = true)]
    softcap: Option<f32>,
    /// z-loss coefficient Z >= 0: adds Z lse^2 per counted row.
    #[arg(
        long,
        value_name = "Z",
        default_value_t = 0.0,
        allow_hyphen_values = true
    )]
    z_loss: f32,
}

impl CeOptions {
    /// The options over `classes` classes (reading the weight file), with `reduction`.
    fn read(&self, classes: usize, reduction: Reduction) -> Result<CrossEntropy, String> {
        Ok(CrossEntropy {
            weight: read_class_weight(self.weight.as_deref(), classes)?,
            ignore_index: self.ignore_index,
            label_smoothing: self.label_smoothing,
            reduction,
            softcap: self.softcap,
            z_loss: self.z_loss,
            return_lse: false,
        })
    }
}

/// The arguments every `xent eval` loss takes: the reduction, where the results go, and the
/// adapter.
#[derive(clap::Args)]
pub struct Outputs {
    /// How losses are combined (default: mean; none for focal, as torchvision).
    #[arg(long, value_enum)]
    reduction: Option<ReductionArg>,
    /// Where to write the float32 loss: shape () for mean and sum; for none, the targets'
    /// shape (ce, nll: one per position) or the input's shape (bce, focal).
    #[arg(long, value_name = "LOSS.npy")]
    loss_out: String,
    /// Where to write the float32 gradient with respect to the input (its shape).
    #[arg(long, value_name = "GRAD.npy")]
    grad_out: Option<String>,
    /// The upstream gradient the gradient is taken for, as PyTorch's `loss.backward(upstream)`
    /// (any float type): shape () for mean and sum; for none the loss's shape (ce, nll: one
    /// per position; bce, focal: the input's). Ones when not given. Needs --grad-out.
    #[arg(long, value_name = "U.npy")]
    upstream: Option<String>,
    /// The adapter: an index from `xent info`, a backend (vulkan, metal, dx12, gl, webgpu;
    /// its best adapter), or part of one adapter's name (default: the best adapter).
    #[arg(long)]
    adapter: Option<String>,
}

fn context(adapter: Option<&str>) -> Result<Context, String> {
    Ok(crate::chosen_contexts(adapter, false, true)?.remove(0))
}

/// Refuses, before anything runs, outputs that cannot be written or that name an input or
/// each other: those of `out`, and `lse_out` (`eval ce`).
fn check_paths(
    inputs: &[Option<&str>],
    out: &Outputs,
    lse_out: Option<&str>,
) -> Result<(), String> {
    let mut inputs: Vec<&str> = inputs.iter().flatten().copied().collect();
    inputs.extend(out.upstream.as_deref());
    let mut outputs = vec![out.loss_out.as_str()];
    outputs.extend(out.grad_out.as_deref());
    outputs.extend(lse_out);
    files::check_outputs(&inputs, &outputs)
}

/// Names the file a library error is about.
fn blame(e: Error, files: &[(&str, &str)]) -> String {
    let file = |role: &str| {
        files
            .iter()
            .find(|(r, _)| *r == role)
            .map_or(role.to_string(), |(_, f)| f.to_string())
    };
    match &e {
        Error::LabelOutOfRange { .. } | Error::NonFiniteTarget { .. } => {
            format!("{}: {e}", file("target"))
        }
        Error::ProbabilityOutOfRange { what, .. } => {
            let role = if *what == "target" { "target" } else { "input" };
            format!("{}: {e}", file(role))
        }
        Error::ShapeMismatch {
            what: "upstream", ..
        } => format!("--upstream: {e}"),
        Error::NonFiniteWeight { what, .. } | Error::ShapeMismatch { what, .. } => {
            let role = what.trim_end_matches('s');
            format!("{}: {e}", file(role))
        }
        Error::InvalidShape { .. } => format!("{}: {e}", file("input")),
        _ => e.to_string(),
    }
}

/// The input of a loss, asking for its gradient when one is written, for `upstream` when
/// given (see [`Outputs::read_upstream`]).
fn input<'a>(
    values: &'a [f32],
    shape: Vec<usize>,
    out: &Outputs,
    upstream: Option<&'a [f32]>,
) -> Input<'a> {
    let input = Input::new(values, shape);
    match (&out.grad_out, upstream) {
        (None, _) => input,
        (Some(_), None) => input.with_grad(),
        (Some(_), Some(u)) => input.with_upstream(u),
    }
}

/// Reads `--upstream` (see [`Outputs::upstream`]) for a loss of `loss_shape` unreduced: shape ()
/// for `Mean` and `Sum`, `loss_shape` for `None`. An error without `--grad-out`.
fn read_upstream(
    path: Option<&str>,
    has_grad: bool,
    reduction: Reduction,
    loss_shape: &[usize],
) -> Result<Option<Vec<f32>>, String> {
    let Some(path) = path else {
        return Ok(None);
    };
    if !has_grad {
        return Err("--upstream scales the gradient: give a gradient output too".into());
    }
    let shape: &[usize] = match reduction {
        Reduction::None => loss_shape,
        _ => &[],
    };
    Ok(Some(arrays::read_f32(path, Some(shape))?.1))
}

/// Runs `xent eval`.
pub fn run(command: &Command) -> Result<(), String> {
    match command {
        Command::Ce(args) => ce::run_ce(args),
        Command::Bce(args) => binary::run_bce(args),
        Command::Focal(args) => binary::run_focal(args),
        Command::Nll(args) => nll::run_nll(args),
        Command::LinearCe(args) => linear::run_linear_ce(args),
    }
}

impl Outputs {
    /// `--reduction`, or the loss's own default.
    fn reduction(&self, default: Reduction) -> Reduction {
        self.reduction.map_or(default, Reduction::from)
    }

    /// `--upstream`, read for a loss of `reduction` whose unreduced shape is `loss_shape`.
    fn read_upstream(
        &self,
        reduction: Reduction,
        loss_shape: &[usize],
    ) -> Result<Option<Vec<f32>>, String> {
        let has_grad = self.grad_out.is_some();
        read_upstream(self.upstream.as_deref(), has_grad, reduction, loss_shape)
    }
}
