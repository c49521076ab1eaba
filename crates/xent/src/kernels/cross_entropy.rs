//! Categorical cross-entropy kernels, with class-index targets or probability targets: from
//! options and GPU tensors to a recorded program.

use crate::error::{Error, Result};
use crate::gpu::buffers;
use crate::gpu::program::{whole, Program};
use crate::gpu::tensor::{GpuTensor, Window};
use crate::gpu::Gpu;
use crate::kernels::launch::{self, merge_states};
use crate::kernels::outputs::LossBuffers;
use crate::kernels::shaders::{Kernel, KernelKey};
use crate::loss::call::ClassShape;
use crate::loss::GradMode;
use crate::loss::{validate, CrossEntropy, Reduction};
use crate::plan::{self, RowLayout, RowPlan, ELEMENTWISE_ITEMS, WORKGROUP_SIZE};
use crate::prepared::{PreparedLoss, StatusKind, TargetStatus};

crate::gpu::params::wgsl_params! {
    /// Mirrors `Params` of shaders/common/categorical_params.wgsl, shared by every categorical
    /// kernel.
    struct Params mirrors ["cross_entropy.wgsl", "cross_entropy_probs.wgsl", "cross_entropy_denominator.wgsl", "label_status.wgsl", "nll.wgsl"] {
        rows: u32,
        classes: u32,
        ignore_index: i32,
        smoothing: f32,
        x_first: u32,
        x_stride: u32,
        t_first: u32,
        t_stride: u32,
        row_base: u32,
        pair_base: u32,
        total_rows: u32,
        reduction: u32,
        segments: u32,
        segment_len: u32,
        ignores: u32,
        softcap: f32,
        z_loss: f32,
        positions: u32,
        lse_first: u32,
        class_first: u32,
        class_total: u32,
        _pad: [u32; 2],
    }
}

/// Where one dispatch (a chunk of rows) sits in the whole batch.
pub(super) struct ChunkPos {
    pub(super) rows: std::ops::Range<usize>,
    /// Index of the chunk's first (loss, weight) pair in the pair buffer.
    pub(super) pair_base: usize,
    /// Rows of the whole batch.
    pub(super) total_rows: usize,
    /// Segments per row and logits per segment (1 and C unless rows are split).
    pub(super) segments: (u32, u32),
    /// The f32 index in `scratch` where the kernel writes the chunk's log-sum-exp values
    /// (with [`CrossEntropy::return_lse`]) or reads and writes its shard states (0 otherwise).
    pub(super) lse_first: usize,
    /// The first class of the logits in the vocabulary, and the vocabulary's size: (0, C)
    /// unless the logits are a shard of it.
    pub(super) vocab: (usize, usize),
}

/// `ignore_index` as the GPU's i32 labels can hold it, or `None` when it is beyond i32: then no
/// GPU label equals it and the kernels ignore none.
fn gpu_ignore_index(ignore_index: i64) -> Option<i32> {
    i32::try_from(ignore_index).ok()
}

/// Host labels (checked: each in [0, C) or `ignore_index`) as the GPU's i32, and the
/// `ignore_index` the kernels are to compare them with: an `ignore_index` beyond i32 is given
/// to the GPU as i32::MIN, which no checked label is, and the labels equal to it become that.
pub(crate) fn gpu_labels(targets: &[i64], ignore_index: i64) -> (Vec<i32>, i64) {
    let ignore = gpu_ignore_index(ignore_index).unwrap_or(i32::MIN);
    let labels = targets
        .iter()
        .map(|&l| if l == ignore_index { ignore } else { l as i32 })
        .collect();
    (labels, i64::from(ignore))
}

/// Row-kernel constants shared by both target kinds.
pub(super) fn constants(
    (plan, shape): (&RowPlan, ClassShape),
    options: &CrossEntropy,
    (use_q, shard): (bool, u32),
    mode: GradMode,
) -> Vec<(&'static str, u32)> {
    let mut c = launch::row_constants(plan);
    // Class-index kernels over a shard only (shaders/cross_entropy.wgsl).
    if shard != 0 {
        c.push(("SHARD", shard));
    }
    c.push(("STRIDED", u32::from(shape.strided())));
    c.extend(launch::loss_constants(
        options.reduction,
        mode != GradMode::Off,
    ));
    c.push(("HAS_WEIGHT", u32::from(options.weight.is_some())));
    c.push(("USE_Q", u32::from(use_q)));
    c.push(("IN_PLACE", u32::from(mode == GradMode::InPlace)));
    c.push(("SOFTCAP", u32::from(options.softcap.is_some())));
    c.push(("Z_LOSS", u32::from(options.z_loss > 0.0)));
    c.push(("LSE", u32::from(options.return_lse)));
    c
}

/// Checks a prepared categorical loss's shape and options; returns the logit count.
pub(super) fn check_prepared(shape: ClassShape, options: &CrossEntropy) -> Result<usize> {
    let ClassShape { rows, classes, .. } = shape;
    if classes == 0 {
        return Err(Error::InvalidShape {
            reason: "the number of classes must be at least 1".into(),
        });
    }
    validate::cross_entropy_options(options, classes)?;
    rows.checked_mul(classes)
        .ok_or_else(|| Error::InvalidShape {
            reason: format!("{rows} x {classes} logits overflow"),
        })
}

/// The class weights on the GPU (a placeholder when there are none).
pub(super) fn weight_buffer(gpu: &Gpu, options: &CrossEntropy) -> Result<wgpu::Buffer> {
    buffers::upload(gpu, "weight", options.weight.as_deref().unwrap_or(&[]))
}

/// The kernel parameters of one chunk, with the element positions of the logits' and targets'
/// windows.
pub(super) fn params_buffer(
    gpu: &Gpu,
    shape: ClassShape,
    options: &CrossEntropy,
    logits: &Window<'_>,
    targets: &Window<'_>,
    chunk: &ChunkPos,
) -> Result<wgpu::Buffer> {
    buffers::uniform(
        gpu,
        &Params {
            rows: chunk.rows.len() as u32,
            classes: shape.classes as u32,
            ignore_index: gpu_ignore_index(options.ignore_index).unwrap_or(0),
            ignores: u32::from(gpu_ignore_index(options.ignore_index).is_some()),
            smoothing: options.label_smoothing,
            x_first: logits.first,
            x_stride: logits.stride,
            t_first: targets.first,
            t_stride: targets.stride,
            row_base: chunk.rows.start as u32,
            pair_base: chunk.pair_base as u32,
            total_rows: chunk.total_rows as u32,
            reduction: options.reduction.shader_code(),
            segments: chunk.segments.0,
            segment_len: chunk.segments.1,
            softcap: options.softcap.unwrap_or(0.0),
            z_loss: options.z_loss,
            positions: shape.positions as u32,
            lse_first: chunk.lse_first as u32,
            class_first: chunk.vocab.0 as u32,
            class_total: chunk.vocab.1 as u32,
            _pad: [0; 2],
        },
    )
}

/// The chunks of rows a categorical loss is dispatched in: whole samples (whole rows of an
/// (N, C) input), every binding of a chunk fitting the device: the logits, targets with
/// `target_sample_bytes` per sample, and xent's outputs with `owned_row_bytes` per row
/// ([`LossBuffers::item_bytes`], and any more). Chunks of an (N, C) input other than
/// the last are whole workgroups; those of K-dimensional inputs are not, so each chunk's grid
/// starts its own (loss, weight) pairs.
pub(super) fn sample_chunks(
    gpu: &Gpu,
    (shape, granule): (ClassShape, usize),
    logits: &GpuTensor<'_>,
    target_sample_bytes: u64,
    owned_row_bytes: &[u64],
) -> Result<Vec<std::ops::Range<usize>>> {
    let positions = shape.positions as u64;
    let callers = [logits.row_bytes(shape.sample_len()), target_sample_bytes];
    let owned: Vec<u64> = owned_row_bytes
        .iter()
        .map(|b| b.saturating_mul(positions))
        .collect();
    let granule = if shape.strided() { 1 } else { granule };
    let samples = plan::chunks(shape.samples(), &callers, &owned, granule, gpu.limits())?;
    Ok(samples
        .into_iter()
        .map(|r| r.start * shape.positions..r.end * shape.positions)
        .collect())
}

/// The targets of a categorical loss on the GPU.
#[derive(Clone, Copy)]
pub(crate) enum CategoricalTargets<'a> {
    /// One i32 (or u32 below 2^31) class index per row. Targets cannot be checked on the host;
    /// the kernel checks them: a row whose target is outside [0, C) and not `ignore_index`
    /// gets a NaN loss (and NaN gradient), never a plausible value, and is recorded so that
    /// reading results returns [`Error::LabelOutOfRange`].
    Indices(GpuTensor<'a>),
    /// (rows, classes) f32 probabilities.
    Probs(GpuTensor<'a>),
}

/// A step of cross-entropy over a vocabulary split across devices ([`crate::shard`]): (N, C)
/// logits of the classes [first, first + C) of a vocabulary of `total`, class-index targets.
#[derive(Clone, Copy)]
pub(crate) enum ShardStep<'a> {
    /// Each row's state over this shard's classes, 4 f32 per row, into a buffer of its own
    /// (the prepared loss's `lse` slot).
    State { first: usize, total: usize },
    /// The loss and this shard's gradient from the states of every shard: `states` holds
    /// `shards` shards' states back to back (4 f32 per row, packed, at a 16-byte offset of a
    /// buffer with `COPY_SRC`), merged on the GPU in shard order (one shard: merged already).
    Finish {
        first: usize,
        total: usize,
        states: GpuTensor<'a>,
        shards: usize,
    },
}

impl ShardStep<'_> {
    /// The shard's first class and the vocabulary's size.
    fn vocab(&self) -> (usize, usize) {
        match *self {
            ShardStep::State { first, total } | ShardStep::Finish { first, total, .. } => {
                (first, total)
            }
        }
    }

    /// The kernel's `SHARD` constant.
    fn code(&self) -> u32 {
        match self {
            ShardStep::State { .. } => 1,
            ShardStep::Finish { .. } => 2,
        }
    }
}

/// f32 values of a shard state per row.
pub(crate) const SHARD_STATE_LEN: usize = 4;

/// Prepares categorical cross-entropy on GPU buffers: `logits` holds (N, C) values (row-major,
/// at any 4-byte offset, rows optionally strided: a slice of a larger buffer), or (N, C, d1,
/// ..., dk) values (samples optionally strided) with class indices (N, d1, ..., dk) or
/// probabilities of the logits' shape. An in-place gradient follows the logits' layout; a
/// separate one is packed in the logits' shape.
pub(crate) fn prepare_cross_entropy(
    gpu: &Gpu,
    logits: GpuTensor<'_>,
    targets: CategoricalTargets<'_>,
    shape: ClassShape,
    options: &CrossEntropy,
    grad: GradMode,
) -> Result<PreparedLoss> {
    prepare_rows(gpu, (logits, targets), shape, options, grad, None)
}

/// Prepares one step of cross-entropy over a shard of a vocabulary (see [`ShardStep`]): (N,
/// C) logits, class indices of the whole vocabulary.
pub(crate) fn prepare_shard_step(
    gpu: &Gpu,
    (logits, labels): (GpuTensor<'_>, GpuTensor<'_>),
    shape: ClassShape,
    options: &CrossEntropy,
    grad: GradMode,
    step: ShardStep<'_>,
) -> Result<PreparedLoss> {
    let targets = CategoricalTargets::Indices(labels);
    prepare_rows(gpu, (logits, targets), shape, options, grad, Some(step))
}

/// [`prepare_cross_entropy`], or with `shard` a step of it over a shard of the vocabulary.
fn prepare_rows(
    gpu: &Gpu,
    (logits, targets): (GpuTensor<'_>, CategoricalTargets<'_>),
    shape: ClassShape,
    options: &CrossEntropy,
    grad: GradMode,
    shard: Option<ShardStep<'_>>,
) -> Result<PreparedLoss> {
    let ClassShape { rows, classes, .. } = shape;
    // Options and targets are the whole vocabulary's.
    let vocab = shard.map_or((0, classes), |s| s.vocab());
    let vocab_shape = ClassShape {
        classes: vocab.1,
        ..shape
    };
    // A shard's classes are checked by its caller (crate::shard): at least 1, and within the
    // vocabulary, so that these logits are fewer than the whole vocabulary's.
    let len = check_prepared(vocab_shape, options)? / vocab.1 * classes;
    let (indices, targets) = match targets {
        CategoricalTargets::Indices(t) => (true, t),
        CategoricalTargets::Probs(t) => (false, t),
    };
    let targets = targets.four_byte("targets")?;
    // Every caller tensor against its shape before anything is allocated.
    logits.check_extent("logits", shape.samples(), shape.sample_len())?;
    let target_sample_bytes = if indices {
        targets.check_extent("targets", rows, 1)?;
        targets.row_bytes(1).saturating_mul(shape.positions as u64)
    } else {
        targets.check_extent("targets", shape.samples(), shape.sample_len())?;
        targets.row_bytes(shape.sample_len())
    };
    if grad == GradMode::InPlace && logits.buffer == targets.buffer {
        return Err(Error::InvalidLayout {
            what: "targets",
            reason: "they are in the logits' buffer, which an in-place gradient writes, and a \
                     GPU pass cannot read a buffer through one binding while writing it through \
                     another: give the targets a buffer of their own, or use GradMode::Separate \
                     (inputs that are only read may share a buffer)"
                .into(),
        });
    }
    let layout = match (shard, shape.strided()) {
        (Some(_), _) => RowLayout::Whole,
        (None, true) => RowLayout::Strided,
        (None, false) => RowLayout::Contiguous,
    };
    let plan = launch::row_plan(gpu, rows, classes, layout)?;
    // What the kernel leaves per row in the tail of `scratch`: a shard state, or the lse.
    let tail = match (shard, options.return_lse) {
        (Some(_), _) => SHARD_STATE_LEN,
        (None, true) => 1,
        (None, false) => 0,
    };
    let weight = weight_buffer(gpu, options)?;
    let mut buffers =
        LossBuffers::new(gpu, options.reduction, rows, plan.grid, grad, len, &logits)?;
    let granule = (shape, plan.rows_per_group);
    let mut owned = buffers.item_bytes(classes);
    if tail > 0 {
        owned.push(4 * tail as u64);
    }
    let chunks = sample_chunks(gpu, granule, &logits, target_sample_bytes, &owned)?;
    let grids = chunks
        .iter()
        .map(|r| plan.grid_for(r.len(), gpu.limits()))
        .collect::<Result<Vec<_>>>()?;
    buffers.set_groups(gpu, grids.iter().map(|g| g.groups).sum())?;
    let (scratch, lse_first) = launch::scratch(gpu, &plan, &chunks, tail)?;
    // The per-row output copied out of the tail: the lse, or a shard's states.
    let copied_out = match shard {
        Some(ShardStep::State { .. }) | None if tail > 0 => {
            Some(buffers::output(gpu, "xent row output", rows * tail)?)
        }
        _ => None,
    };
    let mut program = buffers.program();
    let status = indices
        .then(|| {
            let kind = StatusKind::Labels {
                classes: vocab.1,
                ignore_index: options.ignore_index,
            };
            TargetStatus::new(gpu, kind)
        })
        .transpose()?;
    if let Some(status) = &status {
        program.clear(&status.buffer);
        if grad != GradMode::Off && options.reduction == Reduction::Mean {
            let weights = (options, &weight);
            denominator(gpu, &mut program, vocab_shape, &targets, weights, &scratch)?;
        }
    }
    // Probabilities always weigh classes by q = w t'; class indices only with smoothing.
    // A shard's state always carries its class-weight sums.
    let (kernel, use_q, target_slot) = match indices {
        true => (
            Kernel::CrossEntropy,
            options.label_smoothing > 0.0 || matches!(shard, Some(ShardStep::State { .. })),
            "labels",
        ),
        false => (Kernel::CrossEntropyProbs, true, "targets"),
    };
    let shard_code = shard.map_or(0, |s| s.code());
    let key = KernelKey::typed(
        kernel,
        constants((&plan, shape), options, (use_q, shard_code), grad),
        buffers.types,
    );
    let mut pair_base = 0;
    for (range, grid) in chunks.into_iter().zip(grids) {
        let chunk = ChunkPos {
            rows: range.clone(),
            pair_base,
            total_rows: rows,
            segments: (plan.segments, plan.segment_len),
            lse_first,
            vocab,
        };
        pair_base += grid.groups as usize;
        let (x, t, params) =
            chunk_inputs(gpu, shape, (&logits, &targets, indices), &chunk, options)?;
        let [out, upstream, grad_part] = buffers.chunk(range.clone(), classes);
        let mut bindings = vec![
            ("params", whole(&params)),
            ("x_data", x.binding),
            (target_slot, t.binding.clone()),
            ("weight", whole(&weight)),
            out,
            upstream,
            grad_part,
            ("scratch", whole(&scratch)),
        ];
        if let Some(status) = &status {
            bindings.push(("status", whole(&status.buffer)));
        }
        let tail_at = (&scratch, 4 * lse_first as u64);
        let (row_bytes, at) = (4 * tail as u64, range.start as u64);
        if let Some(ShardStep::Finish { states, shards, .. }) = shard {
            // The first shard's states of these rows next to them, then every other shard's
            // folded in, in shard order (so that every device merges to the same bits).
            program.copy(
                (states.buffer, states.offset + row_bytes * at),
                tail_at,
                row_bytes * range.len() as u64,
            );
            for k in 1..shards {
                let shard_rows = k * rows + range.start..k * rows + range.end;
                let what = "shard states";
                let window = states.rows_window(gpu.limits(), what, shard_rows, tail)?;
                let incoming = (window.binding, window.first as usize / tail);
                let running = (whole(&scratch), lse_first / tail);
                merge_states(gpu, &mut program, incoming, running, range.len())?;
            }
        }
        launch::push_rows(gpu, &mut program, &plan, &key, range.len(), &bindings)?;
        if let Some(out) = &copied_out {
            program.copy(
                tail_at,
                (out, row_bytes * at),
                row_bytes * range.len() as u64,
            );
        }
        if let Some(status) = &status {
            push_label_status(gpu, &mut program, &params, t.binding, &status.buffer)?;
        }
    }
    let mut prepared = buffers.finish(gpu, program)?;
    prepared.lse = copied_out.map(|buffer| (buffer, rows * tail));
    Ok(match status {
        Some(status) => prepared.watch(status),
        None => prepared,
    })
}

/// Adds the dispatch that copies the target of the first bad label a chunk's row pass recorded
/// in `status` into it (shaders/label_status.wgsl): `params` and `labels` are the chunk's.
pub(super) fn push_label_status(
    gpu: &Gpu,
    program: &mut Program,
    params: &wgpu::Buffer,
    labels: wgpu::BufferBinding<'_>,
    status: &wgpu::Buffer,
) -> Result<()> {
    let bindings = [
        ("params", whole(params)),
        ("labels", labels),
        ("status", whole(status)),
    ];
    let key = KernelKey::new(Kernel::LabelStatus, Vec::new());
    launch::dispatch(gpu, program, &key, plan::grid(1, gpu.limits())?, &bindings)
}

/// Adds the denominator of the mean of class-index cross-entropy over `shape` (the summed
/// weight of the non-ignored targets, one per row), in chunks of whole blocks of the targets;
/// it ends in the first f32 of `into`.
pub(super) fn denominator(
    gpu: &Gpu,
    program: &mut Program,
    shape: ClassShape,
    targets: &GpuTensor<'_>,
    (options, weight): (&CrossEntropy, &wgpu::Buffer),
    into: &wgpu::Buffer,
) -> Result<()> {
    let block = (WORKGROUP_SIZE * ELEMENTWISE_ITEMS) as usize;
    let rows = shape.rows;
    let chunks = plan::chunks(rows, &[targets.row_bytes(1)], &[], block, gpu.limits())?;
    let grids = chunks
        .iter()
        .map(|r| plan::elementwise_grid(r.len(), gpu.limits()))
        .collect::<Result<Vec<_>>>()?;
    let groups: usize = grids.iter().map(|g| g.groups as usize).sum();
    let partials = buffers::output(gpu, "xent denominator partials", 2 * groups)?;
    let mut constants = launch::elementwise_constants();
    constants.push(("HAS_WEIGHT", u32::from(options.weight.is_some())));
    let key = KernelKey::new(Kernel::CrossEntropyDenominator, constants);
    let mut pair_base = 0;
    for (range, grid) in chunks.iter().zip(grids) {
        let y = targets.rows_window(gpu.limits(), "targets", range.clone(), 1)?;
        let chunk = ChunkPos {
            rows: range.clone(),
            pair_base,
            total_rows: rows,
            segments: (1, shape.classes as u32),
            lse_first: 0,
            vocab: (0, shape.classes),
        };
        // The labels are read as a list: one per row.
        let list = ClassShape::rows(rows, shape.classes);
        let params = params_buffer(gpu, list, options, &y, &y, &chunk)?;
        let bindings = [
            ("params", whole(&params)),
            ("labels", y.binding),
            ("weight", whole(weight)),
            ("out", whole(&partials)),
        ];
        launch::dispatch(gpu, program, &key, grid, &bindings)?;
        pair_base += grid.groups as usize;
    }
    launch::reduce_pairs(gpu, program, partials, groups, false, Some(into))?;
    Ok(())
}

/// The windows of one chunk of rows (whole samples) of the logits and of the targets (class
/// indices, one per row, or probabilities of the logits' shape), and the chunk's kernel
/// parameters.
fn chunk_inputs<'a>(
    gpu: &Gpu,
    shape: ClassShape,
    (logits, targets, indices): (&GpuTensor<'a>, &GpuTensor<'a>, bool),
    chunk: &ChunkPos,
    options: &CrossEntropy,
) -> Result<(Window<'a>, Window<'a>, wgpu::Buffer)> {
    let limits = gpu.limits();
    let p = shape.positions;
    let samples = chunk.rows.start / p..chunk.rows.end / p;
    let x = logits.rows_window(limits, "logits", samples.clone(), shape.sample_len())?;
    let t = match indices {
        true => targets.rows_window(limits, "targets", chunk.rows.clone(), 1)?,
        false => targets.rows_window(limits, "targets", samples, shape.sample_len())?,
    };
    let params = params_buffer(gpu, shape, options, &x, &t, chunk)?;
    Ok((x, t, params))
}
