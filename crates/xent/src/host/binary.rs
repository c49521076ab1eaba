//! The host path of binary cross-entropy, on probabilities and with logits.

use std::future::Future;
use std::ops::Range;

use crate::error::Result;
use crate::gpu::tensor::GpuTensor;
use crate::host::parts::Batch;
use crate::host::{Host, HostKey, HostLoss};
use crate::kernels::binary::prepare_binary;
use crate::loss::GradMode;
use crate::loss::{
    validate, BinaryCrossEntropy, BinaryCrossEntropyWithLogits, BinaryLoss, Output, Reduction,
    SigmoidFocalLoss,
};

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

/// The weight of the elements `part` of a BCE input, from a weight that repeats over the
/// input every `w.len()` elements: `w` itself where the part is whole periods of it.
fn part_weight(w: &[f32], part: &Range<usize>) -> Vec<f32> {
    let period = w.len().max(1);
    if part.start.is_multiple_of(period) && part.len().is_multiple_of(period) {
        return w.to_vec();
    }
    part.clone().map(|i| w[i % period]).collect()
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
    ) -> Result<Output> {
        validate::binary(input, target, loss)?;
        let reduction = loss.reduction();
        let tuning = self.gpu.tuning();
        let run_part = |part: Range<usize>, reduction, upstream| async move {
            // Each weight repeats over a part that is whole periods of it, and is cut to the
            // part's elements otherwise.
            let cut = |w: &Option<Vec<f32>>| w.as_ref().map(|w| part_weight(w, &part));
            let (probs, logits, focal);
            let (kind, part_loss) = match loss {
                BinaryLoss::Probs(o) => {
                    probs = BinaryCrossEntropy {
                        weight: cut(&o.weight),
                        reduction,
                    };
                    (HostLoss::Bce, BinaryLoss::Probs(&probs))
                }
                BinaryLoss::Logits(o) => {
                    logits = BinaryCrossEntropyWithLogits {
                        weight: cut(&o.weight),
                        pos_weight: cut(&o.pos_weight),
                        reduction,
                    };
                    (HostLoss::BceLogits, BinaryLoss::Logits(&logits))
                }
                BinaryLoss::Focal(o) => {
                    focal = SigmoidFocalLoss { reduction, ..*o };
                    (HostLoss::Focal, BinaryLoss::Focal(&focal))
                }
            };
            // What the prepared kernel bakes in, compared bit for bit.
            let focal_options;
            let options = match part_loss {
                BinaryLoss::Probs(o) => vec![o.weight.as_deref()],
                BinaryLoss::Logits(o) => vec![o.weight.as_deref(), o.pos_weight.as_deref()],
                BinaryLoss::Focal(o) => {
                    focal_options = [o.alpha, o.gamma];
                    vec![Some(&focal_options[..])]
                }
            };
            let shape = [part.len(), 1, 1];
            let key = HostKey::new(kind, shape, mode, reduction, tuning, &options);
            let inputs = bce_inputs(input, target, &part);
            self.run(key, &inputs, upstream, |gpu, b| {
                let (x, t) = (GpuTensor::new(&b[0]), GpuTensor::new(&b[1]));
                prepare_binary(gpu, x, t, part.len(), part_loss, mode)
            })
            .await
        };
        let (weight, pos_weight) = match loss {
            BinaryLoss::Probs(o) => (o.weight.as_ref(), None),
            BinaryLoss::Logits(o) => (o.weight.as_ref(), o.pos_weight.as_ref()),
            BinaryLoss::Focal(_) => (None, None),
        };
        // Parts are whole periods of the weights shorter than the input (each period divides
        // the longer ones: they are trailing parts of one shape), so those repeat as they are.
        let periods = [weight, pos_weight];
        let multiple = periods
            .into_iter()
            .flatten()
            .map(Vec::len)
            .filter(|&p| p < input.len())
            .max()
            .unwrap_or(1);
        self.bce(input.len(), reduction, multiple, upstream, mode, run_part)
            .await
    }

    /// The host path of both BCEs over `len` elements, in parts of a multiple of `multiple`
    /// elements when they do not fit one buffer (see `host::parts`); `run_part` runs one part
    /// as one host call.
    async fn bce<F: Future<Output = Result<Output>>>(
        &self,
        len: usize,
        reduction: Reduction,
        multiple: usize,
        upstream: Option<&[f32]>,
        mode: GradMode,
        run_part: impl FnMut(Range<usize>, Reduction, Option<Vec<f32>>) -> F,
    ) -> Result<Output> {
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
