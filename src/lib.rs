//! # xent
//!
//! The cross-entropy family of losses on any GPU, as WGSL compute shaders run through wgpu:
//! log-softmax, categorical cross-entropy with class-index or probability targets, and binary
//! cross-entropy on probabilities or on logits, with PyTorch's options and semantics.
//!
//! ```no_run
//! use xent::{Context, CrossEntropyOptions};
//!
//! let ctx = Context::new()?; // the best adapter on this machine
//! let logits = [2.0f32, 0.5, -1.0, 0.1, 0.2, 3.0]; // (N = 2, C = 3), row-major
//! let loss = ctx.cross_entropy(&logits, 3, &[0u32, 2], &CrossEntropyOptions::default())?;
//! let expected = xent::reference::cross_entropy(&logits, 3, &[0u32, 2], &Default::default())?;
//! assert!((f64::from(loss.scalar().unwrap()) - expected.scalar().unwrap()).abs() < 1e-5);
//! # Ok::<(), xent::Error>(())
//! ```
//!
//! Numerics: every row is reduced in f32 with an online (max, sum) log-sum-exp, so no finite
//! input overflows; batch reductions add in a fixed order (no float atomics), so repeated runs
//! on one adapter give bit-identical results. [`reference`](mod@reference) computes every loss in f64.

#![warn(missing_docs)]

pub mod bench;
mod ceiling;
pub mod conformance;
mod context;
mod error;
mod gpu_buffer;
mod lanes;
mod loss;
pub mod npy;
mod plan;
mod prepared;
pub mod reference;
mod shaders;
mod tensor;

pub use ceiling::ReadCeiling;
pub use context::{adapters, Context};
pub use error::{Error, Result};
pub use loss::{
    BceOptions, BceWithLogitsOptions, ClassIndex, CrossEntropyOptions, Loss, LossAndGrad, Reduction,
};
pub use plan::Tuning;
pub use prepared::{GradMode, PreparedLoss};
pub use shaders::all_sources as shader_sources;
pub use tensor::{Dtype, GpuTensor};
