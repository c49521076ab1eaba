//! `xent eval nll`: the NLL loss of log-probabilities against class indices.

use super::arrays::*;
use super::*;

/// Arguments of `xent eval nll`.
#[derive(clap::Args)]
pub struct NllArgs {
    /// Log-probabilities (taken as given, as PyTorch takes them): (N, C), (C,) or (N, C, d1,
    /// ..., dk).
    #[arg(long, value_name = "LOGP.npy")]
    input: String,
    /// Class indices (any integer type) of shape (N,), () or (N, d1, ..., dk).
    #[arg(long, value_name = "T.npy")]
    target: String,
    /// (C,) class weights.
    #[arg(long, value_name = "W.npy")]
    weight: Option<String>,
    /// Positions whose class index equals this are ignored.
    #[arg(long, default_value_t = -100, allow_hyphen_values = true)]
    ignore_index: i64,
    #[command(flatten)]
    out: Outputs,
}

pub(super) fn run_nll(args: &NllArgs) -> Result<(), String> {
    let inputs = [
        Some(args.input.as_str()),
        Some(args.target.as_str()),
        args.weight.as_deref(),
    ];
    check_paths(&inputs, &args.out, None)?;
    let (shape, c, logp) = read_classes(&args.input)?;
    let positions = position_shape(&shape);
    let options = NllLoss {
        weight: read_class_weight(args.weight.as_deref(), c)?,
        ignore_index: args.ignore_index,
        reduction: args.out.reduction(Reduction::Mean),
    };
    let target = read(&args.target)?;
    let targets: Targets = match &target.data {
        Data::I64(t) if target.shape == positions => t.into(),
        Data::I32(t) if target.shape == positions => t.into(),
        _ => {
            return Err(format!(
                "{}: {} of shape {} but {} integer class indices were expected",
                args.target,
                target.dtype().name(),
                target.shape_text(),
                npy::shape_text(&positions),
            ))
        }
    };
    let files = [
        ("input", args.input.as_str()),
        ("target", args.target.as_str()),
        ("weight", args.weight.as_deref().unwrap_or("--weight")),
    ];
    let ctx = context(args.out.adapter.as_deref())?;
    let upstream = args.out.read_upstream(options.reduction, &positions)?;
    let result = ctx
        .compute(
            &options,
            input(&logp, shape.clone(), &args.out, upstream.as_deref()),
            targets,
        )
        .map_err(|e| blame(e, &files))?;
    write_results(&args.out, result, (positions, shape), None)
}
