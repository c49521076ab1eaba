//! The negative log-likelihood kernel (log-probabilities and class indices): from options and
//! GPU tensors to a recorded program. It shares the categorical kernels' parameters, class
//! weights, mean denominator and label status.

use crate::error::Result;
use crate::gpu::buffers;
use crate::gpu::program::whole;
use crate::gpu::tensor::GpuTensor;
use crate::gpu::Gpu;
use crate::kernels::cross_entropy::{
    check_prepared, denominator, params_buffer, push_label_status, sample_chunks, weight_buffer,
    ChunkPos,
};
use crate::kernels::launch;
use crate::kernels::outputs::LossBuffers;
use crate::kernels::shaders::{Kernel, KernelKey};
use crate::loss::call::ClassShape;
use crate::loss::GradMode;
use crate::loss::{CrossEntropy, Reduction};
use crate::plan;
use crate::prepared::{PreparedLoss, StatusKind, TargetStatus};

/// Prepares the NLL loss of (N, C) log-probabilities in `logp` (at any 4-byte offset, rows
/// optionally strided), or (N, C, d1, ..., dk) ones (samples optionally strided), against i32
/// class indices in `labels`, one per row (position). `options` carries
/// the weight, `ignore_index` and reduction (its label smoothing is 0). The gradient is
/// packed in the input's shape in a buffer of xent's (an in-place one is refused by `loss::call`
/// before this); targets outside [0, C) that are not
/// `ignore_index` give their rows NaN and are reported when results are read.
pub(crate) fn prepare_nll(
    gpu: &Gpu,
    logp: GpuTensor<'_>,
    labels: GpuTensor<'_>,
    shape: ClassShape,
    options: &CrossEntropy,
    grad: GradMode,
) -> Result<PreparedLoss> {
    let len = check_prepared(shape, options)?;
    let ClassShape { rows, classes, .. } = shape;
    let labels = labels.four_byte("targets")?;
    // Every caller tensor against its shape before anything is allocated.
    logp.check_extent("input", shape.samples(), shape.sample_len())?;
    labels.check_extent("targets", rows, 1)?;
    let with_grad = grad != GradMode::Off;
    // A thread's items are rows, or with the gradient the elements of its (rows, classes).
    let per_row = if with_grad { classes } else { 1 };
    let limits = gpu.limits();
    let grid = plan::elementwise_grid(rows * per_row, limits)?;
    let mut buffers = LossBuffers::new(gpu, options.reduction, rows, grid, grad, len, &logp)?;
    // Chunks of whole samples (rows), each its own grid with its own pairs: whole blocks of
    // items could be thousands of rows, more than a binding holds. So a cut run's sums are
    // deterministic but not the bits of an uncut one.
    let label_bytes = labels.row_bytes(1).saturating_mul(shape.positions as u64);
    let owned = buffers.item_bytes(classes);
    let chunks = sample_chunks(gpu, (shape, 1), &logp, label_bytes, &owned)?;
    let grids = chunks
        .iter()
        .map(|range| plan::elementwise_grid(range.len() * per_row, limits))
        .collect::<Result<Vec<_>>>()?;
    buffers.set_groups(gpu, grids.iter().map(|g| g.groups).sum())?;
    let weight = weight_buffer(gpu, options)?;
    let denominator_buffer = buffers::output(gpu, "xent nll denominator", 1)?;
    let mut program = buffers.program();
    let kind = StatusKind::Labels {
        classes,
        ignore_index: options.ignore_index,
    };
    let status = TargetStatus::new(gpu, kind)?;
    program.clear(&status.buffer);
    if with_grad && options.reduction == Reduction::Mean {
        let weights = (options, &weight);
        denominator(
            gpu,
            &mut program,
            shape,
            &labels,
            weights,
            &denominator_buffer,
        )?;
    }
    let mut constants = launch::elementwise_constants();
    constants.extend(launch::loss_constants(options.reduction, with_grad));
    constants.push(("HAS_WEIGHT", u32::from(options.weight.is_some())));
    constants.push(("STRIDED", u32::from(shape.strided())));
    let key = KernelKey::typed(Kernel::Nll, constants, buffers.types);
    let mut pair_base = 0;
    for (range, chunk_grid) in chunks.into_iter().zip(grids) {
        let samples = range.start / shape.positions..range.end / shape.positions;
        let x = logp.rows_window(limits, "input", samples, shape.sample_len())?;
        let t = labels.rows_window(limits, "targets", range.clone(), 1)?;
        let chunk = ChunkPos {
            pair_base,
            rows: range.clone(),
            total_rows: rows,
            segments: (1, classes as u32),
            lse_first: 0,
            vocab: (0, classes),
        };
        let params = params_buffer(gpu, shape, options, &x, &t, &chunk)?;
        let [out, upstream, grad_part] = buffers.chunk(range.clone(), classes);
        let bindings = [
            ("params", whole(&params)),
            ("x_data", x.binding),
            ("labels", t.binding.clone()),
            ("weight", whole(&weight)),
            ("denominator", whole(&denominator_buffer)),
            out,
            upstream,
            grad_part,
            ("status", whole(&status.buffer)),
        ];
        launch::dispatch(gpu, &mut program, &key, chunk_grid, &bindings)?;
        pair_base += chunk_grid.groups as usize;
        push_label_status(gpu, &mut program, &params, t.binding, &status.buffer)?;
    }
    Ok(buffers.finish(gpu, program)?.watch(status))
}
