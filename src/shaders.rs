//! The shader registry: every WGSL file under `shaders/`, the common helpers each one includes,
//! and the binding layout the host creates for it.
//!
//! WGSL has no `#include`, so each kernel's source is its helper files followed by the kernel
//! file, concatenated at compile time. Pipelines specialise kernels with WGSL `override`
//! constants (workgroup size, threads per row, options) rather than string templating.

const MATH: &str = include_str!("../shaders/common/math.wgsl");
const GRID: &str = include_str!("../shaders/common/grid.wgsl");
const ROW_STATE: &str = include_str!("../shaders/common/row_state.wgsl");
const ELEMENTWISE: &str = include_str!("../shaders/common/elementwise.wgsl");
const ELEMENTWISE_LOSS: &str = include_str!("../shaders/common/elementwise_loss.wgsl");
const LOSS_OPTIONS: &str = include_str!("../shaders/common/loss_options.wgsl");

/// What a binding of a kernel holds, in binding order (binding 0 is always the uniform params).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Binding {
    /// A uniform buffer (the kernel's `Params` struct).
    Uniform,
    /// A storage buffer the kernel only reads.
    Read,
    /// A storage buffer the kernel writes.
    ReadWrite,
}

use Binding::{Read, ReadWrite, Uniform};

/// Every compute kernel xent has. One WGSL entry point (`main`) per kernel; the loss kernels
/// compute the forward loss and, with the `GRAD` override, the gradient in the same pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Kernel {
    LogSoftmax,
    CrossEntropy,
    CrossEntropyDenominator,
    CrossEntropyProbs,
    Bce,
    BceLogits,
    ReducePairs,
    ReadBandwidth,
}

impl Kernel {
    /// All kernels, for validation.
    pub(crate) const ALL: [Kernel; 8] = [
        Kernel::LogSoftmax,
        Kernel::CrossEntropy,
        Kernel::CrossEntropyDenominator,
        Kernel::CrossEntropyProbs,
        Kernel::Bce,
        Kernel::BceLogits,
        Kernel::ReducePairs,
        Kernel::ReadBandwidth,
    ];

    /// The file name under `shaders/` (for labels and error messages).
    pub(crate) fn file(self) -> &'static str {
        match self {
            Kernel::LogSoftmax => "log_softmax.wgsl",
            Kernel::CrossEntropy => "cross_entropy.wgsl",
            Kernel::CrossEntropyDenominator => "cross_entropy_denominator.wgsl",
            Kernel::CrossEntropyProbs => "cross_entropy_probs.wgsl",
            Kernel::Bce => "bce.wgsl",
            Kernel::BceLogits => "bce_logits.wgsl",
            Kernel::ReducePairs => "reduce_pairs.wgsl",
            Kernel::ReadBandwidth => "read_bandwidth.wgsl",
        }
    }

    /// The complete WGSL source: included helpers, then the kernel itself.
    pub(crate) fn source(self) -> String {
        let row = [MATH, GRID, LOSS_OPTIONS, ROW_STATE];
        let elementwise = [MATH, GRID, LOSS_OPTIONS, ELEMENTWISE, ELEMENTWISE_LOSS];
        let (helpers, kernel): (&[&str], &str) = match self {
            Kernel::LogSoftmax => (&row, include_str!("../shaders/log_softmax.wgsl")),
            Kernel::CrossEntropy => (&row, include_str!("../shaders/cross_entropy.wgsl")),
            Kernel::CrossEntropyDenominator => (
                &[MATH, GRID, ELEMENTWISE],
                include_str!("../shaders/cross_entropy_denominator.wgsl"),
            ),
            Kernel::CrossEntropyProbs => {
                (&row, include_str!("../shaders/cross_entropy_probs.wgsl"))
            }
            Kernel::Bce => (&elementwise, include_str!("../shaders/bce.wgsl")),
            Kernel::BceLogits => (&elementwise, include_str!("../shaders/bce_logits.wgsl")),
            Kernel::ReducePairs => (
                &[GRID, ELEMENTWISE],
                include_str!("../shaders/reduce_pairs.wgsl"),
            ),
            Kernel::ReadBandwidth => (&[GRID], include_str!("../shaders/read_bandwidth.wgsl")),
        };
        let mut source = helpers.join("\n");
        source.push('\n');
        source.push_str(kernel);
        source
    }

    /// The kernel's bindings in order, matching its `@binding` declarations.
    pub(crate) fn bindings(self) -> &'static [Binding] {
        match self {
            // params, logits, log_softmax, upstream, grad
            Kernel::LogSoftmax => &[Uniform, Read, ReadWrite, Read, ReadWrite],
            // params, logits, labels, weight, out, upstream, denominator, grad
            Kernel::CrossEntropy => &[
                Uniform, ReadWrite, Read, Read, ReadWrite, Read, Read, ReadWrite,
            ],
            // params, labels, weight, out
            Kernel::CrossEntropyDenominator => &[Uniform, Read, Read, ReadWrite],
            // params, logits, targets, weight, out, upstream, grad
            Kernel::CrossEntropyProbs => {
                &[Uniform, ReadWrite, Read, Read, ReadWrite, Read, ReadWrite]
            }
            // params, input, target, weight, out, upstream, grad
            Kernel::Bce => &[Uniform, Read, Read, Read, ReadWrite, Read, ReadWrite],
            // params, input, target, weight, pos_weight, out, upstream, grad
            Kernel::BceLogits => &[Uniform, Read, Read, Read, Read, ReadWrite, Read, ReadWrite],
            // params, pairs, out
            Kernel::ReducePairs => &[Uniform, Read, ReadWrite],
            // params, data, out
            Kernel::ReadBandwidth => &[Uniform, Read, ReadWrite],
        }
    }
}

/// Override constants of one pipeline: a kernel specialised by name/value pairs.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct PipelineKey {
    pub(crate) kernel: Kernel,
    /// `(override name, value)`; booleans are 0 or 1. Kept sorted by name.
    pub(crate) constants: Vec<(&'static str, u32)>,
}

impl PipelineKey {
    pub(crate) fn new(kernel: Kernel, mut constants: Vec<(&'static str, u32)>) -> Self {
        constants.sort_unstable();
        PipelineKey { kernel, constants }
    }
}

/// Every kernel's full source with its file name, for validation outside a device (tests, tools).
pub fn all_sources() -> Vec<(&'static str, String)> {
    Kernel::ALL.iter().map(|k| (k.file(), k.source())).collect()
}
