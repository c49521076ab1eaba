//! The one error type of the crate.

/// Everything that can go wrong in xent. Every public function returns `Result<_, Error>`;
/// nothing in the public API panics on bad input, out-of-memory or a lost device. Bad input is
/// refused before anything runs, with a variant that says what was wrong:
///
/// ```
/// use xent::{Context, CrossEntropy, Error, Input};
///
/// let ctx = Context::new()?;
/// let logits = [0.5f32, 1.0, -1.0, 2.0]; // (2, 2)
/// let bad = ctx.compute(&CrossEntropy::default(), Input::new(&logits, [2, 2]), &[0i64, 7]);
/// match bad {
///     Err(Error::LabelOutOfRange { row, label, classes, .. }) => {
///         assert_eq!((row, label, classes), (1, 7, 2));
///     }
///     other => panic!("expected LabelOutOfRange, got {other:?}"),
/// }
/// let short = ctx.compute(&CrossEntropy::default(), Input::new(&logits, [2, 3]), &[0i64, 1]);
/// assert!(matches!(short, Err(Error::ShapeMismatch { .. })));
/// # Ok::<(), xent::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No GPU adapter matched. On a machine without a GPU, install a software Vulkan driver
    /// (Mesa's lavapipe: `apt-get install libvulkan1 mesa-vulkan-drivers`); with a filter set
    /// (`WGPU_BACKEND`, `WGPU_ADAPTER_NAME`, `WGPU_POWER_PREF`), no adapter passed it.
    #[error("{}", no_adapter_message(filter))]
    NoAdapter {
        /// A description of the filter that was applied (backends, adapter name), or empty.
        filter: String,
    },

    /// The adapter refused to create a device.
    #[error("could not create a device on adapter '{adapter}': {reason}")]
    RequestDevice {
        /// The adapter's name.
        adapter: String,
        /// wgpu's explanation.
        reason: String,
    },

    /// The adapter lacks something xent needs.
    #[error("adapter '{adapter}' cannot run xent: {reason}")]
    UnsupportedAdapter {
        /// The adapter's name.
        adapter: String,
        /// What is missing.
        reason: String,
    },

    /// A buffer's length does not match the shape it must have.
    #[error("{what} has {got} elements but {expected} were expected ({hint})")]
    ShapeMismatch {
        /// Which argument.
        what: &'static str,
        /// The length its shape requires.
        expected: usize,
        /// The length it has.
        got: usize,
        /// How the expected length was derived.
        hint: String,
    },

    /// A shape that no loss can take (for example zero classes).
    #[error("invalid shape: {reason}")]
    InvalidShape {
        /// What is wrong.
        reason: String,
    },

    /// Class-index targets outside `[0, classes)` that are not `ignore_index`: found on the
    /// host before anything runs, or for targets that live on the GPU, recorded by the kernel
    /// and reported when the result is read back (or by [`crate::PreparedLoss::check_targets`]).
    #[error(
        "target {label} at row {row} is outside [0, {classes}) and is not ignore_index \
         ({ignore_index}); {count} such target(s) in the batch"
    )]
    LabelOutOfRange {
        /// The row of the first offending target.
        row: usize,
        /// Its value (for targets on the GPU, the i32 the kernel read).
        label: i64,
        /// How many rows have an offending target.
        count: usize,
        /// The number of classes.
        classes: usize,
        /// The ignore_index in force.
        ignore_index: i64,
    },

    /// A `usize` class index from the host too large for i64, the type PyTorch compares
    /// labels in (and so outside [0, C) for any C).
    #[error("target {label} at row {row} is beyond i64, the type class indices are compared in, and so outside [0, C)")]
    LabelTooLarge {
        /// The row of the first such target.
        row: usize,
        /// Its value.
        label: usize,
    },

    /// A value of binary cross-entropy outside `[0, 1]` (or NaN): an input probability or a
    /// target of [`BinaryCrossEntropy`](crate::BinaryCrossEntropy), or a target of
    /// [`SigmoidFocalLoss`](crate::SigmoidFocalLoss).
    /// Found on the host before anything runs; for tensors on the GPU, recorded by the kernel
    /// (whose loss and gradient are then NaN there) and reported when results are read (or by
    /// [`crate::PreparedLoss::check_targets`]).
    #[error(
        "{what} at index {index}{} is outside [0, 1]; {count} such value(s)",
        value.map_or(" (read on the GPU)".to_string(), |v| format!(", {v},"))
    )]
    ProbabilityOutOfRange {
        /// `"input probability"` or `"target"`.
        what: &'static str,
        /// The index of the first offending element.
        index: usize,
        /// Its value: known on the host, `None` for tensors on the GPU.
        value: Option<f32>,
        /// How many elements of that tensor are outside `[0, 1]`.
        count: usize,
    },

    /// A target of [`BinaryCrossEntropyWithLogits`](crate::BinaryCrossEntropyWithLogits)
    /// that is NaN or infinite (any finite target is taken, as PyTorch takes it). Found on the
    /// host before anything runs; for tensors on the GPU, recorded by the kernel (whose loss and
    /// gradient are then NaN there) and reported when results are read (or by
    /// [`crate::PreparedLoss::check_targets`]).
    #[error(
        "target at index {index}{} is not finite; {count} such value(s)",
        value.map_or(" (read on the GPU)".to_string(), |v| format!(", {v},"))
    )]
    NonFiniteTarget {
        /// The index of the first offending element.
        index: usize,
        /// Its value: known on the host, `None` for tensors on the GPU.
        value: Option<f32>,
        /// How many targets are not finite.
        count: usize,
    },

    /// A weight (class weight, element weight or pos_weight) that is NaN or infinite.
    #[error("{what}[{index}] = {value} is not finite")]
    NonFiniteWeight {
        /// Which weight argument.
        what: &'static str,
        /// The index of the first offending element.
        index: usize,
        /// Its value.
        value: f32,
    },

    /// An option outside its valid range.
    #[error("option {name} = {value} is invalid: {reason}")]
    InvalidOption {
        /// The option's name (PyTorch's).
        name: &'static str,
        /// The value given.
        value: String,
        /// The valid range.
        reason: String,
    },

    /// A tensor's place in its buffer that xent cannot bind (an offset that is not a multiple
    /// of the element size).
    #[error("{what}: {reason}")]
    InvalidLayout {
        /// Which tensor.
        what: &'static str,
        /// What is wrong.
        reason: String,
    },

    /// An element type a tensor or gradient cannot have here.
    #[error("{what} cannot be {dtype:?}: {reason}")]
    UnsupportedDtype {
        /// Which tensor or gradient.
        what: &'static str,
        /// The element type given.
        dtype: crate::dtype::Dtype,
        /// What it can be.
        reason: String,
    },

    /// Targets of a kind the loss does not take (class indices for a binary loss, say).
    #[error("{loss} takes {expected}, not {got}")]
    WrongTargets {
        /// The loss.
        loss: &'static str,
        /// What it takes.
        expected: &'static str,
        /// What it was given.
        got: &'static str,
    },

    /// A call that does not fit how the loss was prepared (an upstream gradient for a loss
    /// without one, reading an in-place gradient that lies in a caller's layout).
    #[error("{what}: {reason}")]
    Misuse {
        /// The call.
        what: &'static str,
        /// Why it cannot be done.
        reason: String,
    },

    /// A buffer or dispatch that exceeds one of the adapter's limits.
    #[error("{what} needs {needed} but the adapter's {limit_name} is {limit}")]
    TooLarge {
        /// What was being sized.
        what: String,
        /// What it needs.
        needed: u64,
        /// The wgpu limit that it exceeds.
        limit_name: &'static str,
        /// The limit's value on this device.
        limit: u64,
    },

    /// A caller's GPU buffer is smaller than the shape it is given with.
    #[error("{what} buffer has {size} bytes but the shape needs {needed}")]
    BufferTooSmall {
        /// Which buffer.
        what: &'static str,
        /// The bytes the shape needs.
        needed: u64,
        /// The buffer's size.
        size: u64,
    },

    /// A caller's GPU buffer lacks a usage xent needs.
    #[error(
        "the {what} buffer was created without wgpu::BufferUsages::{needed}, which {why}; add it"
    )]
    BufferUsage {
        /// Which buffer.
        what: &'static str,
        /// The missing usage.
        needed: &'static str,
        /// What needs it.
        why: &'static str,
    },

    /// The device ran out of memory.
    #[error("the GPU ran out of memory while {operation}: {message}")]
    OutOfMemory {
        /// What xent was doing.
        operation: Operation,
        /// wgpu's report.
        message: String,
    },

    /// The GPU device was lost (destroyed, reset, or its driver failed); the context can do
    /// nothing more.
    #[error("the GPU device was lost ({0}); create a new Context")]
    DeviceLost(String),

    /// wgpu reported an error (validation or internal) for work xent recorded or submitted.
    #[error("GPU error while {operation}{}: {message}", kernel.map(|k| format!(" ({k})")).unwrap_or_default())]
    Gpu {
        /// What xent was doing.
        operation: Operation,
        /// The kernel file concerned, where one is known.
        kernel: Option<&'static str>,
        /// wgpu's report.
        message: String,
    },

    /// A kernel failed to compile on this device: a driver or shader translator that rejects
    /// valid WGSL, or a variant the device cannot run.
    #[error("compiling {kernel} ({variant}) failed: {message}")]
    ShaderCompile {
        /// The kernel file under `shaders/`.
        kernel: &'static str,
        /// The variant: element types, entry point and override constants.
        variant: String,
        /// wgpu's report.
        message: String,
    },

    /// Reading a result back from the GPU failed.
    #[error("reading results back from the GPU failed: {0}")]
    Readback(String),

    /// A prepared loss's buffers do not hold the results of its last recorded run: nothing was
    /// recorded yet, or the last recorded work has not run on the GPU (its submission was
    /// rejected, or not made before the read). Reading never returns an older run's values.
    #[error("{what}: the buffers do not hold the last recorded run's results: {reason}")]
    NotRun {
        /// The call.
        what: &'static str,
        /// What was recorded and what ran.
        reason: String,
    },
}

impl Error {
    /// [`Error::NoAdapter`] naming the environment's adapter filter (`WGPU_BACKEND`,
    /// `WGPU_ADAPTER_NAME`, `WGPU_POWER_PREF`), for programs that enumerate adapters
    /// themselves.
    ///
    /// ```
    /// let e = xent::Error::no_adapter();
    /// assert!(matches!(e, xent::Error::NoAdapter { .. }));
    /// ```
    pub fn no_adapter() -> Error {
        let mut parts = Vec::new();
        for var in ["WGPU_BACKEND", "WGPU_ADAPTER_NAME", "WGPU_POWER_PREF"] {
            if let Ok(v) = std::env::var(var) {
                parts.push(format!("{var}={v}"));
            }
        }
        let filter = match parts.is_empty() {
            true => String::new(),
            false => format!(" (with {})", parts.join(", ")),
        };
        Error::NoAdapter { filter }
    }
}

/// The message of [`Error::NoAdapter`]: the filter that left no adapter, or how to get one.
fn no_adapter_message(filter: &str) -> String {
    if filter.is_empty() {
        "no GPU adapter found; on a machine without a GPU install Mesa's software Vulkan driver \
         (apt-get install libvulkan1 mesa-vulkan-drivers)"
            .into()
    } else {
        format!("no GPU adapter passes the filter{filter}; `xent info` without it lists them all")
    }
}

/// What xent was doing when the GPU reported an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Operation {
    /// Setting a loss up: pipelines, buffers, bind groups.
    Prepare,
    /// Uploading inputs or writing the upstream gradient.
    Upload,
    /// Recording and submitting work.
    Run,
    /// Reading results back.
    Read,
}

impl std::fmt::Display for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Operation::Prepare => "preparing",
            Operation::Upload => "uploading",
            Operation::Run => "running",
            Operation::Read => "reading back",
        })
    }
}

/// Shorthand for `Result<T, xent::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;
