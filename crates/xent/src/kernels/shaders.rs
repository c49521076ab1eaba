//! The shader registry: every WGSL file under `shaders/`, the common helpers each one includes,
//! and the binding layout the host creates for it.
//!
//! WGSL has no `#include`, so each kernel's source is its helper files followed by the kernel
//! file, concatenated at compile time. Pipelines specialise kernels with WGSL `override`
//! constants (workgroup size, threads per row, options) rather than string templating.

const MATH: &str = include_str!("../../shaders/common/math.wgsl");
const GRID: &str = include_str!("../../shaders/common/grid.wgsl");
const SCRATCH: &str = include_str!("../../shaders/common/scratch.wgsl");
const ROW_STATE: &str = include_str!("../../shaders/common/row_state.wgsl");
const ELEMENTWISE: &str = include_str!("../../shaders/common/elementwise.wgsl");
const ELEMENTWISE_LOSS: &str = include_str!("../../shaders/common/elementwise_loss.wgsl");
const SOFTCAP: &str = include_str!("../../shaders/common/softcap.wgsl");
const Z_LOSS: &str = include_str!("../../shaders/common/z_loss.wgsl");
const ELEMENTWISE_MAIN: &str = include_str!("../../shaders/common/elementwise_main.wgsl");
const LOSS_OPTIONS: &str = include_str!("../../shaders/common/loss_options.wgsl");
const IN_PLACE: &str = include_str!("../../shaders/common/in_place.wgsl");
const CATEGORICAL_PARAMS: &str = include_str!("../../shaders/common/categorical_params.wgsl");
const CATEGORICAL_MAIN: &str = include_str!("../../shaders/common/categorical_main.wgsl");
const LANES_SUBGROUP: &str = include_str!("../../shaders/common/lanes_subgroup.wgsl");
const LANES_NONE: &str = include_str!("../../shaders/common/lanes_none.wgsl");

use std::sync::OnceLock;

use crate::dtype::{Dtype, Types};
use crate::error::Result;
use crate::gpu::lanes::{PROBE_FILE, PROBE_SOURCE};
use crate::gpu::pipelines::{slot, Binding, Pipeline, Slot};
use crate::gpu::Gpu;
use Binding::{Read, ReadWrite, Uniform};

/// Every compute kernel xent has. One WGSL entry point (`main`) per kernel; the loss kernels
/// compute the forward loss and, with the `GRAD` override, the gradient in the same pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Kernel {
    LogSoftmax,
    CrossEntropy,
    CrossEntropyDenominator,
    LabelStatus,
    CrossEntropyProbs,
    Bce,
    BceLogits,
    Focal,
    Nll,
    ReducePairs,
    /// Matrix products of fused linear cross-entropy. Its operands are typed: A in
    /// `Types::input`, B and the bias in `Types::grad` (its output is always f32).
    Matmul,
    /// Row states of fused linear cross-entropy folded over blocks of classes.
    MergeStates,
    /// The read ceiling of benchmarks (`tools`, native only).
    #[cfg_attr(target_arch = "wasm32", allow(dead_code))]
    ReadBandwidth,
}

impl Kernel {
    /// All kernels, for validation.
    #[cfg_attr(target_arch = "wasm32", allow(dead_code))]
    pub(crate) const ALL: [Kernel; 13] = [
        Kernel::LogSoftmax,
        Kernel::CrossEntropy,
        Kernel::CrossEntropyDenominator,
        Kernel::LabelStatus,
        Kernel::CrossEntropyProbs,
        Kernel::Bce,
        Kernel::BceLogits,
        Kernel::Focal,
        Kernel::Nll,
        Kernel::ReducePairs,
        Kernel::Matmul,
        Kernel::MergeStates,
        Kernel::ReadBandwidth,
    ];

    /// The file name under `shaders/` (for labels and error messages).
    pub(crate) fn file(self) -> &'static str {
        match self {
            Kernel::LogSoftmax => "log_softmax.wgsl",
            Kernel::CrossEntropy => "cross_entropy.wgsl",
            Kernel::CrossEntropyDenominator => "cross_entropy_denominator.wgsl",
            Kernel::LabelStatus => "label_status.wgsl",
            Kernel::CrossEntropyProbs => "cross_entropy_probs.wgsl",
            Kernel::Bce => "bce.wgsl",
            Kernel::BceLogits => "bce_logits.wgsl",
            Kernel::Focal => "focal.wgsl",
            Kernel::Nll => "nll.wgsl",
            Kernel::ReducePairs => "reduce_pairs.wgsl",
            Kernel::Matmul => "matmul.wgsl",
            Kernel::MergeStates => "merge_states.wgsl",
            Kernel::ReadBandwidth => "read_bandwidth.wgsl",
        }
    }

    /// The complete WGSL source for f32 input and gradient, built without subgroups where the
    /// kernel has a choice.
    #[cfg_attr(target_arch = "wasm32", allow(dead_code))]
    pub(crate) fn source(self) -> String {
        self.source_typed(Types::default(), false, false)
    }

    /// Whether the kernel is a row kernel: it merges rows (so can be built with subgroup
    /// shuffles) and can split them (its last binding is `scratch`).
    pub(crate) fn merges_rows(self) -> bool {
        matches!(
            self,
            Kernel::LogSoftmax | Kernel::CrossEntropy | Kernel::CrossEntropyProbs
        )
    }

    /// Which element types a kernel takes for its input and gradient: whether it binds
    /// `x_data` (its input) and `grad_data`.
    pub(crate) fn is_typed(self) -> bool {
        position(self.bindings(false), "x_data").is_some()
    }

    /// Whether a variant can write its input in place (its `IN_PLACE` constant).
    fn writes_input(self) -> bool {
        matches!(self, Kernel::CrossEntropy | Kernel::CrossEntropyProbs)
    }

    /// The complete WGSL source: `enable f16;` when needed, the included helpers, the input and gradient declarations for the element types, the lane
    /// exchanges (subgroup shuffles, or none) of row kernels, then the kernel itself. WGSL has
    /// no generics, so element types and the lane exchanges are the things spliced in as text;
    /// everything else is an `override` constant.
    pub(crate) fn source_typed(self, types: Types, subgroups: bool, in_place: bool) -> String {
        let mut source = String::new();
        if types.input == Dtype::F16 || types.grad == Dtype::F16 {
            source.push_str("enable f16;\n");
        }
        // No `enable subgroups;`: wgpu 30's WGSL front end rejects it, and takes subgroup
        // builtins on devices created with Features::SUBGROUP.
        let subgroups = subgroups && self.merges_rows();
        if self.merges_rows() {
            source.push_str(if subgroups {
                LANES_SUBGROUP
            } else {
                LANES_NONE
            });
            source.push('\n');
        }
        let slots = self.bindings(in_place);
        if let (Some(input), Some(grad)) = (position(slots, "x_data"), position(slots, "grad_data"))
        {
            let writable = slots[input].kind == ReadWrite;
            source.push_str(&input_declaration(input as u32, writable, types.input));
            source.push_str(&grad_declaration(grad as u32, types.grad));
        }
        if self == Kernel::Matmul {
            // A in the input's type, B and the bias in the gradient slot's (see Kernel::Matmul).
            source.push_str(&operand_declaration("a", 1, types.input));
            source.push_str(&operand_declaration("b", 2, types.grad));
            source.push_str(&operand_declaration("bias", 3, types.grad));
        }
        if let Some(binding) = position(slots, "scratch") {
            source.push_str(&format!(
                "@group(0) @binding({binding}) var<storage, read_write> scratch: array<f32>;\n"
            ));
            source.push_str(SCRATCH);
        }
        source.push_str(&self.untyped_source());
        source
    }

    /// The helpers and the kernel file.
    fn untyped_source(self) -> String {
        let row = [MATH, GRID, LOSS_OPTIONS, ROW_STATE];
        let categorical = [
            MATH,
            GRID,
            LOSS_OPTIONS,
            ROW_STATE,
            IN_PLACE,
            CATEGORICAL_PARAMS,
            SOFTCAP,
            Z_LOSS,
            CATEGORICAL_MAIN,
        ];
        let elementwise = [
            MATH,
            GRID,
            LOSS_OPTIONS,
            ELEMENTWISE,
            ELEMENTWISE_LOSS,
            ELEMENTWISE_MAIN,
        ];
        let (helpers, kernel): (&[&str], &str) = match self {
            Kernel::LogSoftmax => (&row, include_str!("../../shaders/log_softmax.wgsl")),
            Kernel::CrossEntropy => (
                &categorical,
                include_str!("../../shaders/cross_entropy.wgsl"),
            ),
            Kernel::CrossEntropyDenominator => (
                &[MATH, GRID, ELEMENTWISE, CATEGORICAL_PARAMS],
                include_str!("../../shaders/cross_entropy_denominator.wgsl"),
            ),
            Kernel::LabelStatus => (
                &[CATEGORICAL_PARAMS],
                include_str!("../../shaders/label_status.wgsl"),
            ),
            Kernel::CrossEntropyProbs => (
                &categorical,
                include_str!("../../shaders/cross_entropy_probs.wgsl"),
            ),
            Kernel::Bce => (&elementwise, include_str!("../../shaders/bce.wgsl")),
            Kernel::BceLogits => (&elementwise, include_str!("../../shaders/bce_logits.wgsl")),
            Kernel::Focal => (&elementwise, include_str!("../../shaders/focal.wgsl")),
            Kernel::Nll => (
                &[MATH, GRID, LOSS_OPTIONS, ELEMENTWISE, CATEGORICAL_PARAMS],
                include_str!("../../shaders/nll.wgsl"),
            ),
            Kernel::ReducePairs => (
                &[GRID, ELEMENTWISE],
                include_str!("../../shaders/reduce_pairs.wgsl"),
            ),
            Kernel::Matmul => (&[GRID], include_str!("../../shaders/matmul.wgsl")),
            Kernel::MergeStates => (
                &[MATH, GRID],
                include_str!("../../shaders/merge_states.wgsl"),
            ),
            Kernel::ReadBandwidth => (&[GRID], include_str!("../../shaders/read_bandwidth.wgsl")),
        };
        let mut source = helpers.join("\n");
        source.push('\n');
        source.push_str(kernel);
        source
    }

    /// The kernel's bindings in order: the one source of its layout (see [`Slot`]). A
    /// kernel binds its input read-only unless the variant writes its gradient over it
    /// (`in_place`).
    pub(crate) fn bindings(self, in_place: bool) -> &'static [Slot] {
        match (self, in_place && self.writes_input()) {
            (Kernel::LogSoftmax, _) => LOG_SOFTMAX,
            (Kernel::CrossEntropy, false) => CROSS_ENTROPY,
            (Kernel::CrossEntropy, true) => {
                CROSS_ENTROPY_IN_PLACE.get_or_init(|| writable(CROSS_ENTROPY))
            }
            (Kernel::CrossEntropyDenominator, _) => CROSS_ENTROPY_DENOMINATOR,
            (Kernel::LabelStatus, _) => LABEL_STATUS,
            (Kernel::CrossEntropyProbs, false) => CROSS_ENTROPY_PROBS,
            (Kernel::CrossEntropyProbs, true) => {
                CROSS_ENTROPY_PROBS_IN_PLACE.get_or_init(|| writable(CROSS_ENTROPY_PROBS))
            }
            (Kernel::Bce | Kernel::Focal, _) => BCE,
            (Kernel::Nll, _) => NLL,
            (Kernel::BceLogits, _) => BCE_LOGITS,
            (Kernel::ReducePairs, _) => REDUCE_PAIRS,
            (Kernel::Matmul, _) => MATMUL,
            (Kernel::MergeStates, _) => MERGE_STATES,
            (Kernel::ReadBandwidth, _) => READ_BANDWIDTH,
        }
    }
}

/// The tables of the in-place variants: the input (`x_data`) is written, so read-write.
static CROSS_ENTROPY_IN_PLACE: OnceLock<Vec<Slot>> = OnceLock::new();
static CROSS_ENTROPY_PROBS_IN_PLACE: OnceLock<Vec<Slot>> = OnceLock::new();

/// `slots` with the input bound read-write.
fn writable(slots: &[Slot]) -> Vec<Slot> {
    slots
        .iter()
        .map(|s| match s.name {
            "x_data" => slot(s.name, ReadWrite),
            _ => *s,
        })
        .collect()
}

/// The binding of a slot named `name`, if the table has one.
fn position(slots: &[Slot], name: &str) -> Option<usize> {
    slots.iter().position(|s| s.name == name)
}

// The binding tables. Row kernels end with `scratch` (split rows' segment states, and the mean's
// denominator of cross_entropy); at most 8 storage bindings each (WebGPU's default).
const LOG_SOFTMAX: &[Slot] = &[
    slot("params", Uniform),
    slot("x_data", Read),
    slot("out", ReadWrite),
    slot("upstream", Read),
    slot("grad_data", ReadWrite),
    slot("scratch", ReadWrite),
];
const CROSS_ENTROPY: &[Slot] = &[
    slot("params", Uniform),
    slot("x_data", Read),
    slot("labels", Read),
    slot("weight", Read),
    slot("out", ReadWrite),
    slot("upstream", Read),
    slot("grad_data", ReadWrite),
    slot("status", ReadWrite),
    slot("scratch", ReadWrite),
];
const CROSS_ENTROPY_DENOMINATOR: &[Slot] = &[
    slot("params", Uniform),
    slot("labels", Read),
    slot("weight", Read),
    slot("out", ReadWrite),
];
const NLL: &[Slot] = &[
    slot("params", Uniform),
    slot("x_data", Read),
    slot("labels", Read),
    slot("weight", Read),
    slot("denominator", Read),
    slot("out", ReadWrite),
    slot("upstream", Read),
    slot("grad_data", ReadWrite),
    slot("status", ReadWrite),
];
const LABEL_STATUS: &[Slot] = &[
    slot("params", Uniform),
    slot("labels", Read),
    slot("status", ReadWrite),
];
const CROSS_ENTROPY_PROBS: &[Slot] = &[
    slot("params", Uniform),
    slot("x_data", Read),
    slot("targets", Read),
    slot("weight", Read),
    slot("out", ReadWrite),
    slot("upstream", Read),
    slot("grad_data", ReadWrite),
    slot("scratch", ReadWrite),
];
const BCE: &[Slot] = &[
    slot("params", Uniform),
    slot("x_data", Read),
    slot("target_", Read),
    slot("weight", Read),
    slot("out", ReadWrite),
    slot("upstream", Read),
    slot("grad_data", ReadWrite),
    slot("status", ReadWrite),
];
const BCE_LOGITS: &[Slot] = &[
    slot("params", Uniform),
    slot("x_data", Read),
    slot("target_", Read),
    slot("weight", Read),
    slot("pos_weight", Read),
    slot("out", ReadWrite),
    slot("upstream", Read),
    slot("grad_data", ReadWrite),
    slot("status", ReadWrite),
];
const REDUCE_PAIRS: &[Slot] = &[
    slot("params", Uniform),
    slot("pairs", Read),
    slot("out", ReadWrite),
];
const MATMUL: &[Slot] = &[
    slot("params", Uniform),
    slot("a", Read),
    slot("b", Read),
    slot("bias", Read),
    slot("c", ReadWrite),
];
const MERGE_STATES: &[Slot] = &[
    slot("params", Uniform),
    slot("states", Read),
    slot("merged", ReadWrite),
];
const READ_BANDWIDTH: &[Slot] = &[
    slot("params", Uniform),
    slot("data", Read),
    slot("out", ReadWrite),
];

/// One pipeline of a kernel: for given element types, specialised by override constants.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct KernelKey {
    pub(crate) kernel: Kernel,
    /// `(override name, value)`; booleans are 0 or 1. Kept sorted by name. A row kernel with
    /// `SUBGROUP` above 0 is built with subgroup shuffles.
    pub(crate) constants: Vec<(&'static str, u32)>,
    /// Element type of the input (logits) and of the gradient.
    pub(crate) types: Types,
    /// The entry point: `main`, or a row kernel's `segment_states` (the first dispatch of a
    /// split row, see [`KernelKey::segment_states`]).
    pub(crate) entry: &'static str,
}

impl KernelKey {
    /// A pipeline of f32 input and gradient.
    pub(crate) fn new(kernel: Kernel, constants: Vec<(&'static str, u32)>) -> Self {
        KernelKey::typed(kernel, constants, Types::default())
    }

    /// A pipeline of the given element types.
    pub(crate) fn typed(
        kernel: Kernel,
        mut constants: Vec<(&'static str, u32)>,
        types: Types,
    ) -> Self {
        constants.sort_unstable();
        KernelKey {
            kernel,
            constants,
            types,
            entry: "main",
        }
    }

    /// The first dispatch of this row kernel's split rows: the same module and constants,
    /// entered at `segment_states` (shaders/common/row_state.wgsl).
    pub(crate) fn segment_states(&self) -> Self {
        KernelKey {
            entry: "segment_states",
            ..self.clone()
        }
    }

    /// Whether this variant writes its gradient over its input (`IN_PLACE`).
    fn in_place(&self) -> bool {
        self.constant("IN_PLACE") > 0
    }

    /// The value of an override constant (0 when absent).
    fn constant(&self, name: &str) -> u32 {
        self.constants
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(0, |(_, v)| *v)
    }

    /// The bindings of this variant, in order.
    pub(crate) fn slots(&self) -> &'static [Slot] {
        self.kernel.bindings(self.in_place())
    }

    /// The pipeline, compiled on `gpu` once and cached there.
    pub(crate) fn compile(&self, gpu: &Gpu) -> Result<Pipeline> {
        let key = crate::gpu::pipelines::PipelineKey {
            kernel: self.kernel.file(),
            bindings: self.slots(),
            constants: self.constants.clone(),
            types: self.types,
            entry: self.entry,
        };
        gpu.pipeline(&key, || self.source())
    }

    /// The WGSL source of this pipeline.
    pub(crate) fn source(&self) -> String {
        let subgroups = self.constant("SUBGROUP") > 0;
        self.kernel
            .source_typed(self.types, subgroups, self.in_place())
    }
}

/// The declaration of the input binding, its `load_x`, and its `store_x` (which does nothing
/// unless the binding is writable: only in-place variants write their input).
fn input_declaration(binding: u32, writable: bool, dtype: Dtype) -> String {
    let access = if writable { "read_write" } else { "read" };
    let (array, load, store) = match dtype {
        Dtype::F32 => ("f32", "return x_data[i];", "x_data[i] = v;"),
        Dtype::F16 => ("f16", "return f32(x_data[i]);", "x_data[i] = f16(v);"),
        Dtype::Bf16 => (
            "u32",
            "let w = x_data[i >> 1u];\n    if ((i & 1u) == 1u) {\n        return bitcast<f32>(w & 0xffff0000u);\n    }\n    return bitcast<f32>(w << 16u);",
            // Unreachable: prepare_* rejects an in-place gradient over bf16 logits, since two
            // threads would write the halves of one word.
            "",
        ),
    };
    let mut out = format!(
        "@group(0) @binding({binding}) var<storage, {access}> x_data: array<{array}>;\n\
         fn load_x(i: u32) -> f32 {{\n    {load}\n}}\n"
    );
    let store = if writable { store } else { "" };
    out.push_str(&format!("fn store_x(i: u32, v: f32) {{\n    {store}\n}}\n"));
    out
}

/// The declaration of a read-only operand `name` of the product kernel and its
/// `load_{name}(i) -> f32` (element `i`, widened from f16 or bf16).
fn operand_declaration(name: &str, binding: u32, dtype: Dtype) -> String {
    let (array, load) = match dtype {
        Dtype::F32 => ("f32", format!("return {name}[i];")),
        Dtype::F16 => ("f16", format!("return f32({name}[i]);")),
        Dtype::Bf16 => (
            "u32",
            format!(
                "let w = {name}[i >> 1u];\n    if ((i & 1u) == 1u) {{\n        return bitcast<f32>(w & \
                 0xffff0000u);\n    }}\n    return bitcast<f32>(w << 16u);"
            ),
        ),
    };
    format!(
        "@group(0) @binding({binding}) var<storage, read> {name}: array<{array}>;\n\
         fn load_{name}(i: u32) -> f32 {{\n    {load}\n}}\n"
    )
}

/// The declaration of the gradient binding and its `store_grad`. A bf16 gradient packs two
/// values per word with atomic ORs into a buffer cleared before the kernel runs, so the two
/// threads writing one word never race.
fn grad_declaration(binding: u32, dtype: Dtype) -> String {
    let (array, store) = match dtype {
        Dtype::F32 => ("f32", "grad_data[i] = v;"),
        Dtype::F16 => ("f16", "grad_data[i] = f16(v);"),
        Dtype::Bf16 => (
            "atomic<u32>",
            "atomicOr(&grad_data[i >> 1u], bf16_bits(v) << (16u * (i & 1u)));",
        ),
    };
    let mut out = format!(
        "@group(0) @binding({binding}) var<storage, read_write> grad_data: array<{array}>;\n\
         fn store_grad(i: u32, v: f32) {{\n    {store}\n}}\n"
    );
    if dtype == Dtype::Bf16 {
        out.push_str(BF16_BITS);
    }
    out
}

/// f32 to bf16 bits, rounding to nearest even; NaN stays NaN.
const BF16_BITS: &str = "fn bf16_bits(v: f32) -> u32 {
    let b = bitcast<u32>(v);
    if ((b & 0x7f800000u) == 0x7f800000u && (b & 0x007fffffu) != 0u) {
        return (b >> 16u) | 0x40u;
    }
    return (b + 0x7fffu + ((b >> 16u) & 1u)) >> 16u;
}
";

/// What a binding of a shader holds, as the host lays it out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BindingKind {
    /// A uniform buffer.
    Uniform,
    /// A storage buffer bound read-only.
    ReadOnlyStorage,
    /// A storage buffer bound read-write.
    ReadWriteStorage,
}

/// One composed shader variant, as xent compiles it: its name, its full WGSL source, and the
/// bindings the host lays out for it in binding order (the WGSL variable's name and kind).
#[derive(Clone, Debug)]
// The native-only `tools` module (feature `bench`) is what reads these fields.
#[cfg_attr(any(target_arch = "wasm32", not(feature = "bench")), allow(dead_code))]
pub struct ShaderVariant {
    /// `file`, or `file (input type, gradient type[, subgroups][, in place])`.
    pub name: String,
    /// The complete WGSL source.
    pub source: String,
    /// The host's binding table, binding 0 first.
    pub bindings: Vec<(&'static str, BindingKind)>,
}

fn variant(name: String, source: String, slots: &[Slot]) -> ShaderVariant {
    let bindings = slots
        .iter()
        .map(|s| {
            let kind = match s.kind {
                Uniform => BindingKind::Uniform,
                Read => BindingKind::ReadOnlyStorage,
                ReadWrite => BindingKind::ReadWriteStorage,
            };
            (s.name, kind)
        })
        .collect();
    ShaderVariant {
        name,
        source,
        bindings,
    }
}

/// Every kernel's full source for every element type it takes, with and without subgroups
/// (row kernels) and in place (categorical kernels), with its binding table: for validation
/// outside a device (tests, tools).
#[cfg_attr(any(target_arch = "wasm32", not(feature = "bench")), allow(dead_code))]
pub fn all_sources() -> Vec<ShaderVariant> {
    let probe = crate::gpu::lanes::PROBE_BINDINGS;
    let mut out = vec![variant(PROBE_FILE.into(), PROBE_SOURCE.into(), probe)];
    for kernel in Kernel::ALL {
        if kernel == Kernel::Matmul {
            for input in Dtype::ALL {
                for grad in Dtype::ALL {
                    let types = Types { input, grad };
                    let name = format!("{} (A {input:?}, B {grad:?})", kernel.file());
                    let source = kernel.source_typed(types, false, false);
                    out.push(variant(name, source, kernel.bindings(false)));
                }
            }
            continue;
        }
        if !kernel.is_typed() {
            let name = kernel.file().to_string();
            out.push(variant(name, kernel.source(), kernel.bindings(false)));
            continue;
        }
        let lanes: &[bool] = if kernel.merges_rows() {
            &[false, true]
        } else {
            &[false]
        };
        let places: &[bool] = if kernel.writes_input() {
            &[false, true]
        } else {
            &[false]
        };
        for input in Dtype::ALL {
            for grad in Dtype::ALL {
                for &subgroups in lanes {
                    for &in_place in places {
                        // bf16 is never written in place (two threads would share a word).
                        if in_place && input == Dtype::Bf16 {
                            continue;
                        }
                        let types = Types { input, grad };
                        let with = if subgroups { ", subgroups" } else { "" };
                        let place = if in_place { ", in place" } else { "" };
                        let name = format!(
                            "{} ({input:?} input, {grad:?} gradient{with}{place})",
                            kernel.file()
                        );
                        let source = kernel.source_typed(types, subgroups, in_place);
                        out.push(variant(name, source, kernel.bindings(in_place)));
                    }
                }
            }
        }
    }
    out
}
