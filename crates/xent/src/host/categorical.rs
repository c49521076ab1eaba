//! The host path of categorical cross-entropy (class-index and probability targets).

use crate::error::{Error, Result};
use crate::gpu::tensor::GpuTensor;
use crate::host::parts::Batch;
use crate::host::{Host, HostKey, HostLoss};
use crate::kernels::cross_entropy::{gpu_labels, prepare_cross_entropy, CategoricalTargets};
use crate::kernels::nll::prepare_nll;
use crate::loss::call::ClassShape;
use crate::loss::GradMode;
use crate::loss::{validate, CrossEntropy, Output, Reduction};
use crate::plan::Tuning;

/// Replaces the caller's logits by their in-place gradient.
pub(crate) fn copy_gradient(logits: &mut [f32], grad: &[f32]) -> Result<()> {
    if grad.len() != logits.len() {
        return Err(Error::Readback(format!(
            "the in-place gradient came back with {} values for {} logits",
            grad.len(),
            logits.len()
        )));
    }
    logits.copy_from_slice(grad);
    Ok(())
}

/// The key under which a host call's prepared loss is kept for reuse.
pub(crate) fn host_key(
    loss: HostLoss,
    shape: ClassShape,
    options: &CrossEntropy,
    mode: GradMode,
    tuning: Tuning,
) -> HostKey {
    // The softcap and z-loss are baked in as the weights are: compared bit for bit.
    let scalars = [options.softcap.unwrap_or(0.0), options.z_loss];
    let weights = [options.weight.as_deref(), Some(&scalars[..])];
    HostKey {
        ignore_index: options.ignore_index,
        smoothing: options.label_smoothing.to_bits(),
        lse: options.return_lse,
        ..HostKey::new(
            loss,
            [shape.rows, shape.classes, shape.positions],
            mode,
            options.reduction,
            tuning,
            &weights,
        )
    }
}

/// A categorical host call's batch of rows, in parts of whole samples: a row's logits are its
/// largest input (probability targets are as large); its loss (`None`), gradient and
/// log-sum-exp are read back.
fn host_batch(shape: ClassShape, options: &CrossEntropy, mode: GradMode) -> Batch {
    let row = (shape.classes as u64).saturating_mul(4);
    let loss = if options.reduction == Reduction::None {
        4
    } else {
        0
    };
    let grad = if mode == GradMode::Off { 0 } else { row };
    let lse = if options.return_lse { 4 } else { 0 };
    Batch {
        items: shape.rows,
        largest_input: row,
        outputs: grad.saturating_add(loss + lse),
        multiple: shape.positions,
        upstream_per_item: 1,
    }
}

/// What the rows of a categorical host call hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RowInput {
    /// Logits: cross-entropy.
    Logits,
    /// Log-probabilities: the NLL loss (class-index targets only).
    LogProbs,
}

/// The targets of a categorical host call.
#[derive(Clone, Copy)]
pub(crate) enum HostTargets<'a> {
    /// One class index per row.
    Indices(&'a [i64]),
    /// (rows, classes) probabilities.
    Probs(&'a [f32]),
}

impl Host {
    /// Categorical cross-entropy (or, on log-probabilities, the NLL loss) of host slices:
    /// validation (the upstream gradient defaults to ones where `mode` asks for a gradient),
    /// then upload, prepare, run and read back; in parts when the batch does not fit one
    /// buffer (see `host::parts`).
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn cross_entropy(
        &self,
        (logits, input): (&[f32], RowInput),
        shape: ClassShape,
        targets: HostTargets<'_>,
        options: &CrossEntropy,
        upstream: Option<&[f32]>,
        mode: GradMode,
    ) -> Result<Output> {
        let classes = shape.classes;
        let (rows, loss) = match targets {
            HostTargets::Indices(t) => (
                validate::cross_entropy_indices(logits, classes, t, options)?,
                match input {
                    RowInput::Logits => HostLoss::CrossEntropy,
                    RowInput::LogProbs => HostLoss::Nll,
                },
            ),
            HostTargets::Probs(t) => (
                validate::cross_entropy_probs(logits, classes, t, options)?,
                HostLoss::CrossEntropyProbs,
            ),
        };
        let upstream = match mode {
            GradMode::Off => None,
            _ => Some(validate::upstream(
                upstream,
                options.reduction,
                rows,
                "row",
            )?),
        };
        // The mean's denominator: the summed weight of the non-ignored targets, or N.
        let denominator = || match targets {
            HostTargets::Indices(t) => t
                .iter()
                .filter(|&&l| l != options.ignore_index)
                .map(|&l| {
                    options
                        .weight
                        .as_ref()
                        .map_or(1.0, |w| f64::from(w[l as usize]))
                })
                .sum(),
            HostTargets::Probs(_) => rows as f64,
        };
        let tuning = self.gpu.tuning();
        self.in_parts(
            host_batch(shape, options, mode),
            options.reduction,
            upstream.as_deref(),
            denominator,
            |part, reduction, upstream| async move {
                let mut options = CrossEntropy {
                    reduction,
                    ..options.clone()
                };
                let values = part.start * classes..part.end * classes;
                let labels;
                let target_bytes: &[u8] = match targets {
                    HostTargets::Indices(t) => {
                        let ignore;
                        (labels, ignore) = gpu_labels(&t[part.clone()], options.ignore_index);
                        options.ignore_index = ignore;
                        bytemuck::cast_slice(&labels)
                    }
                    HostTargets::Probs(t) => bytemuck::cast_slice(&t[values.clone()]),
                };
                let shape = ClassShape {
                    rows: part.len(),
                    ..shape
                };
                let key = host_key(loss, shape, &options, mode, tuning);
                let inputs = [
                    ("logits", bytemuck::cast_slice(&logits[values])),
                    ("targets", target_bytes),
                ];
                self.run(key, &inputs, upstream, |gpu, b| {
                    let (x, t) = (GpuTensor::new(&b[0]), GpuTensor::new(&b[1]));
                    if input == RowInput::LogProbs {
                        return prepare_nll(gpu, x, t, shape, &options, mode);
                    }
                    let t = match targets {
                        HostTargets::Indices(_) => CategoricalTargets::Indices(t),
                        HostTargets::Probs(_) => CategoricalTargets::Probs(t),
                    };
                    prepare_cross_entropy(gpu, x, t, shape, &options, mode)
                })
                .await
            },
        )
        .await
    }
}
