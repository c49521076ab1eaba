//! What the `xent` command, the benchmarks and the tests time and check besides the user API
//! (feature `bench`, hidden from the docs, not a stable API): benchmark cases and timing
//! (with the composed linear baseline the fused loss is measured against), the in-run read
//! ceiling, and the shader variants the tests validate. Native only.

#[cfg(not(target_arch = "wasm32"))]
pub mod bench;
#[cfg(not(target_arch = "wasm32"))]
mod ceiling;

#[cfg(not(target_arch = "wasm32"))]
pub use crate::gpu::params::ParamLayout;
#[cfg(not(target_arch = "wasm32"))]
pub use crate::kernels::shaders::{all_sources as shader_sources, BindingKind, ShaderVariant};
#[cfg(not(target_arch = "wasm32"))]
pub use ceiling::ReadCeiling;

/// The layout of every Rust mirror of a kernel's WGSL `Params` struct, for the layout test.
#[cfg(not(target_arch = "wasm32"))]
pub fn param_layouts() -> Vec<ParamLayout> {
    vec![
        crate::kernels::cross_entropy::Params::LAYOUT,
        crate::kernels::log_softmax::Params::LAYOUT,
        crate::kernels::binary::Params::LAYOUT,
        crate::kernels::launch::ReduceParams::LAYOUT,
        crate::kernels::linear::MatmulParams::LAYOUT,
        crate::kernels::launch::MergeParams::LAYOUT,
        crate::gpu::lanes::Params::LAYOUT,
        ceiling::Params::LAYOUT,
    ]
}
