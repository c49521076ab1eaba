//! The loss kernels: one builder per loss family turns options and GPU tensors into a
//! recorded [`Program`](crate::gpu::program::Program), finished as a
//! [`PreparedLoss`](crate::PreparedLoss). The WGSL sources and binding tables are in
//! [`shaders`].

pub(crate) mod binary;
pub(crate) mod cross_entropy;
pub(crate) mod launch;
pub(crate) mod linear;
pub(crate) mod log_softmax;
pub(crate) mod nll;
pub(crate) mod outputs;
pub(crate) mod shaders;
