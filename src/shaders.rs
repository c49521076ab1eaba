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

/// Every compute kernel xent has. One WGSL entry point (`main`) per kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Kernel {
    LogSoftmaxForward,
    CrossEntropyForward,
    CrossEntropyProbsForward,
    BceForward,
    BceLogitsForward,
    ReducePairs,
}

impl Kernel {
    /// All kernels, for validation and for pipeline warm-up.
    pub(crate) const ALL: [Kernel; 6] = [
        Kernel::LogSoftmaxForward,
        Kernel::CrossEntropyForward,
        Kernel::CrossEntropyProbsForward,
        Kernel::BceForward,
        Kernel::BceLogitsForward,
        Kernel::ReducePairs,
    ];

    /// The file name under `shaders/` (for labels and error messages).
    pub(crate) fn file(self) -> &'static str {
        match self {
            Kernel::LogSoftmaxForward => "log_softmax_forward.wgsl",
            Kernel::CrossEntropyForward => "cross_entropy_forward.wgsl",
            Kernel::CrossEntropyProbsForward => "cross_entropy_probs_forward.wgsl",
            Kernel::BceForward => "bce_forward.wgsl",
            Kernel::BceLogitsForward => "bce_logits_forward.wgsl",
            Kernel::ReducePairs => "reduce_pairs.wgsl",
        }
    }

    /// The complete WGSL source: included helpers, then the kernel itself.
    pub(crate) fn source(self) -> String {
        let parts: &[&str] = match self {
            Kernel::LogSoftmaxForward => &[
                MATH,
                GRID,
                ROW_STATE,
                include_str!("../shaders/log_softmax_forward.wgsl"),
            ],
            Kernel::CrossEntropyForward => &[
                MATH,
                GRID,
                ROW_STATE,
                include_str!("../shaders/cross_entropy_forward.wgsl"),
            ],
            Kernel::CrossEntropyProbsForward => &[
                MATH,
                GRID,
                ROW_STATE,
                include_str!("../shaders/cross_entropy_probs_forward.wgsl"),
            ],
            Kernel::BceForward => &[
                MATH,
                GRID,
                ELEMENTWISE,
                include_str!("../shaders/bce_forward.wgsl"),
            ],
            Kernel::BceLogitsForward => &[
                MATH,
                GRID,
                ELEMENTWISE,
                include_str!("../shaders/bce_logits_forward.wgsl"),
            ],
            Kernel::ReducePairs => &[
                GRID,
                ELEMENTWISE,
                include_str!("../shaders/reduce_pairs.wgsl"),
            ],
        };
        parts.join("\n")
    }

    /// The kernel's bindings in order, matching its `@binding` declarations.
    pub(crate) fn bindings(self) -> &'static [Binding] {
        match self {
            Kernel::LogSoftmaxForward => &[Uniform, Read, ReadWrite],
            Kernel::CrossEntropyForward => &[Uniform, Read, Read, Read, ReadWrite],
            Kernel::CrossEntropyProbsForward => &[Uniform, Read, Read, Read, ReadWrite],
            Kernel::BceForward => &[Uniform, Read, Read, Read, ReadWrite],
            Kernel::BceLogitsForward => &[Uniform, Read, Read, Read, Read, ReadWrite],
            Kernel::ReducePairs => &[Uniform, Read, ReadWrite],
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
