//! `xent eval ce`, `bce`, `focal` and `nll`: losses and gradients of arrays in .npy files.

use clap::ValueEnum;

use crate::files;
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
    /// The adapter: an index from `xent info`, a backend (vulkan, metal, dx12, gl, webgpu;
    /// its best adapter), or part of one adapter's name (default: the best adapter).
    #[arg(long)]
    adapter: Option<String>,
}

/// Arguments of `xent eval bce`.
#[derive(clap::Args)]
pub struct BceArgs {
    /// Input: probabilities in [0, 1], or logits with --logits.
    #[arg(long, value_name = "X.npy")]
    input: String,
    /// Target of the input's shape, in [0, 1]: any float type, any integer type or bool.
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
    /// The adapter: an index from `xent info`, a backend (vulkan, metal, dx12, gl, webgpu;
    /// its best adapter), or part of one adapter's name (default: the best adapter).
    #[arg(long)]
    adapter: Option<String>,
}

/// Reads a .npy file; errors name the file.
fn read(path: &str) -> Result<Array, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{path}: cannot read: {e}"))?;
    npy::read(&mut std::io::BufReader::new(file)).map_err(|e| format!("{path}: {e}"))
}

/// Reads a .npy file of floats (any float type, as float32) of an expected shape (`None`
/// entries match any size).
fn read_f32(path: &str, shape: Option<&[usize]>) -> Result<(Vec<usize>, Vec<f32>), String> {
    let array = read(path)?;
    if let Some(want) = shape {
        if array.shape != want {
            return Err(format!(
                "{path}: shape {} but {} was expected",
                array.shape_text(),
                npy::shape_text(want)
            ));
        }
    }
    match array.data {
        Data::F32(v) => Ok((array.shape, v)),
        _ => Err(format!(
            "{path}: dtype {} but a float type (float16, float32, float64) was expected",
            array.dtype().name()
        )),
    }
}

/// Reads binary targets of `shape`: floats of any float type, or integers of any integer
/// type or bool (NumPy's usual label arrays), as float32.
fn read_binary_targets(path: &str, shape: &[usize]) -> Result<Vec<f32>, String> {
    let array = read(path)?;
    if array.shape != shape {
        return Err(format!(
            "{path}: shape {} but {} was expected",
            array.shape_text(),
            npy::shape_text(shape)
        ));
    }
    Ok(match array.data {
        Data::F32(v) => v,
        Data::I32(v) => v.into_iter().map(|t| t as f32).collect(),
        Data::I64(v) => v.into_iter().map(|t| t as f32).collect(),
    })
}

/// A float array that broadcasts to `shape` as NumPy and PyTorch broadcast (dimensions
/// aligned at the end, each 1 or equal): as read when it is a trailing part of `shape` (which
/// the library repeats over the leading dimensions itself), repeated to the whole of `shape`
/// otherwise (e.g. (N, 1) for an (N, C) input).
fn read_broadcast(path: &str, shape: &[usize]) -> Result<Vec<f32>, String> {
    let (from, values) = read_f32(path, None)?;
    broadcast(&from, values, shape).map_err(|reason| format!("{path}: {reason}"))
}

/// `values` of shape `from` broadcast to `to` (see [`read_broadcast`]).
fn broadcast(from: &[usize], values: Vec<f32>, to: &[usize]) -> Result<Vec<f32>, String> {
    let refuse = || {
        format!(
            "shape {} does not broadcast to the input's shape {}",
            npy::shape_text(from),
            npy::shape_text(to)
        )
    };
    let leading_ones = from.iter().take_while(|&&d| d == 1).count();
    let core = &from[leading_ones..];
    if core.len() > to.len() {
        return Err(refuse());
    }
    let offset = to.len() - core.len();
    if core == &to[offset..] {
        return Ok(values);
    }
    if core
        .iter()
        .zip(&to[offset..])
        .any(|(&f, &t)| f != 1 && f != t)
    {
        return Err(refuse());
    }
    // Source strides per dimension of `to`: 0 where the source repeats.
    let mut strides = vec![0usize; to.len()];
    let mut stride = 1;
    for (k, &d) in core.iter().enumerate().rev() {
        strides[offset + k] = if d == 1 { 0 } else { stride };
        stride *= d;
    }
    let len: usize = to.iter().product();
    let mut out = Vec::with_capacity(len);
    for i in 0..len {
        let (mut rest, mut source) = (i, 0);
        for (k, &d) in to.iter().enumerate().rev() {
            source += (rest % d) * strides[k];
            rest /= d;
        }
        out.push(values[source]);
    }
    Ok(out)
}

fn context(adapter: Option<&str>) -> Result<Context, String> {
    Ok(crate::chosen_contexts(adapter, false, true)?.remove(0))
}

/// The loss as an array: shape () when reduced, `shape` when not.
fn loss_array(loss: Loss, shape: Vec<usize>) -> Array {
    match loss {
        Loss::Reduced(v) => Array::f32(vec![], vec![v]),
        Loss::Unreduced(v) => Array::f32(shape, v),
    }
}

/// Refuses, before anything runs, outputs that cannot be written or that name an input or
/// each other: those of `out`, and `lse_out` (`eval ce`).
fn check_paths(
    inputs: &[Option<&str>],
    out: &Outputs,
    lse_out: Option<&str>,
) -> Result<(), String> {
    let inputs: Vec<&str> = inputs.iter().flatten().copied().collect();
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
        Error::LabelOutOfRange { .. } => format!("{}: {e}", file("target")),
        Error::ProbabilityOutOfRange { what, .. } => {
            let role = if *what == "target" { "target" } else { "input" };
            format!("{}: {e}", file(role))
        }
        Error::NonFiniteWeight { what, .. } | Error::ShapeMismatch { what, .. } => {
            let role = what.trim_end_matches('s');
            format!("{}: {e}", file(role))
        }
        Error::InvalidShape { .. } => format!("{}: {e}", file("input")),
        _ => e.to_string(),
    }
}

fn run_ce(args: &CeArgs) -> Result<(), String> {
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
    let want_grad = args.out.grad_out.is_some();
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
    let result = ctx.compute(&options, input(&logits, shape.clone(), want_grad), targets);
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

/// A float array of classes as PyTorch's cross-entropy takes it: (C,), (N, C) or (N, C, d1,
/// ..., dk), with C >= 1; its shape and C.
fn read_classes(path: &str) -> Result<(Vec<usize>, usize, Vec<f32>), String> {
    let (shape, values) = read_f32(path, None)?;
    let classes = match shape[..] {
        [c] | [_, c, ..] => c,
        [] => {
            return Err(format!(
                "{path}: a scalar but a (C,), (N, C) or (N, C, d1, ..., dk) array was expected"
            ))
        }
    };
    if classes == 0 {
        return Err(format!(
            "{path}: shape {} has no classes",
            npy::shape_text(&shape)
        ));
    }
    Ok((shape, classes, values))
}

/// The shape of the positions of a (C,), (N, C) or (N, C, d1, ..., dk) input: (), (N,) or
/// (N, d1, ..., dk), that of class-index targets and of an unreduced loss.
fn position_shape(shape: &[usize]) -> Vec<usize> {
    match shape {
        [_] => Vec::new(),
        [n, _, rest @ ..] => std::iter::once(*n).chain(rest.iter().copied()).collect(),
        [] => Vec::new(),
    }
}

/// `--weight`: C class weights, when given.
fn read_class_weight(path: Option<&str>, classes: usize) -> Result<Option<Vec<f32>>, String> {
    path.map(|p| read_f32(p, Some(&[classes])).map(|(_, w)| w))
        .transpose()
}

fn run_nll(args: &NllArgs) -> Result<(), String> {
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
    let want_grad = args.out.grad_out.is_some();
    let result = ctx
        .compute(&options, input(&logp, shape.clone(), want_grad), targets)
        .map_err(|e| blame(e, &files))?;
    write_results(&args.out, result, (positions, shape), None)
}

/// The input of a loss, asking for its gradient when one is written.
fn input(values: &[f32], shape: Vec<usize>, want_grad: bool) -> Input<'_> {
    let input = Input::new(values, shape);
    if want_grad {
        input.with_grad()
    } else {
        input
    }
}

/// Writes a loss's results once everything is computed (a half-written set is removed): the
/// loss (reduced: shape (); unreduced: `items`, one per row or element), where asked the
/// gradient of the input's shape `input`, and the log-sum-exp of shape `items` to `lse_out`.
fn write_results(
    out: &Outputs,
    result: Output,
    (items, input): (Vec<usize>, Vec<usize>),
    lse_out: Option<&str>,
) -> Result<(), String> {
    let lse = lse_out
        .zip(result.lse)
        .map(|(p, v)| (p, Array::f32(items.clone(), v)));
    let grad = out.grad_out.as_deref().zip(result.grad);
    let grad = grad.map(|(p, g)| (p, Array::f32(input, g)));
    let loss = (out.loss_out.as_str(), loss_array(result.loss, items));
    write_arrays(std::iter::once(loss).chain(grad).chain(lse))
}

/// Writes each array as .npy to its path, all or none (see [`files::write_all`]).
fn write_arrays<'p>(arrays: impl IntoIterator<Item = (&'p str, Array)>) -> Result<(), String> {
    let outputs: Vec<(&str, Vec<u8>)> = arrays
        .into_iter()
        .map(|(path, array)| (path, npy::to_bytes(&array)))
        .collect();
    files::write_all(&outputs)
}

fn run_bce(args: &BceArgs) -> Result<(), String> {
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
    let want_grad = args.out.grad_out.is_some();
    let x = input(&input_values, shape.clone(), want_grad);
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

/// Runs `xent eval`.
pub fn run(command: &Command) -> Result<(), String> {
    match command {
        Command::Ce(args) => run_ce(args),
        Command::Bce(args) => run_bce(args),
        Command::Focal(args) => run_focal(args),
        Command::Nll(args) => run_nll(args),
        Command::LinearCe(args) => run_linear_ce(args),
    }
}

impl Outputs {
    /// `--reduction`, or the loss's own default.
    fn reduction(&self, default: Reduction) -> Reduction {
        self.reduction.map_or(default, Reduction::from)
    }
}

/// A (rows, cols) float matrix from `path`, with cols >= 1.
fn read_matrix(path: &str) -> Result<([usize; 2], Vec<f32>), String> {
    let (shape, values) = read_f32(path, None)?;
    match shape[..] {
        [rows, cols] if cols > 0 => Ok(([rows, cols], values)),
        _ => Err(format!(
            "{path}: shape {} but a 2-D array with at least one column was expected",
            npy::shape_text(&shape)
        )),
    }
}

fn run_linear_ce(args: &LinearCeArgs) -> Result<(), String> {
    let inputs = [
        Some(args.hidden.as_str()),
        Some(args.classifier.as_str()),
        Some(args.target.as_str()),
        args.bias.as_deref(),
        args.options.weight.as_deref(),
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
    if grads.iter().any(Option::is_some) {
        input = input.with_grad();
    }
    let files = [
        ("input", args.hidden.as_str()),
        ("target", args.target.as_str()),
        (
            "weight",
            args.options.weight.as_deref().unwrap_or("--weight"),
        ),
    ];
    let result = ctx
        .linear_cross_entropy(&loss, input, targets)
        .map_err(|e| match e {
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

fn run_focal(args: &FocalArgs) -> Result<(), String> {
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
    let input = input(&x, shape.clone(), args.out.grad_out.is_some());
    let result = ctx
        .compute(&options, input, &target)
        .map_err(|e| blame(e, &files))?;
    write_results(&args.out, result, (shape.clone(), shape), None)
}

#[cfg(test)]
mod tests {
    use super::broadcast;

    #[test]
    fn weights_broadcast_as_numpy_does() {
        let (n, c) = (2, 3);
        // A trailing part stays as it is (the library repeats it).
        assert_eq!(
            broadcast(&[1, c], vec![1.0, 2.0, 3.0], &[n, c]),
            Ok(vec![1.0, 2.0, 3.0])
        );
        // A column repeats along the rows' entries.
        assert_eq!(
            broadcast(&[n, 1], vec![1.0, 2.0], &[n, c]),
            Ok(vec![1.0, 1.0, 1.0, 2.0, 2.0, 2.0])
        );
        assert_eq!(
            broadcast(&[2, 1, 2], vec![1.0, 2.0, 3.0, 4.0], &[2, 2, 2]),
            Ok(vec![1.0, 2.0, 1.0, 2.0, 3.0, 4.0, 3.0, 4.0])
        );
        for bad in [vec![c + 1], vec![n, c, 1], vec![2, n, c]] {
            let len = bad.iter().product();
            let refused = broadcast(&bad, vec![0.0; len], &[n, c]).unwrap_err();
            assert!(refused.contains("does not broadcast"), "{refused}");
        }
    }
}
