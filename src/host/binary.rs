//! The host path of binary cross-entropy, on probabilities and with logits.

use std::future::Future;
use std::ops::Range;

use crate::error::Result;
use crate::host::parts::Batch;
use crate::host::{Host, HostKey, HostLoss, HostResult};
use crate::kernels::binary::{
    prepare_binary_cross_entropy, prepare_binary_cross_entropy_with_logits,
};
use crate::loss::{validate, BinaryCrossEntropy, BinaryCrossEntropyWithLogits, Reduction};
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
    /// Binary cross-entropy on probabilities of host slices: validation (the upstream
    /// gradient defaults to ones where `mode` asks for a gradient), then the host path.
    pub(crate) async fn binary_cross_entropy(
        &self,
        input: &[f32],
        target: &[f32],
        options: &BinaryCrossEntropy,
        upstream: Option<&[f32]>,
        mode: GradMode,
    ) -> Result<HostResult> {
        validate::bce(input, target, options)?;
        let tuning = self.gpu.tuning();
        let run_part = |part: Range<usize>, reduction, upstream| async move {
            let options = BinaryCrossEntropy {
                weight: options.weight.as_ref().map(|w| w[part.clone()].to_vec()),
                reduction,
            };
            let weights = [options.weight.as_deref()];
            let shape = [part.len(), 1];
            let key = HostKey::new(HostLoss::Bce, shape, mode, reduction, tuning, &weights);
            self.run(
                key,
                &bce_inputs(input, target, &part),
                upstream,
                |gpu, b| {
                    prepare_binary_cross_entropy(gpu, &b[0], &b[1], part.len(), &options, mode)
                },
            )
            .await
        };
        self.bce(input.len(), options.reduction, 1, upstream, mode, run_part)
            .await
    }

    /// Binary cross-entropy with logits of host slices, as [`Host::binary_cross_entropy`].
    pub(crate) async fn binary_cross_entropy_with_logits(
        &self,
        input: &[f32],
        target: &[f32],
        options: &BinaryCrossEntropyWithLogits,
        upstream: Option<&[f32]>,
        mode: GradMode,
    ) -> Result<HostResult> {
        validate::bce_with_logits(input, target, options)?;
        let tuning = self.gpu.tuning();
        let run_part = |part: Range<usize>, reduction, upstream| async move {
            let options = BinaryCrossEntropyWithLogits {
                weight: options.weight.as_ref().map(|w| w[part.clone()].to_vec()),
                pos_weight: options.pos_weight.clone(),
                reduction,
            };
            let weights = [options.weight.as_deref(), options.pos_weight.as_deref()];
            let key = HostKey::new(
                HostLoss::BceLogits,
                [part.len(), 1],
                mode,
                reduction,
                tuning,
                &weights,
            );
            self.run(
                key,
                &bce_inputs(input, target, &part),
                upstream,
                |gpu, b| {
                    let len = part.len();
                    prepare_binary_cross_entropy_with_logits(gpu, &b[0], &b[1], len, &options, mode)
                },
            )
            .await
        };
        // Parts start at multiples of pos_weight's length, so each part indexes it from 0.
        let last_dim = options.pos_weight.as_ref().map_or(1, Vec::len);
        let len = input.len();
        self.bce(len, options.reduction, last_dim, upstream, mode, run_part)
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
