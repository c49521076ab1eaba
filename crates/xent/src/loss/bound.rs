//! The caller's tensors a prepared loss was bound to, owned: what re-binding it checks new
//! tensors against.

use crate::dtype::Dtype;
use crate::gpu::tensor::GpuTensor;
use crate::loss::{GpuInput, GpuTargets, GradMode};

/// A caller's tensor as a prepared loss bound it.
#[derive(Clone, Debug)]
pub(crate) struct Placed {
    pub(crate) what: &'static str,
    pub(crate) buffer: wgpu::Buffer,
    pub(crate) offset: u64,
    pub(crate) row_stride: Option<usize>,
    pub(crate) dtype: Dtype,
}

impl Placed {
    /// `tensor`, named `what` in errors.
    pub(crate) fn of(what: &'static str, tensor: &GpuTensor<'_>) -> Placed {
        Placed {
            what,
            buffer: tensor.buffer.clone(),
            offset: tensor.offset,
            row_stride: tensor.row_stride,
            dtype: tensor.dtype,
        }
    }
}

/// What a prepared loss was prepared on: the input's shape and gradient mode, and the
/// caller's tensors in a fixed order (the input, then the targets if any).
#[derive(Clone, Debug)]
pub(crate) struct Binds {
    pub(crate) shape: Vec<usize>,
    pub(crate) grad: GradMode,
    pub(crate) tensors: Vec<Placed>,
}

impl Binds {
    /// The binds of a loss prepared on `input` and `targets`.
    pub(crate) fn new(input: &GpuInput<'_>, targets: &GpuTargets<'_>) -> Binds {
        Binds {
            shape: input.shape.clone(),
            grad: input.grad,
            tensors: placed(input, targets),
        }
    }
}

/// The caller's tensors of `input` and `targets`, in [`Binds`]' order.
pub(crate) fn placed(input: &GpuInput<'_>, targets: &GpuTargets<'_>) -> Vec<Placed> {
    let mut out = vec![Placed::of("input", &input.tensor)];
    match targets {
        GpuTargets::None => {}
        GpuTargets::Indices(t) | GpuTargets::Values(t) => out.push(Placed::of("targets", t)),
    }
    out
}
