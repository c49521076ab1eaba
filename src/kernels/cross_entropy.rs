//! Categorical cross-entropy kernels, with class-index targets or probability targets: from
//! options and GPU tensors to a recorded program.

use crate::error::{Error, Result};
use crate::gpu::buffers;
use crate::gpu::program::{whole, Program};
use crate::gpu::tensor::{GpuTensor, Window};
use crate::gpu::Gpu;
use crate::kernels::launch;
use crate::kernels::outputs::LossBuffers;
use crate::kernels::shaders::{Kernel, KernelKey};
use crate::loss::{validate, ClassIndex, CrossEntropy, Reduction};
use crate::plan::{self, RowPlan, ELEMENTWISE_ITEMS, WORKGROUP_SIZE};
use crate::prepared::{GradMode, LabelStatus, PreparedLoss};

/// Mirrors `Params` of shaders/common/categorical_params.wgsl, shared by every categorical
/// kernel.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
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
    _pad: [u32; 2],
}

/// Where one dispatch (a chunk of rows) sits in the whole batch.
struct ChunkPos {
    rows: std::ops::Range<usize>,
    /// Index of the chunk's first (loss, weight) pair in the pair buffer.
    pair_base: usize,
    /// Rows of the whole batch.
    total_rows: usize,
    /// Segments per row and logits per segment (1 and C unless rows are split).
    segments: (u32, u32),
}

/// The i32 that stands for `ignore_index` on the GPU, where labels are i32. An `ignore_index`
/// beyond i32 is mapped to i32::MIN (host labels equal to it are mapped there too).
fn gpu_ignore_index(ignore_index: i64) -> i32 {
    i32::try_from(ignore_index).unwrap_or(i32::MIN)
}

/// Checked host labels as the GPU's i32, with `ignore_index` rows mapped to [`gpu_ignore_index`].
pub(crate) fn gpu_labels<L: ClassIndex>(targets: &[L], ignore_index: i64) -> Vec<i32> {
    let ignore = gpu_ignore_index(ignore_index);
    targets
        .iter()
        .map(|l| match l.to_i64() {
            v if v == ignore_index => ignore,
            v => v as i32,
        })
        .collect()
}

/// Row-kernel constants shared by both target kinds.
fn constants(
    plan: &RowPlan,
    options: &CrossEntropy,
    use_q: bool,
    mode: GradMode,
) -> Vec<(&'static str, u32)> {
    let mut c = launch::row_constants(plan);
    c.extend(launch::loss_constants(
        options.reduction,
        mode != GradMode::Off,
    ));
    c.push(("HAS_WEIGHT", u32::from(options.weight.is_some())));
    c.push(("USE_Q", u32::from(use_q)));
    c.push(("IN_PLACE", u32::from(mode == GradMode::InPlace)));
    c
}

/// Checks a prepared categorical loss's shape and options; returns the logit count.
fn check_prepared(rows: usize, classes: usize, options: &CrossEntropy) -> Result<usize> {
    if classes == 0 {
        return Err(Error::InvalidShape {
            reason: "the number of classes must be at least 1".into(),
        });
    }
    validate::label_smoothing(options.label_smoothing)?;
    validate::weights(
        "weight",
        options.weight.as_deref(),
        classes,
        "one weight per class",
    )?;
    rows.checked_mul(classes)
        .ok_or_else(|| Error::InvalidShape {
            reason: format!("{rows} x {classes} logits overflow"),
        })
}

/// The class weights on the GPU (a placeholder when there are none).
fn weight_buffer(gpu: &Gpu, options: &CrossEntropy) -> Result<wgpu::Buffer> {
    buffers::upload(gpu, "weight", options.weight.as_deref().unwrap_or(&[]))
}

/// The kernel parameters of one chunk, with the element positions of the logits' and targets'
/// windows.
fn params_buffer(
    gpu: &Gpu,
    classes: usize,
    options: &CrossEntropy,
    logits: &Window<'_>,
    targets: &Window<'_>,
    chunk: &ChunkPos,
) -> Result<wgpu::Buffer> {
    buffers::uniform(
        gpu,
        &Params {
            rows: chunk.rows.len() as u32,
            classes: classes as u32,
            ignore_index: gpu_ignore_index(options.ignore_index),
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
            _pad: [0; 2],
        },
    )
}

/// The chunks of rows a categorical loss is dispatched in: every binding of a chunk (logits,
/// targets with `target_row_bytes` per row, and xent's outputs) fits the device.
fn row_chunks(
    gpu: &Gpu,
    plan: &RowPlan,
    rows: usize,
    classes: usize,
    logits: &GpuTensor<'_>,
    target_row_bytes: u64,
    buffers: &LossBuffers,
) -> Result<Vec<std::ops::Range<usize>>> {
    let callers = [logits.row_bytes(classes), target_row_bytes];
    let owned = buffers.item_bytes(classes);
    plan::chunks(rows, &callers, &owned, plan.rows_per_group, gpu.limits())
}

/// Prepares class-index cross-entropy on GPU buffers: `logits` holds (rows, classes) f32
/// (row-major, at any 4-byte offset, rows optionally strided: a slice of a larger buffer),
/// `targets` one i32 (or u32 below 2^31) class index per row. Targets cannot be checked on
/// the host; the kernel checks them: a row whose target is outside [0, C) and not
/// `ignore_index` gets a NaN loss (and NaN gradient), never a plausible value, and is
/// recorded so that [`PreparedLoss::read_loss`], [`PreparedLoss::read_grad`] and
/// [`PreparedLoss::check_labels`] return [`Error::LabelOutOfRange`]. An in-place gradient follows the logits'
/// layout; a separate one is packed (rows, classes). See [`Context::cross_entropy`] for
/// the semantics and [`PreparedLoss`] for running it.
pub(crate) fn prepare_cross_entropy<'a>(
    gpu: &Gpu,
    logits: impl Into<GpuTensor<'a>>,
    targets: impl Into<GpuTensor<'a>>,
    rows: usize,
    classes: usize,
    options: &CrossEntropy,
    grad: GradMode,
) -> Result<PreparedLoss> {
    let len = check_prepared(rows, classes, options)?;
    let logits = logits.into();
    let targets = targets.into().four_byte("targets")?;
    let plan = plan::row_plan(
        rows,
        classes,
        gpu.limits(),
        gpu.tuning(),
        gpu.subgroup_size(),
    )?;
    let weight = weight_buffer(gpu, options)?;
    let buffers = LossBuffers::new(gpu, options.reduction, rows, plan.grid, grad, len, &logits)?;
    let target_bytes = targets.row_bytes(1);
    let chunks = row_chunks(gpu, &plan, rows, classes, &logits, target_bytes, &buffers)?;
    let scratch = launch::scratch(gpu, &plan, &chunks)?;
    let mut program = buffers.program();
    let status = buffers::upload(gpu, "xent label status", &[0u32; LabelStatus::WORDS])?;
    program.clear(&status);
    if grad != GradMode::Off && options.reduction == Reduction::Mean {
        let shape = (rows, classes);
        denominator(
            gpu,
            &mut program,
            shape,
            &targets,
            options,
            &weight,
            &scratch,
        )?;
    }
    let use_q = options.label_smoothing > 0.0;
    let key = KernelKey::typed(
        Kernel::CrossEntropy,
        constants(&plan, options, use_q, grad),
        buffers.types,
    );
    let status_key = KernelKey::new(Kernel::LabelStatus, Vec::new());
    for range in chunks {
        let (x, y, params) = chunk_inputs(
            gpu,
            &plan,
            rows,
            range.clone(),
            (&logits, &targets, 1),
            options,
        )?;
        let [out, upstream, grad_part] = buffers.chunk(range.clone(), classes);
        launch::push_rows(
            gpu,
            &mut program,
            &plan,
            &key,
            range.len(),
            &[
                whole(&params),
                x.binding,
                y.binding.clone(),
                whole(&weight),
                out,
                upstream,
                grad_part,
                whole(&status),
                whole(&scratch),
            ],
        )?;
        launch::dispatch(
            gpu,
            &mut program,
            &status_key,
            plan::grid(1, gpu.limits())?,
            &[whole(&params), y.binding, whole(&status)],
        )?;
    }
    let status = LabelStatus {
        buffer: status,
        classes,
        ignore_index: options.ignore_index,
    };
    Ok(buffers.finish(gpu, program)?.watch_labels(status))
}

/// Prepares probability-target cross-entropy on GPU buffers: `logits` and `targets` each
/// hold (rows, classes) f32 row-major, at any 4-byte offset, rows optionally strided. See
/// [`Context::cross_entropy_probs`] for the semantics and [`PreparedLoss`] for running it.
pub(crate) fn prepare_cross_entropy_probs<'a>(
    gpu: &Gpu,
    logits: impl Into<GpuTensor<'a>>,
    targets: impl Into<GpuTensor<'a>>,
    rows: usize,
    classes: usize,
    options: &CrossEntropy,
    grad: GradMode,
) -> Result<PreparedLoss> {
    let len = check_prepared(rows, classes, options)?;
    let logits = logits.into();
    let targets = targets.into().four_byte("targets")?;
    let plan = plan::row_plan(
        rows,
        classes,
        gpu.limits(),
        gpu.tuning(),
        gpu.subgroup_size(),
    )?;
    let weight = weight_buffer(gpu, options)?;
    let buffers = LossBuffers::new(gpu, options.reduction, rows, plan.grid, grad, len, &logits)?;
    let target_bytes = targets.row_bytes(classes);
    let chunks = row_chunks(gpu, &plan, rows, classes, &logits, target_bytes, &buffers)?;
    let scratch = launch::scratch(gpu, &plan, &chunks)?;
    let mut program = buffers.program();
    let key = KernelKey::typed(
        Kernel::CrossEntropyProbs,
        constants(&plan, options, true, grad),
        buffers.types,
    );
    for range in chunks {
        let (x, t, params) = chunk_inputs(
            gpu,
            &plan,
            rows,
            range.clone(),
            (&logits, &targets, classes),
            options,
        )?;
        let [out, upstream, grad_part] = buffers.chunk(range.clone(), classes);
        launch::push_rows(
            gpu,
            &mut program,
            &plan,
            &key,
            range.len(),
            &[
                whole(&params),
                x.binding,
                t.binding,
                whole(&weight),
                out,
                upstream,
                grad_part,
                whole(&scratch),
            ],
        )?;
    }
    buffers.finish(gpu, program)
}

/// Adds the denominator of the mean of class-index cross-entropy over (rows, classes) (the
/// summed weight of the non-ignored targets), in chunks of whole blocks of the targets; it
/// ends in the first f32 of `into`.
fn denominator(
    gpu: &Gpu,
    program: &mut Program,
    (rows, classes): (usize, usize),
    targets: &GpuTensor<'_>,
    options: &CrossEntropy,
    weight: &wgpu::Buffer,
    into: &wgpu::Buffer,
) -> Result<()> {
    let block = (WORKGROUP_SIZE * ELEMENTWISE_ITEMS) as usize;
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
            segments: (1, classes as u32),
        };
        let params = params_buffer(gpu, classes, options, &y, &y, &chunk)?;
        let bindings = [whole(&params), y.binding, whole(weight), whole(&partials)];
        launch::dispatch(gpu, program, &key, grid, &bindings)?;
        pair_base += grid.groups as usize;
    }
    launch::reduce_pairs(gpu, program, partials, groups, false, Some(into))?;
    Ok(())
}

/// The windows of one chunk of rows of the logits and of the targets (`target_cols` per
/// row), and the chunk's kernel parameters.
fn chunk_inputs<'a>(
    gpu: &Gpu,
    plan: &RowPlan,
    total_rows: usize,
    rows: std::ops::Range<usize>,
    (logits, targets, target_cols): (&GpuTensor<'a>, &GpuTensor<'a>, usize),
    options: &CrossEntropy,
) -> Result<(Window<'a>, Window<'a>, wgpu::Buffer)> {
    let classes = plan.classes;
    let x = logits.rows_window(gpu.limits(), "logits", rows.clone(), classes)?;
    let t = targets.rows_window(gpu.limits(), "targets", rows.clone(), target_cols)?;
    let chunk = ChunkPos {
        pair_base: plan.groups_for(rows.start),
        rows,
        total_rows,
        segments: (plan.segments, plan.segment_len),
    };
    let params = params_buffer(gpu, classes, options, &x, &t, &chunk)?;
    Ok((x, t, params))
}
