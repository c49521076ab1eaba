//! # xent
//!
//! The cross-entropy family of losses on any GPU, as WGSL compute shaders run through wgpu:
//! log-softmax, categorical cross-entropy with class-index or probability targets, binary
//! cross-entropy on probabilities or on logits, the NLL loss on log-probabilities and sigmoid
//! focal loss, with their gradients, and PyTorch's options and semantics.
//!
//! ## Quick start: a loss is a value
//!
//! A loss is a descriptor ([`CrossEntropy`], [`BinaryCrossEntropy`],
//! [`BinaryCrossEntropyWithLogits`], [`SigmoidFocalLoss`], [`NllLoss`], [`LogSoftmax`])
//! carrying PyTorch's options; a [`Context`]
//! computes any of them with one verb, `compute(loss, input, targets)`:
//!
//! ```
//! use xent::{Context, CrossEntropy, Input};
//!
//! let ctx = Context::new()?; // the best adapter on this machine
//! let logits = [2.0f32, 0.5, -1.0, 0.1, 0.2, 3.0]; // (N = 2, C = 3), row-major
//! let loss = CrossEntropy { label_smoothing: 0.1, ..Default::default() };
//! let out = ctx.compute(&loss, Input::new(&logits, [2, 3]), &[0u32, 2])?;
//! let expected = xent::reference::compute(&loss, Input::new(&logits, [2, 3]), &[0u32, 2])?;
//! assert!((f64::from(out.loss.scalar().unwrap()) - expected.loss.scalar().unwrap()).abs() < 1e-5);
//! # Ok::<(), xent::Error>(())
//! ```
//!
//! ## Every loss through the same two verbs
//!
//! Each family is a descriptor, and [`Context::compute`] (host slices) and
//! [`Context::prepare`] (your GPU buffers) take every one of them; [`Descriptor`] lists what
//! each takes and gives.
//!
//! ```
//! use xent::{BinaryCrossEntropyWithLogits, Context, Input, LogSoftmax, NllLoss, Targets};
//!
//! let ctx = Context::new()?;
//! // Binary losses: any shape, f32 targets of the same shape.
//! let bce = ctx.compute(&BinaryCrossEntropyWithLogits::default(), Input::new(&[0.0f32, 3.0], [2]), &[1.0f32, 1.0])?;
//! assert!(bce.loss.scalar().unwrap() > 0.0);
//! // Log-softmax, then the NLL loss on its output: the same as cross-entropy.
//! let logp = ctx.compute(&LogSoftmax, Input::new(&[1.0f32, 2.0, 3.0], [1, 3]), Targets::None)?;
//! let nll = ctx.compute(&NllLoss::default(), Input::new(logp.loss.values(), [1, 3]), &[2u32])?;
//! assert!((nll.loss.scalar().unwrap() + logp.loss.values()[2]).abs() < 1e-6);
//! # Ok::<(), xent::Error>(())
//! ```
//!
//! Fused linear cross-entropy ([`LinearCrossEntropy`]) takes hidden states and a classifier
//! and never holds the logits:
//!
//! ```
//! use xent::{Context, LinearCrossEntropy, LinearInput};
//!
//! let ctx = Context::new()?;
//! let (hidden, classifier) = ([1.0f32, 0.0, 0.0, 1.0], [2.0f32, 0.0, 0.0, 2.0, 1.0, 1.0]);
//! let input = LinearInput::new(&hidden, &classifier, [2, 2, 3]).with_grad(); // [N, D, V]
//! let out = ctx.compute(&LinearCrossEntropy::default(), input, &[0u32, 1])?;
//! assert_eq!(out.grad_classifier.unwrap().len(), 6);
//! # Ok::<(), xent::Error>(())
//! ```
//!
//! A vocabulary split across devices runs as two steps, [`SplitStates`] on each device's
//! classes and [`SplitFinish`] from the merged [`ShardStates`] (see [`SplitStates`] for the
//! whole round).
//!
//! ## The host form: slices in, numbers out
//!
//! [`Input`] holds the values and their shape, and asks for the gradient
//! ([`Input::with_grad`], [`Input::with_upstream`]) or for the gradient written over the
//! values ([`Input::in_place`]). Targets are class indices (`&[u32]`, `&[i32]`, `&[i64]`, `&[usize]`),
//! values (`&[f32]`) or [`Targets::None`]. The result is an [`Output`]: the [`Loss`] and the
//! gradient when asked for. Buffers and pipelines are kept for the next call of the same shape
//! ([`CacheBudget`]).
//!
//! ## The GPU form: inside your pipeline
//!
//! [`Context::prepare`] sets a loss up on your buffers ([`GpuInput`], [`GpuTargets`],
//! [`GpuTensor`] for offsets, strides and f16/bf16) and returns a [`PreparedLoss`] that records
//! into your command encoder without allocating and reads back only when asked. Build the
//! context on your device with [`Context::from_device`] (its docs show a complete wgpu set-up);
//! xent re-exports its [`wgpu`].
//!
//! ## Async at the core
//!
//! Every wait on the device is asynchronous underneath: [`Context::compute_async`],
//! [`Context::prepare_async`], [`PreparedLoss::read_loss_async`], [`Context::new_async`]. The
//! blocking forms are thin wrappers for native programs; on `wasm32` only the async forms
//! exist.
//!
//! ## In a browser
//!
//! On `wasm32-unknown-unknown` xent runs on the browser's WebGPU through its `webgpu` feature
//! (`xent = { version = "0.1", features = ["webgpu"] }`):
//! [`Context::new_async`] takes the adapter the browser offers, with its own limits, and the
//! async verbs run every loss; `examples/web` is a page that does so, and runs the conformance
//! suite (the `xent-conformance` crate) in the browser.
//!
//! ## Errors
//!
//! Every function returns [`Result`]; nothing panics on bad input, out-of-memory or a lost
//! device. Bad input is a typed [`Error`] before anything runs; GPU failures name what xent was
//! doing ([`Operation`]) and, for a failing compile, the kernel and variant.
//!
//! ## Numerics
//!
//! Every row is reduced in f32 with an online (max, sum) log-sum-exp, so no finite input
//! overflows; batch reductions add in a fixed order (no float atomics), so repeated runs on one
//! adapter give bit-identical results. [`reference`](mod@reference) computes every loss in f64
//! with the same checks.
//!
//! The `xent` command (`xent info`, `check`, `bench`, `eval`) is the `xent-cli` crate, and the
//! cross-vendor conformance suite behind `xent check` the `xent-conformance` crate; this crate
//! is the losses alone.

#![warn(missing_docs)]
// On wasm32 wgpu's handles are neither Send nor Sync (a page has one thread), so the shared
// caches behind an Arc are not either; natively they are both.
#![cfg_attr(target_arch = "wasm32", allow(clippy::arc_with_non_send_sync))]

#[cfg(all(target_arch = "wasm32", not(feature = "webgpu")))]
compile_error!(
    "xent on wasm32 runs on the browser's WebGPU: enable its `webgpu` feature \
     (features = [\"webgpu\"])"
);

/// The README's examples, run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

// The layers, bottom up; each imports only those above it in this list.
mod bind;
mod context;
mod dtype;
mod error;
mod gpu;
mod host;
mod kernels;
mod linear;
mod loss;
mod plan;
mod prepared;
pub mod reference;
mod shard;
#[cfg(feature = "bench")]
#[doc(hidden)]
pub mod tools;
mod verbs;

#[cfg(not(target_arch = "wasm32"))]
pub use context::adapters;
pub use context::{CacheBudget, Context};
pub use dtype::Dtype;
pub use error::{Error, Operation, Result};
pub use gpu::tensor::GpuTensor;
pub use linear::{GpuLinearInput, PreparedLinear};
pub use loss::{
    BinaryCrossEntropy, BinaryCrossEntropyWithLogits, ClassIndex, CrossEntropy, GpuInput,
    GpuTargets, GradMode, Indices, Input, LinearCrossEntropy, LinearInput, LinearOutput,
    LogSoftmax, Loss, NllLoss, Output, Reduction, SigmoidFocalLoss, Targets,
};
pub use plan::Tuning;
pub use prepared::PreparedLoss;
pub use shard::{
    GpuSplitTargets, PreparedStates, ShardStates, SplitFinish, SplitStates, SplitTargets,
    VocabShard,
};
pub use verbs::Descriptor;
/// The wgpu xent is built on: create your device, buffers and encoders with it, so that both
/// sides agree on one wgpu.
pub use wgpu;

/// bytemuck, to view `&[f32]` and `&[i32]` as the bytes a buffer is created from
/// (`xent::bytemuck::cast_slice`).
pub use bytemuck;
