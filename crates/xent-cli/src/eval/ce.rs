//! `xent eval ce`: categorical cross-entropy of logits against class indices or probabilities.

use super::arrays::*;
use super::*;

/// Arguments of `xent eval ce`.
#[derive(clap::Args)]
pub struct CeArgs {
    /// Logits: (N, C), unbatched (C,), or (N, C, d1, ..., dk) with the classes second.
    #[arg(long, value_name = "L.npy")]
    logits: String,
    /// Class indices (any integer type) of shape (N,), () or (N, d1, ..., dk), or float
    /// probabilities of the logits' shape.
    #[arg(long, value_name = "T.npy")]
    target: String,
    #[command(flatten)]
    options: CeOptions,
    /// Where to write each position's float32 log-sum-exp over classes of the (softcapped)
    /// logits, ignored positions included: the class-index targets' shape.
    #[arg(long, value_name = "LSE.npy")]
    lse_out: Option<String>,
    #[command(flatten)]
    out: Outputs,
}

pub(super) fn run_ce(args: &CeArgs) -> Result<(), String> {
    let inputs = [
        Some(args.logits.as_str()),
        Some(args.target.as_str()),
        args.options.weight.as_deref(),
    ];
    check_paths(&inputs, &args.out, args.lse_out.as_deref())?;
    let (shape, c, logits) = read_classes(&args.logits)?;
    let positions = position_shape(&shape);
    let options = CrossEntropy {
        return_lse: args.lse_out.is_some(),
        ..args.options.read(c, args.out.reduction(Reduction::Mean))?
    };
    let target = read(&args.target)?;
    let files = [
        ("input", args.logits.as_str()),
        ("target", args.target.as_str()),
        (
            "weight",
            args.options.weight.as_deref().unwrap_or("--weight"),
        ),
    ];
    let ctx = context(args.out.adapter.as_deref())?;
    let targets: Targets = match &target.data {
        Data::I64(t) if target.shape == positions => t.into(),
        Data::I32(t) if target.shape == positions => t.into(),
        Data::F32(t) if target.shape == shape => t.into(),
        _ => {
            return Err(format!(
                "{}: {} of shape {} but {} integer class indices or {} float probabilities \
                 were expected",
                args.target,
                target.dtype().name(),
                target.shape_text(),
                npy::shape_text(&positions),
                npy::shape_text(&shape),
            ))
        }
    };
    let upstream = args.out.read_upstream(options.reduction, &positions)?;
    let result = ctx.compute(
        &options,
        input(&logits, shape.clone(), &args.out, upstream.as_deref()),
        targets,
    );
    let result = result.map_err(|e| match e {
        Error::InvalidOption {
            name: "label_smoothing",
            ..
        } => format!("--label-smoothing: {e}"),
        Error::InvalidOption {
            name: "softcap", ..
        } => format!("--softcap: {e}"),
        Error::InvalidOption { name: "z_loss", .. } => format!("--z-loss: {e}"),
        e => blame(e, &files),
    })?;
    let lse_out = args.lse_out.as_deref();
    write_results(&args.out, result, (positions, shape), lse_out)
}
