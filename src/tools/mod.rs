//! What the `xent` command, the benchmarks and the tests share, apart from the user API:
//! the conformance suite behind `xent check`, benchmark cases and timing, the in-run read
//! ceiling, and `.npy` files.

pub mod bench;
mod ceiling;
pub mod conformance;
pub mod npy;

pub use crate::kernels::shaders::{all_sources as shader_sources, BindingKind, ShaderVariant};
pub use ceiling::ReadCeiling;
