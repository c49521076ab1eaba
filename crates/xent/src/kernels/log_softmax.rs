//! The log-softmax kernel and its backward: from GPU tensors to a recorded program.

use crate::error::{Error, Result};
use crate::gpu::buffers;
use crate::gpu::program::whole;
use crate::gpu::tensor::GpuTensor;
use crate::gpu::Gpu;
use crate::kernels::launch;
use crate::kernels::outputs::LossBuffers;
use crate::kernels::shaders::{Kernel, KernelKey};
use crate::loss::GradMode;
use crate::loss::{validate, Reduction};
use crate::plan::{self, RowLayout};
use crate::prepared::PreparedLoss;

crate::gpu::params::wgsl_params! {
    /// Mirrors `Params` of shaders/log_softmax.wgsl.
    struct Params mirrors ["log_softmax.wgsl"] {
        rows: u32,
        classes: u32,
        x_first: u32,
        x_stride: u32,
        segments: u32,
        segment_len: u32,
        _pad: [u32; 2],
    }
}

/// Prepares log-softmax on (rows, classes) f32 logits in a GPU buffer (row-major, at any
/// 4-byte offset, rows optionally strided). Its "loss" buffer is the (rows, classes) log-softmax; with
/// [`GradMode::Separate`] it also computes the backward `g - exp(logp) * sum_c g` for the
/// (rows, classes) upstream gradient set with [`PreparedLoss::set_upstream`].
pub(crate) fn prepare_log_softmax<'a>(
    gpu: &Gpu,
    logits: impl Into<GpuTensor<'a>>,
    rows: usize,
    classes: usize,
    grad: GradMode,
) -> Result<PreparedLoss> {
    if classes == 0 {
        return Err(Error::InvalidShape {
            reason: "the number of classes must be at least 1".into(),
        });
    }
    if grad == GradMode::InPlace {
        return Err(validate::no_in_place_gradient("log-softmax"));
    }
    let len = rows
        .checked_mul(classes)
        .ok_or_else(|| Error::InvalidShape {
            reason: format!("{rows} x {classes} logits overflow"),
        })?;
    let logits = logits.into();
    logits.check_extent("logits", rows, classes)?;
    let plan = launch::row_plan(gpu, rows, classes, RowLayout::Contiguous)?;
    // The log-softmax is an unreduced "loss" of `len` items with one upstream per item.
    let buffers = LossBuffers::new(gpu, Reduction::None, len, plan.grid, grad, len, &logits)?;
    let owned: Vec<u64> = buffers
        .item_bytes(1)
        .iter()
        .map(|b| b * classes as u64)
        .collect();
    let callers = [logits.row_bytes(classes)];
    let chunks = plan::chunks(rows, &callers, &owned, plan.rows_per_group, gpu.limits())?;
    let (scratch, _) = launch::scratch(gpu, &plan, &chunks, 0)?;
    let with_grad = grad != GradMode::Off;
    let mut constants = launch::row_constants(&plan);
    constants.extend(launch::loss_constants(Reduction::None, with_grad));
    constants.push(("USE_Q", u32::from(with_grad)));
    let key = KernelKey::typed(Kernel::LogSoftmax, constants, buffers.types);
    let mut program = buffers.program();
    for range in chunks {
        let x = logits.rows_window(gpu.limits(), "logits", range.clone(), classes)?;
        let params = buffers::uniform(
            gpu,
            &Params {
                rows: range.len() as u32,
                classes: classes as u32,
                x_first: x.first,
                x_stride: x.stride,
                segments: plan.segments,
                segment_len: plan.segment_len,
                _pad: [0; 2],
            },
        )?;
        let elements = range.start * classes..range.end * classes;
        let [out, upstream, grad_part] = buffers.chunk(elements, 1);
        launch::push_rows(
            gpu,
            &mut program,
            &plan,
            &key,
            range.len(),
            &[
                ("params", whole(&params)),
                ("x_data", x.binding),
                out,
                upstream,
                grad_part,
                ("scratch", whole(&scratch)),
            ],
        )?;
    }
    buffers.finish(gpu, program)
}
