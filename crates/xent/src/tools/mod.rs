//! What the `xent` command, the benchmarks and the tests time and check besides the user API
//! (feature `bench`, hidden from the docs, not a stable API): benchmark cases and timing
//! (with the composed linear baseline the fused loss is measured against), the in-run read
//! ceiling, and the shader variants the tests validate. Native only.

#[cfg(not(target_arch = "wasm32"))]
pub mod bench;
#[cfg(not(target_arch = "wasm32"))]
mod ceiling;

#[cfg(not(target_arch = "wasm32"))]
pub use crate::kernels::shaders::{all_sources as shader_sources, BindingKind, ShaderVariant};
#[cfg(not(target_arch = "wasm32"))]
pub use ceiling::ReadCeiling;
