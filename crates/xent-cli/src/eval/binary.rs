//! `xent eval bce` and `focal`: binary cross-entropy (on probabilities or logits) and sigmoid
//! focal loss, elementwise.

use super::arrays::*;
use super::*;

/// Arguments of `xent eval bce`.
#[derive(clap::Args)]
pub struct BceArgs {
    /// Input: probabilities in [0, 1], or logits with --logits.
    #[arg(long, value_name = "X.npy")]
    input: String,
    /// Target of the input's shape, in [0, 1] (any finite value with --logits): any float type,
    /// any integer type or bool.
    #[arg(long, value_name = "T.npy")]
    target: String,
    /// The input holds logits (binary_cross_entropy_with_logits).
    #[arg(long)]
    logits: bool,
    /// Elementwise weight of any shape that broadcasts to the input's (as PyTorch).
    #[arg(long, value_name = "W.npy")]
    weight: Option<String>,
    /// Weight of positives, usually one per entry of the input's last dimension; any shape
    /// that broadcasts to the input's (--logits only).
    #[arg(long, value_name = "P.npy")]
    pos_weight: Option<String>,
    #[command(flatten)]
    out: Outputs,
}

/// Arguments of `xent eval focal`.
#[derive(clap::Args)]
pub struct FocalArgs {
    /// Logits of any shape.
    #[arg(long, value_name = "X.npy")]
    input: String,
    /// Targets of the input's shape, in [0, 1].
    #[arg(long, value_name = "T.npy")]
    target: String,
    /// Weight of positives (1 - alpha of negatives); below 0 turns the factor off.
    #[arg(long, default_value_t = 0.25, allow_hyphen_values = true)]
    alpha: f32,
    /// Focusing exponent, at least 0.
    #[arg(long, default_value_t = 2.0, allow_hyphen_values = true)]
    gamma: f32,
    #[command(flatten)]
    out: Outputs,
}

pub(super) fn run_bce(args: &BceArgs) -> Result<(), String> {
    let inputs = [
        Some(args.input.as_str()),
        Some(args.target.as_str()),
        args.weight.as_deref(),
        args.pos_weight.as_deref(),
    ];
    check_paths(&inputs, &args.out, None)?;
    let (shape, input_values) = read_f32(&args.input, None)?;
    let target = read_binary_targets(&args.target, &shape)?;
    let weight = match &args.weight {
        Some(path) => Some(read_broadcast(path, &shape)?),
        None => None,
    };
    let pos_weight = match (&args.pos_weight, args.logits) {
        (Some(path), true) => Some(read_broadcast(path, &shape)?),
        (Some(path), false) => {
            return Err(format!("{path}: --pos-weight applies only with --logits"))
        }
        (None, _) => None,
    };
    let files = [
        ("input", args.input.as_str()),
        ("target", args.target.as_str()),
        ("weight", args.weight.as_deref().unwrap_or("--weight")),
        (
            "pos_weight",
            args.pos_weight.as_deref().unwrap_or("--pos-weight"),
        ),
    ];
    let ctx = context(args.out.adapter.as_deref())?;
    let reduction = args.out.reduction(Reduction::Mean);
    let upstream = args.out.read_upstream(reduction, &shape)?;
    let x = input(&input_values, shape.clone(), &args.out, upstream.as_deref());
    let result = if args.logits {
        let options = BinaryCrossEntropyWithLogits {
            weight,
            pos_weight,
            reduction,
        };
        ctx.compute(&options, x, &target)
    } else {
        let options = BinaryCrossEntropy { weight, reduction };
        ctx.compute(&options, x, &target)
    }
    .map_err(|e| blame(e, &files))?;
    write_results(&args.out, result, (shape.clone(), shape), None)
}

pub(super) fn run_focal(args: &FocalArgs) -> Result<(), String> {
    check_paths(
        &[Some(args.input.as_str()), Some(args.target.as_str())],
        &args.out,
        None,
    )?;
    let (shape, x) = read_f32(&args.input, None)?;
    let target = read_binary_targets(&args.target, &shape)?;
    let files = [
        ("input", args.input.as_str()),
        ("target", args.target.as_str()),
    ];
    let ctx = context(args.out.adapter.as_deref())?;
    let options = SigmoidFocalLoss {
        alpha: args.alpha,
        gamma: args.gamma,
        reduction: args.out.reduction(Reduction::None),
    };
    let upstream = args.out.read_upstream(options.reduction, &shape)?;
    let input = input(&x, shape.clone(), &args.out, upstream.as_deref());
    let result = ctx
        .compute(&options, input, &target)
        .map_err(|e| blame(e, &files))?;
    write_results(&args.out, result, (shape.clone(), shape), None)
}
