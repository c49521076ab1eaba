//! The host path of binary cross-entropy, on probabilities and with logits.

use std::future::Future;
use std::ops::Range;

use crate::error::Result;
use crate::gpu::tensor::GpuTensor;
use crate::host::parts::Batch;
use crate::host::{Host, HostKey, HostLoss, HostResult};
use crate::kernels::binary::prepare_binary;
use crate::loss::{
    validate, BinaryCrossEntropy, BinaryCrossEntropyWithLogits, BinaryLoss, Reduction,
};
use crate::prepared::GradMode;

/// The host inputs of one part of a BCE call.
fn bce_inputs<'a>(
    input: &'a [f32],
    target: &'a [f32],
    part: &Range<usize>,
) -> [(&'static str, &'a [u8]); 2] {
    [
        ("input", bytemuck::cast_slice(&input[part.clone()])),
        ("target", bytemuck::cast_slice(&target[part.clone()])),
    ]
}

impl Host {
    /// Binary cross-entropy (on probabilities or with logits) of host slices: validation (the
    /// upstream gradient defaults to ones where `mode` asks for a gradient), then the host
    /// path, one host call per part.
    pub(crate) async fn binary_cross_entropy(
        &self,
        input: &[f32],
        target: &[f32],
        loss: BinaryLoss<'_>,
        upstream: Option<&[f32]>,
        mode: GradMode,
    ) -> Result<HostResult> {
        validate::binary(input, target, loss)?;
        let (weight, pos_weight) = match loss {
            BinaryLoss::Probs(o) => (&o.weight, None),
            BinaryLoss::Logits(o) => (&o.weight, Some(&o.pos_weight)),
        };
        let reduction = loss.reduction();
        let tuning = self.gpu.tuning();
        let run_part = |part: Range<usize>, reduction, upstream| async move {
            // Elementwise weights are cut with the part; pos_weight spans every row.
            let weight = weight.as_ref().map(|w| w[part.clone()].to_vec());
            let probs;
            let logits;
            let (kind, part_loss) = match pos_weight {
                None => {
                    probs = BinaryCrossEntropy { weight, reduction };
                    (HostLoss::Bce, BinaryLoss::Probs(&probs))
                }
                Some(pos_weight) => {
                    let pos_weight = pos_weight.clone();
                    logits = BinaryCrossEntropyWithLogits {
                        weight,
                        pos_weight,
                        reduction,
                    };
                    (HostLoss::BceLogits, BinaryLoss::Logits(&logits))
                }
            };
            let weights = match part_loss {
                BinaryLoss::Probs(o) => vec![o.weight.as_deref()],
                BinaryLoss::Logits(o) => vec![o.weight.as_deref(), o.pos_weight.as_deref()],
            };
            let shape = [part.len(), 1];
            let key = HostKey::new(kind, shape, mode, reduction, tuning, &weights);
            let inputs = bce_inputs(input, target, &part);
            self.run(key, &inputs, upstream, |gpu, b| {
                let (x, t) = (GpuTensor::new(&b[0]), GpuTensor::new(&b[1]));
                prepare_binary(gpu, x, t, part.len(), part_loss, mode)
            })
            .await
        };
        // Parts start at multiples of pos_weight's length, so each part indexes it from 0.
        let last_dim = pos_weight.and_then(Option::as_ref).map_or(1, Vec::len);
        self.bce(input.len(), reduction, last_dim, upstream, mode, run_part)
            .await
    }

    /// The host path of both BCEs over `len` elements, in parts of a multiple of `multiple`
    /// elements when they do not fit one buffer (see `host::parts`); `run_part` runs one part
    /// as one host call.
    async fn bce<F: Future<Output = Result<HostResult>>>(
        &self,
        len: usize,
        reduction: Reduction,
        multiple: usize,
        upstream: Option<&[f32]>,
        mode: GradMode,
        run_part: impl FnMut(Range<usize>, Reduction, Option<Vec<f32>>) -> F,
    ) -> Result<HostResult> {
        let upstream = match mode {
            GradMode::Off => None,
            _ => Some(validate::upstream(upstream, reduction, len, "element")?),
        };
        let loss = if reduction == Reduction::None { 4 } else { 0 };
        let grad = if mode == GradMode::Off { 0 } else { 4 };
        // Input, target, weight and upstream take 4 bytes an element each.
        let batch = Batch {
            items: len,
            largest_input: 4,
            outputs: loss + grad,
            multiple,
            upstream_per_item: 1,
        };
        self.in_parts(
            batch,
            reduction,
            upstream.as_deref(),
            || len as f64,
            run_part,
        )
        .await
    }
}
