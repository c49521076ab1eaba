//! The reference of fused linear cross-entropy: the logits in f64, then cross-entropy.

use super::categorical::{cross_entropy_f64, softcapped};
use super::widen;
use crate::error::Result;
use crate::loss::linear::LinearShape;
use crate::loss::{LinearCrossEntropy, LinearInput, LinearOutput, Loss, Targets};

/// The reference of fused linear cross-entropy (see [`compute`]).
pub(super) fn linear_cross_entropy<'a>(
    loss: &LinearCrossEntropy,
    input: LinearInput<'a>,
    targets: Targets<'a>,
) -> Result<LinearOutput<f64>> {
    let call = crate::loss::linear::check(loss, &input, targets)?;
    let bias = input.bias.map(widen);
    let up = call.upstream.as_deref().map(widen);
    let params = (
        &widen(input.hidden)[..],
        &widen(input.classifier)[..],
        bias.as_deref(),
    );
    let (loss_value, grads) = linear_f64(params, call.shape, &call.labels, loss, up.as_deref());
    let [dh, dw, db] = grads.map(Some);
    Ok(LinearOutput {
        loss: loss_value,
        grad_hidden: up.as_ref().and(dh),
        grad_classifier: up.as_ref().and(dw),
        grad_bias: up.as_ref().and(bias.as_ref()).and(db),
    })
}

/// Fused linear cross-entropy in f64 on (hidden, classifier, bias): the loss and, with
/// `upstream`, the gradients of the three (empty without).
pub(super) fn linear_f64(
    (h, w, b): (&[f64], &[f64], Option<&[f64]>),
    shape: LinearShape,
    labels: &[i64],
    loss: &LinearCrossEntropy,
    upstream: Option<&[f64]>,
) -> (Loss<f64>, [Vec<f64>; 3]) {
    let LinearShape { rows, dim, classes } = shape;
    let mut logits = vec![0.0; rows * classes];
    for (n, row) in logits.chunks_mut(classes).enumerate() {
        let x = &h[n * dim..(n + 1) * dim];
        for (c, out) in row.iter_mut().enumerate() {
            let wc = &w[c * dim..(c + 1) * dim];
            let dot: f64 = x.iter().zip(wc).map(|(a, b)| a * b).sum();
            *out = dot + b.map_or(0.0, |b| b[c]);
        }
    }
    let options = &loss.cross_entropy;
    let (value, g) = softcapped(&logits, options.softcap, |z| {
        cross_entropy_f64(z, classes, labels, options, upstream)
    });
    if upstream.is_none() {
        return (value, [Vec::new(), Vec::new(), Vec::new()]);
    }
    let mut dh = vec![0.0; rows * dim];
    let mut dw = vec![0.0; classes * dim];
    let mut db = vec![0.0; classes];
    for (n, grow) in g.chunks(classes).enumerate() {
        for (c, &gc) in grow.iter().enumerate() {
            db[c] += gc;
            for d in 0..dim {
                dh[n * dim + d] += gc * w[c * dim + d];
                dw[c * dim + d] += gc * h[n * dim + d];
            }
        }
    }
    (value, [dh, dw, db])
}
