//! `xent eval linear-ce`: fused linear cross-entropy of hidden states and a classifier.

use super::arrays::*;
use super::*;

/// Arguments of `xent eval linear-ce`.
#[derive(clap::Args)]
pub struct LinearCeArgs {
    /// Hidden states, (N, D).
    #[arg(long, value_name = "H.npy")]
    hidden: String,
    /// Classifier, (V, D) (the weight of a PyTorch Linear(D, V)).
    #[arg(long, value_name = "W.npy")]
    classifier: String,
    /// Class indices (any integer type), (N,).
    #[arg(long, value_name = "T.npy")]
    target: String,
    /// Bias, (V,).
    #[arg(long, value_name = "B.npy")]
    bias: Option<String>,
    #[command(flatten)]
    options: CeOptions,
    /// How token losses are combined.
    #[arg(long, value_enum, default_value = "mean")]
    reduction: ReductionArg,
    /// The most device memory a block of logits takes, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = xent::LinearCrossEntropy::DEFAULT_BLOCK_BYTES)]
    block_bytes: u64,
    /// Where to write the float32 loss: shape () for mean and sum, (N,) for none.
    #[arg(long, value_name = "L.npy")]
    loss_out: String,
    /// Where to write the float32 gradient of hidden, (N, D).
    #[arg(long, value_name = "GH.npy")]
    grad_hidden_out: Option<String>,
    /// Where to write the float32 gradient of the classifier, (V, D).
    #[arg(long, value_name = "GW.npy")]
    grad_classifier_out: Option<String>,
    /// Where to write the float32 gradient of the bias, (V,) (needs --bias).
    #[arg(long, value_name = "GB.npy")]
    grad_bias_out: Option<String>,
    /// The upstream gradient the gradients are taken for, as PyTorch's
    /// `loss.backward(upstream)` (any float type): shape () for mean and sum, (N,) for none.
    /// Ones when not given. Needs a gradient output.
    #[arg(long, value_name = "U.npy")]
    upstream: Option<String>,
    /// The adapter: an index from `xent info`, a backend (vulkan, metal, dx12, gl, webgpu;
    /// its best adapter), or part of one adapter's name (default: the best adapter).
    #[arg(long)]
    adapter: Option<String>,
}

pub(super) fn run_linear_ce(args: &LinearCeArgs) -> Result<(), String> {
    let inputs = [
        Some(args.hidden.as_str()),
        Some(args.classifier.as_str()),
        Some(args.target.as_str()),
        args.bias.as_deref(),
        args.options.weight.as_deref(),
        args.upstream.as_deref(),
    ];
    let grads = [
        args.grad_hidden_out.as_deref(),
        args.grad_classifier_out.as_deref(),
        args.grad_bias_out.as_deref(),
    ];
    let inputs: Vec<&str> = inputs.iter().flatten().copied().collect();
    let mut outputs = vec![args.loss_out.as_str()];
    outputs.extend(grads.iter().flatten());
    files::check_outputs(&inputs, &outputs)?;
    if args.grad_bias_out.is_some() && args.bias.is_none() {
        return Err("--grad-bias-out needs --bias".into());
    }
    let ([n, d], hidden) = read_matrix(&args.hidden)?;
    let ([v, dc], classifier) = read_matrix(&args.classifier)?;
    if dc != d {
        return Err(format!(
            "{}: shape ({v}, {dc}) but ({v}, {d}) was expected: one row of the hidden states' {d} \
             features per class",
            args.classifier
        ));
    }
    let bias = match &args.bias {
        Some(path) => Some(read_f32(path, Some(&[v]))?.1),
        None => None,
    };
    let loss = xent::LinearCrossEntropy {
        cross_entropy: args.options.read(v, args.reduction.into())?,
        block_bytes: args.block_bytes,
    };
    let target = read(&args.target)?;
    let targets: Targets = match &target.data {
        Data::I64(t) if target.shape == [n] => t.into(),
        Data::I32(t) if target.shape == [n] => t.into(),
        _ => {
            return Err(format!(
                "{}: {} of shape {} but ({n},) integer class indices were expected",
                args.target,
                target.dtype().name(),
                target.shape_text(),
            ))
        }
    };
    let ctx = context(args.adapter.as_deref())?;
    let mut input = xent::LinearInput::new(&hidden, &classifier, [n, d, v]);
    if let Some(bias) = &bias {
        input = input.with_bias(bias);
    }
    let has_grad = grads.iter().any(Option::is_some);
    let reduction = loss.cross_entropy.reduction;
    let upstream = read_upstream(args.upstream.as_deref(), has_grad, reduction, &[n])?;
    input = match (&upstream, has_grad) {
        (Some(u), _) => input.with_upstream(u),
        (None, true) => input.with_grad(),
        (None, false) => input,
    };
    let files = [
        ("input", args.hidden.as_str()),
        ("target", args.target.as_str()),
        (
            "weight",
            args.options.weight.as_deref().unwrap_or("--weight"),
        ),
    ];
    let result = ctx.compute(&loss, input, targets).map_err(|e| match e {
        Error::InvalidOption { name, .. } => format!("--{}: {e}", name.replace('_', "-")),
        e => blame(e, &files),
    })?;
    let arrays = [
        (
            args.grad_hidden_out.as_deref(),
            result.grad_hidden,
            vec![n, d],
        ),
        (
            args.grad_classifier_out.as_deref(),
            result.grad_classifier,
            vec![v, d],
        ),
        (args.grad_bias_out.as_deref(), result.grad_bias, vec![v]),
    ];
    let loss = (args.loss_out.as_str(), loss_array(result.loss, vec![n]));
    let grads = arrays
        .into_iter()
        .filter_map(|(path, values, shape)| Some((path?, Array::f32(shape, values?))));
    write_arrays(std::iter::once(loss).chain(grads))
}
