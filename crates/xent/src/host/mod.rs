//! The host path, written once: inputs as slices are uploaded (into buffers kept from an
//! earlier call of the same shape when there is one), the loss is prepared on them, recorded
//! and submitted with the readback of its outputs in one submission, and read back; batches
//! larger than one buffer run in parts ([`parts`]).

pub(crate) mod binary;
pub(crate) mod categorical;
pub(crate) mod log_softmax;
pub(crate) mod parts;

use std::any::Any;
use std::future::Future;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use crate::error::{Operation, Result};
use crate::gpu::buffers;
use crate::gpu::device::lock;
use crate::gpu::pool::Pool;
use crate::gpu::Gpu;
use crate::loss::GradMode;
use crate::loss::{Loss, Output, Reduction};
use crate::plan::Tuning;
use crate::prepared::{decode, GradOut, PreparedLoss};
use parts::{parts, Batch};

/// Bytes of kept host calls (their inputs and outputs on the GPU) a context keeps, by default.
pub(crate) const DEFAULT_HOST_CALL_BUDGET: u64 = 256 << 20;

/// The GPU core and the cache of host calls: what the host path runs on.
#[derive(Clone)]
pub(crate) struct Host {
    pub(crate) gpu: Gpu,
    calls: Arc<Mutex<Pool<HostKey, KeptCall>>>,
}

/// A kept host call, its prepared work of any type (told apart by the key's loss).
type KeptCall = HostCall<Box<dyn Keepable>>;

/// Prepared work the host cache can keep: any type, shared between threads natively (so a
/// `Context` stays `Send + Sync`); on wasm32 the browser's GPU objects are neither.
#[cfg(not(target_arch = "wasm32"))]
pub(crate) trait Keepable: Any + Send + Sync {}
#[cfg(not(target_arch = "wasm32"))]
impl<T: Any + Send + Sync> Keepable for T {}
/// Prepared work the host cache can keep (see the native definition).
#[cfg(target_arch = "wasm32")]
pub(crate) trait Keepable: Any {}
#[cfg(target_arch = "wasm32")]
impl<T: Any> Keepable for T {}

/// A host call's input buffers and prepared work (a [`PreparedLoss`], or the prepared form of
/// a loss that wraps one), kept so that the next call of the same shape and options reuses
/// them: it only uploads its data, records and reads back.
pub(crate) struct HostCall<P> {
    pub(crate) inputs: Vec<wgpu::Buffer>,
    pub(crate) prepared: P,
}

/// Which host path a kept call belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HostLoss {
    LogSoftmax,
    CrossEntropy,
    CrossEntropyProbs,
    Bce,
    BceLogits,
    Focal,
    Nll,
    Linear,
    SplitStates,
    SplitFinish,
}

/// The key of a host call: everything the prepared loss bakes in. A kept call is reused only
/// for an equal key: the same loss, shape, gradient mode, options (weights compared bit for
/// bit) and launch tuning.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct HostKey {
    pub(crate) loss: HostLoss,
    /// Items (rows or elements) and, for row losses, classes and positions per sample (see
    /// `ClassShape`).
    pub(crate) shape: [usize; 3],
    pub(crate) mode: GradMode,
    pub(crate) reduction: Reduction,
    pub(crate) tuning: Tuning,
    /// `ignore_index` and the bits of `label_smoothing` (categorical cross-entropy).
    pub(crate) ignore_index: i64,
    pub(crate) smoothing: u32,
    /// Whether the per-row log-sum-exp is an output (categorical cross-entropy).
    pub(crate) lse: bool,
    /// The bits of each weight vector, `None` where it is absent.
    pub(crate) weights: Vec<Option<Vec<u32>>>,
    /// Other sizes the prepared work bakes in: a vocabulary shard's first class and
    /// vocabulary, the fused linear loss's bias and block budget (0 for other losses).
    pub(crate) sizes: [u64; 2],
}

impl HostKey {
    /// A key with no categorical options.
    pub(crate) fn new(
        loss: HostLoss,
        shape: [usize; 3],
        mode: GradMode,
        reduction: Reduction,
        tuning: Tuning,
        weights: &[Option<&[f32]>],
    ) -> HostKey {
        HostKey {
            loss,
            shape,
            mode,
            reduction,
            tuning,
            ignore_index: 0,
            smoothing: 0,
            lse: false,
            sizes: [0, 0],
            weights: weights
                .iter()
                .map(|w| w.map(|w| w.iter().map(|v| v.to_bits()).collect()))
                .collect(),
        }
    }
}

impl Host {
    /// The host path on `gpu`, with an empty cache of `budget` bytes.
    pub(crate) fn new(gpu: Gpu, budget: u64) -> Host {
        Host {
            gpu,
            calls: Arc::new(Mutex::new(Pool::new(budget))),
        }
    }

    /// The same cache on another core of the same device (another tuning).
    pub(crate) fn with_gpu(&self, gpu: Gpu) -> Host {
        Host {
            gpu,
            calls: Arc::clone(&self.calls),
        }
    }

    /// Bytes of kept host calls.
    pub(crate) fn cached_bytes(&self) -> u64 {
        lock(&self.calls).bytes()
    }

    /// Drops every kept host call.
    pub(crate) fn clear(&self) {
        lock(&self.calls).clear();
    }

    /// Sets the budget of kept host calls.
    pub(crate) fn set_budget(&self, budget: u64) {
        lock(&self.calls).set_budget(budget);
    }

    /// One host call in one submission: inside error scopes, upload `inputs` (reusing the
    /// buffers and prepared loss of an earlier call with an equal `key` when one is free, else
    /// creating them with `prepare` on new buffers), set the upstream gradient, record, copy
    /// the loss, gradient and log-sum-exp out; then read them back.
    pub(crate) async fn run(
        &self,
        key: HostKey,
        inputs: &[(&'static str, &[u8])],
        upstream: Option<Vec<f32>>,
        prepare: impl FnOnce(&Gpu, &[wgpu::Buffer]) -> Result<PreparedLoss>,
    ) -> Result<Output> {
        let gpu = &self.gpu;
        let (call, readback) = gpu
            .checked(Operation::Run, || {
                let call = self.take_or_prepare(&key, inputs, prepare)?;
                let prepared = &call.prepared;
                if let Some(upstream) = &upstream {
                    prepared.set_upstream(upstream)?;
                }
                let mut encoder =
                    gpu.device()
                        .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                            label: Some("xent"),
                        });
                prepared.record(&mut encoder);
                let readback = gpu.submit_and_read(encoder, &prepared.outputs());
                Ok((call, readback))
            })
            .await?;
        let values = readback.values().await?;
        let prepared = &call.prepared;
        let mut values = prepared.checked_values(values)?.into_iter();
        let loss = prepared.loss_from(values.next().unwrap_or_default());
        let grad = (prepared.grad.as_ref())
            .map(|g| decode(values.next().unwrap_or_default(), g.len, g.dtype));
        let lse = prepared
            .lse
            .as_ref()
            .map(|_| values.next().unwrap_or_default());
        let bytes = call.bytes(inputs);
        self.keep(key, call, bytes);
        Ok(Output { loss, grad, lse })
    }

    /// The kept call of an equal `key` with `inputs` written into its buffers, or (none being
    /// free) `inputs` uploaded into new buffers and `prepare`d on them. Call it inside
    /// [`Gpu::checked`]; give the call back with [`keep`](Self::keep) once its results are
    /// read.
    pub(crate) fn take_or_prepare<P: Keepable>(
        &self,
        key: &HostKey,
        inputs: &[(&'static str, &[u8])],
        prepare: impl FnOnce(&Gpu, &[wgpu::Buffer]) -> Result<P>,
    ) -> Result<HostCall<P>> {
        let gpu = &self.gpu;
        let is_p = |call: &KeptCall| (&*call.prepared as &dyn Any).is::<P>();
        let reused = lock(&self.calls).take(key, is_p);
        if let Some(call) = reused {
            for (buffer, (_, data)) in call.inputs.iter().zip(inputs) {
                if !data.is_empty() {
                    gpu.queue().write_buffer(buffer, 0, data);
                }
            }
            let prepared: Box<dyn Any> = call.prepared;
            if let Ok(prepared) = prepared.downcast::<P>() {
                return Ok(HostCall {
                    inputs: call.inputs,
                    prepared: *prepared,
                });
            }
        }
        let buffers = inputs
            .iter()
            .map(|(what, data)| buffers::upload(gpu, what, data))
            .collect::<Result<Vec<_>>>()?;
        let prepared = prepare(gpu, &buffers)?;
        Ok(HostCall {
            inputs: buffers,
            prepared,
        })
    }

    /// Keeps `call` (of `bytes` bytes on the GPU, inputs and outputs) for the next call of an
    /// equal `key`, within the budget.
    pub(crate) fn keep<P: Keepable>(&self, key: HostKey, call: HostCall<P>, bytes: u64) {
        let call = HostCall {
            inputs: call.inputs,
            prepared: Box::new(call.prepared) as Box<dyn Keepable>,
        };
        lock(&self.calls).put(key, call, bytes);
    }
    /// Runs a host call in the parts [`parts()`] gives, with `run_part(range, reduction,
    /// upstream)` running the items `range` as one host call, and puts the results together
    /// (see the module header). `denominator` gives the batch's `Mean` denominator; it is only
    /// called for a `Mean` that is cut. `upstream` is as the caller passed it (checked): per
    /// item for `None`, one value otherwise, or absent without a gradient.
    pub(crate) async fn in_parts<F: Future<Output = Result<Output>>>(
        &self,
        batch: Batch,
        reduction: Reduction,
        upstream: Option<&[f32]>,
        denominator: impl FnOnce() -> f64,
        mut run_part: impl FnMut(Range<usize>, Reduction, Option<Vec<f32>>) -> F,
    ) -> Result<Output> {
        let ranges = parts(batch, self.gpu.limits())?;
        if ranges.len() == 1 {
            return run_part(0..batch.items, reduction, upstream.map(<[f32]>::to_vec)).await;
        }
        // A mean runs as a sum with its one upstream value divided by the denominator.
        let (part_reduction, divisor, scaled) = match reduction {
            Reduction::Mean => {
                let d = denominator();
                let scaled: Option<Vec<f32>> =
                    upstream.map(|u| u.iter().map(|&v| (f64::from(v) / d) as f32).collect());
                (Reduction::Sum, Some(d), scaled)
            }
            other => (other, None, None),
        };
        let part_upstream = scaled.as_deref().or(upstream);
        let per_item = batch.upstream_per_item;
        let mut values = Vec::new();
        let mut sum = 0.0f64;
        let mut grad: Option<Vec<f32>> = None;
        let mut lse: Option<Vec<f32>> = None;
        for range in ranges {
            let up = match part_reduction {
                Reduction::None => {
                    part_upstream.map(|u| &u[range.start * per_item..range.end * per_item])
                }
                _ => part_upstream,
            };
            let part = run_part(range, part_reduction, up.map(<[f32]>::to_vec)).await?;
            match part.loss {
                Loss::Unreduced(v) => values.extend(v),
                Loss::Reduced(v) => sum += f64::from(v),
            }
            if let Some(g) = part.grad {
                grad.get_or_insert_with(Vec::new).extend(g);
            }
            if let Some(l) = part.lse {
                lse.get_or_insert_with(Vec::new).extend(l);
            }
        }
        let loss = match (reduction, divisor) {
            (Reduction::None, _) => Loss::Unreduced(values),
            (_, Some(d)) => Loss::Reduced((sum / d) as f32),
            (_, None) => Loss::Reduced(sum as f32),
        };
        Ok(Output { loss, grad, lse })
    }
}

impl HostCall<PreparedLoss> {
    /// The bytes of its inputs (as uploaded) and outputs on the GPU.
    fn bytes(&self, inputs: &[(&'static str, &[u8])]) -> u64 {
        let prepared = &self.prepared;
        let outputs = prepared.loss_len
            + prepared.grad.as_ref().map_or(0, GradOut::words)
            + prepared.lse.as_ref().map_or(0, |(_, len)| *len);
        inputs.iter().map(|(_, d)| d.len() as u64).sum::<u64>() + 4 * outputs as u64
    }
}
