//! Binary cross-entropy kernels, on probabilities and with logits: from options and GPU
//! tensors to a recorded program.

use crate::error::Result;
use crate::gpu::buffers;
use crate::gpu::program::whole;
use crate::gpu::tensor::GpuTensor;
use crate::gpu::Gpu;
use crate::kernels::launch;
use crate::kernels::outputs::LossBuffers;
use crate::kernels::shaders::{Kernel, KernelKey};
use crate::loss::GradMode;
use crate::loss::{validate, BinaryLoss, Reduction};
use crate::plan::{self, ELEMENTWISE_ITEMS, WORKGROUP_SIZE};
use crate::prepared::{PreparedLoss, StatusKind, TargetStatus};

crate::gpu::params::wgsl_params! {
    /// Mirrors `Params` of shaders/common/elementwise_loss.wgsl (both BCE kernels).
    struct Params mirrors ["bce.wgsl", "bce_logits.wgsl", "focal.wgsl"] {
        len: u32,
        pos_period: u32,
        x_first: u32,
        t_first: u32,
        elem_base: u32,
        pair_base: u32,
        total_len: u32,
        reduction: u32,
        weight_base: u32,
        weight_period: u32,
        pos_base: u32,
        alpha: f32,
        gamma: f32,
        _pad: [u32; 3],
    }
}

/// What differs between the two BCE kernels.
struct BceKind<'a> {
    kernel: Kernel,
    weight: Option<&'a [f32]>,
    /// pos_weight (BCE with logits only) and its period over the input.
    pos_weight: Option<(Option<&'a [f32]>, usize)>,
    /// The focal loss's alpha and gamma (0 for the others).
    focal: [f32; 2],
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
        BinaryLoss::Focal(o) => (None, o.reduction),
    };
    validate::period("weight", weight, len)?;
    let kind = match loss {
        BinaryLoss::Probs(_) => BceKind {
            kernel: Kernel::Bce,
            weight,
            pos_weight: None,
            focal: [0.0; 2],
            reduction,
        },
        BinaryLoss::Focal(o) => {
            validate::focal(o)?;
            BceKind {
                kernel: Kernel::Focal,
                weight,
                pos_weight: None,
                focal: [o.alpha, o.gamma],
                reduction,
            }
        }
        BinaryLoss::Logits(o) => {
            let pos_weight = o.pos_weight.as_deref();
            BceKind {
                kernel: Kernel::BceLogits,
                weight,
                pos_weight: Some((pos_weight, validate::period("pos_weight", pos_weight, len)?)),
                focal: [0.0; 2],
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
        return Err(validate::no_in_place_gradient("binary cross-entropy"));
    }
    let target = target.four_byte("targets")?;
    // Every caller tensor against its shape before anything is allocated.
    input.check_extent("input", len, 1)?;
    target.check_extent("target", len, 1)?;
    let grid = plan::elementwise_grid(len, gpu.limits())?;
    let weight = ElementWeight::new(gpu, "weight", kind.weight, len)?;
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
            Some(ElementWeight::new(gpu, "pos_weight", pw, len)?)
        }
        None => None,
    };
    let key = KernelKey::typed(kind.kernel, constants, buffers.types);
    let mut program = buffers.program();
    // BCE with logits takes any finite target (as PyTorch); the others, values in [0, 1].
    let status_kind = match kind.kernel {
        Kernel::BceLogits => StatusKind::Finite,
        _ => StatusKind::UnitInterval,
    };
    let status = TargetStatus::new(gpu, status_kind)?;
    program.clear(&status.buffer);
    for range in chunks {
        let x = input.rows_window(gpu.limits(), "input", range.clone(), 1)?;
        let t = target.rows_window(gpu.limits(), "target", range.clone(), 1)?;
        let weight_part = weight.part(gpu.limits(), range.clone())?;
        let pos_part = match &pos_weight {
            Some(pw) => Some(pw.part(gpu.limits(), range.clone())?),
            None => None,
        };
        let params = buffers::uniform(
            gpu,
            &Params {
                len: range.len() as u32,
                pos_period: pos_part.as_ref().map_or(1, |p| p.period),
                x_first: x.first,
                t_first: t.first,
                elem_base: range.start as u32,
                pair_base: (range.start / block) as u32,
                total_len: len as u32,
                reduction: kind.reduction.shader_code(),
                weight_base: weight_part.base,
                weight_period: weight_part.period,
                pos_base: pos_part.as_ref().map_or(0, |p| p.base),
                alpha: kind.focal[0],
                gamma: kind.focal[1],
                _pad: [0; 3],
            },
        )?;
        let [out, upstream, grad_part] = buffers.chunk(range.clone(), 1);
        let mut bindings = vec![
            ("params", whole(&params)),
            ("x_data", x.binding),
            ("target_", t.binding),
            ("weight", weight_part.binding),
        ];
        if let Some(pw) = pos_part {
            bindings.push(("pos_weight", pw.binding));
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

/// BCE's weight (or pos_weight) on the GPU: a weight of the input's trailing dimensions (its length a period
/// of the input), bound whole and repeated over the leading ones; or, when that is larger than
/// a binding, a full-size weight windowed chunk by chunk (a shorter one is first repeated to
/// the input's length on the host, the one case that costs memory of the input's size).
struct ElementWeight {
    buffer: wgpu::Buffer,
    /// Elements of the weight, repeating over the input (1 without a weight).
    period: usize,
    /// Whether each chunk binds its own window of a full-size weight.
    windowed: bool,
}

/// The weight of one chunk: its binding, and where element 0 of the chunk finds its weight.
struct WeightPart<'a> {
    binding: wgpu::BufferBinding<'a>,
    base: u32,
    period: u32,
}

impl ElementWeight {
    fn new(
        gpu: &Gpu,
        what: &'static str,
        weight: Option<&[f32]>,
        len: usize,
    ) -> Result<ElementWeight> {
        let Some(w) = weight else {
            let buffer = buffers::upload::<f32>(gpu, what, &[])?;
            return Ok(ElementWeight {
                buffer,
                period: 1,
                windowed: false,
            });
        };
        let fits =
            (w.len() as u64).saturating_mul(4) <= gpu.limits().max_storage_buffer_binding_size;
        if fits {
            let buffer = buffers::upload(gpu, what, w)?;
            return Ok(ElementWeight {
                buffer,
                period: w.len(),
                windowed: false,
            });
        }
        let full: Vec<f32>;
        let values = if w.len() == len {
            w
        } else {
            full = w.iter().copied().cycle().take(len).collect();
            &full
        };
        Ok(ElementWeight {
            buffer: buffers::upload(gpu, what, values)?,
            period: len,
            windowed: true,
        })
    }

    /// The weight of the chunk of elements `range`.
    fn part(&self, limits: &wgpu::Limits, range: std::ops::Range<usize>) -> Result<WeightPart<'_>> {
        let tensor = GpuTensor::new(&self.buffer);
        if self.windowed {
            let window = tensor.rows_window(limits, "weight", range, 1)?;
            return Ok(WeightPart {
                binding: window.binding,
                base: window.first,
                period: u32::MAX,
            });
        }
        let window = tensor.window(limits, "weight", self.period.max(1), 1)?;
        Ok(WeightPart {
            binding: window.binding,
            base: (range.start % self.period.max(1)) as u32,
            period: self.period.max(1) as u32,
        })
    }
}
