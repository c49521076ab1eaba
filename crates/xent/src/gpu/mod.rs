//! The GPU core: a device with its error scopes and lost state, pipelines, buffers, tensor
//! windows, recorded programs, readback and the subgroup probe. It knows no loss: the kernels
//! above it build loss programs from these pieces.

pub(crate) mod buffers;
pub(crate) mod device;
pub(crate) mod lanes;
pub(crate) mod params;
pub(crate) mod pipelines;
pub(crate) mod pool;
pub(crate) mod program;
pub(crate) mod readback;
pub(crate) mod tensor;

pub(crate) use device::Gpu;
