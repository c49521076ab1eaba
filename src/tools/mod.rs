//! What the `xent` command, the benchmarks and the tests share, apart from the user API:
//! the conformance suite behind `xent check`, benchmark cases and timing, the in-run read
//! ceiling, and `.npy` files. On `wasm32` only the conformance suite is built (it runs in a
//! browser through [`conformance::run_async`]); the rest times and files things natively.

#[cfg(not(target_arch = "wasm32"))]
pub mod bench;
#[cfg(not(target_arch = "wasm32"))]
mod ceiling;
pub mod conformance;
#[cfg(not(target_arch = "wasm32"))]
pub mod npy;

#[cfg(not(target_arch = "wasm32"))]
pub use crate::kernels::shaders::{all_sources as shader_sources, BindingKind, ShaderVariant};
#[cfg(not(target_arch = "wasm32"))]
pub use ceiling::ReadCeiling;
