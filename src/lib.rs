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

// The layers, bottom up; each imports only those above it in this list.
mod context;
mod dtype;
mod error;
mod gpu;
mod host;
mod kernels;
mod loss;
mod plan;
mod prepared;
pub mod reference;
pub mod tools;

pub use context::{adapters, CacheBudget, Context};
pub use dtype::Dtype;
pub use error::{Error, Operation, Result};
pub use gpu::tensor::GpuTensor;
pub use loss::{
    BceOptions, BceWithLogitsOptions, ClassIndex, CrossEntropyOptions, Loss, LossAndGrad, Reduction,
};
pub use plan::Tuning;
pub use prepared::{GradMode, PreparedLoss};
pub use wgpu;
