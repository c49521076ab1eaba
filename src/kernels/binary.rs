//! Binary cross-entropy kernels, on probabilities and with logits: from options and GPU
//! tensors to a recorded program.

use crate::error::{Error, Result};
use crate::gpu::buffers;
use crate::gpu::program::whole;
use crate::gpu::tensor::GpuTensor;
use crate::gpu::Gpu;
use crate::kernels::launch;
use crate::kernels::outputs::LossBuffers;
use crate::kernels::shaders::{Kernel, KernelKey};
use crate::loss::{validate, BinaryLoss, Reduction};
use crate::plan::{self, ELEMENTWISE_ITEMS, WORKGROUP_SIZE};
use crate::prepared::{GradMode, PreparedLoss, StatusKind, TargetStatus};

/// Mirrors `Params` of shaders/common/elementwise_loss.wgsl (both BCE kernels).
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    len: u32,
    last_dim: u32,
    x_first: u32,
    t_first: u32,
    elem_base: u32,
    pair_base: u32,
    total_len: u32,
    reduction: u32,
}

/// What differs between the two BCE kernels.
struct BceKind<'a> {
    kernel: Kernel,
    weight: Option<&'a [f32]>,
    /// pos_weight (BCE with logits only) and the last dimension it spans.
    pos_weight: Option<(Option<&'a [f32]>, usize)>,
    reduction: Reduction,
}

/// Prepares binary cross-entropy on GPU tensors of `len` elements each (at any 4-byte offset;
/// targets f32). See [`PreparedLoss`] for running it.
pub(crate) fn prepare_binary(
    gpu: &Gpu,
    input: GpuTensor<'_>,
    target: GpuTensor<'_>,
    len: usize,
    loss: BinaryLoss<'_>,
    grad: GradMode,
) -> Result<PreparedLoss> {
    let (weight, reduction) = match loss {
        BinaryLoss::Probs(o) => (o.weight.as_deref(), o.reduction),
        BinaryLoss::Logits(o) => (o.weight.as_deref(), o.reduction),
    };
    validate::weights("weight", weight, len, "one weight per input element")?;
    let kind = match loss {
        BinaryLoss::Probs(_) => BceKind {
            kernel: Kernel::Bce,
            weight,
            pos_weight: None,
            reduction,
        },
        BinaryLoss::Logits(o) => {
            let pos_weight = o.pos_weight.as_deref();
            BceKind {
                kernel: Kernel::BceLogits,
                weight,
                pos_weight: Some((pos_weight, validate::last_dim(len, pos_weight)?)),
                reduction,
            }
        }
    };
    prepare_bce(gpu, input, target, len, &kind, grad)
}

fn prepare_bce(
    gpu: &Gpu,
    input: GpuTensor<'_>,
    target: GpuTensor<'_>,
    len: usize,
    kind: &BceKind<'_>,
    grad: GradMode,
) -> Result<PreparedLoss> {
    if grad == GradMode::InPlace {
        return Err(Error::InvalidOption {
            name: "grad",
            value: "GradMode::InPlace".into(),
            reason: "binary cross-entropy writes its gradient to a buffer of its own".into(),
        });
    }
    let target = target.four_byte("targets")?;
    // Every caller tensor against its shape before anything is allocated.
    input.check_extent("input", len, 1)?;
    target.check_extent("target", len, 1)?;
    let grid = plan::elementwise_grid(len, gpu.limits())?;
    let weight = buffers::upload(gpu, "weight", kind.weight.unwrap_or(&[]))?;
    let last_dim = kind.pos_weight.map_or(1, |(_, d)| d);
    let buffers = LossBuffers::new(gpu, kind.reduction, len, grid, grad, len, &input)?;
    // Per element: the input and target, and xent's weight and outputs.
    let callers = [input.dtype.size(), 4];
    let mut owned = buffers.item_bytes(1);
    owned.push(4);
    let block = (WORKGROUP_SIZE * ELEMENTWISE_ITEMS) as usize;
    let chunks = plan::chunks(len, &callers, &owned, block, gpu.limits())?;
    let mut constants = launch::elementwise_constants();
    constants.extend(launch::loss_constants(
        kind.reduction,
        grad != GradMode::Off,
    ));
    constants.push(("HAS_WEIGHT", u32::from(kind.weight.is_some())));
    let pos_weight = match kind.pos_weight {
        Some((pw, _)) => {
            constants.push(("HAS_POS_WEIGHT", u32::from(pw.is_some())));
            Some(buffers::upload(gpu, "pos_weight", pw.unwrap_or(&[]))?)
        }
        None => None,
    };
    let key = KernelKey::typed(kind.kernel, constants, buffers.types);
    let mut program = buffers.program();
    let status = TargetStatus::new(gpu, StatusKind::UnitInterval)?;
    program.clear(&status.buffer);
    for range in chunks {
        let x = input.rows_window(gpu.limits(), "input", range.clone(), 1)?;
        let t = target.rows_window(gpu.limits(), "target", range.clone(), 1)?;
        let params = buffers::uniform(
            gpu,
            &Params {
                len: range.len() as u32,
                last_dim: last_dim as u32,
                x_first: x.first,
                t_first: t.first,
                elem_base: range.start as u32,
                pair_base: (range.start / block) as u32,
                total_len: len as u32,
                reduction: kind.reduction.shader_code(),
            },
        )?;
        let weight_part = match kind.weight {
            Some(_) => {
                GpuTensor::new(&weight).rows_window(gpu.limits(), "weight", range.clone(), 1)?
            }
            None => GpuTensor::new(&weight).window(gpu.limits(), "weight", 1, 1)?,
        };
        let [out, upstream, grad_part] = buffers.chunk(range.clone(), 1);
        let mut bindings = vec![
            ("params", whole(&params)),
            ("x_data", x.binding),
            ("target_", t.binding),
            ("weight", weight_part.binding),
        ];
        if let Some(pw) = &pos_weight {
            bindings.push(("pos_weight", whole(pw)));
        }
        bindings.extend([out, upstream, grad_part, ("status", whole(&status.buffer))]);
        launch::dispatch(
            gpu,
            &mut program,
            &key,
            plan::elementwise_grid(range.len(), gpu.limits())?,
            &bindings,
        )?;
    }
    Ok(buffers.finish(gpu, program)?.watch(status))
}
