//! A vocabulary split into shards (states, merge, finish) against the unsplit reference.

use super::*;

/// Adds this family's cases to `out`, in a fixed order.
pub(crate) fn add(out: &mut Vec<Case>) {
    for r in REDUCTIONS {
        let mut rng = Rng(40);
        let (n, v) = (37, 3000);
        let logits = rng.vec(n * v, -8.0, 8.0);
        let mut labels = rng.labels(n, v);
        labels.iter_mut().step_by(9).for_each(|l| *l = -100);
        let options = CrossEntropy {
            weight: Some(rng.vec(v, 0.2, 2.0)),
            label_smoothing: 0.1,
            reduction: r,
            softcap: Some(20.0),
            z_loss: 1e-3,
            ..Default::default()
        };
        out.push(case(
            format!(
                "ce vocabulary split in 3 shards {n}x{v} {}",
                reduction_name(r)
            ),
            move |ctx| {
                Box::pin(async move {
                    split_vocabulary(ctx, &options, (&logits, [n, v]), &labels, &[0, 1000, 1001])
                        .await
                })
            },
        ));
    }
}

/// Cross-entropy with the vocabulary's classes split into shards starting at `starts`, all on
/// `ctx`: the states of every shard merged, then each shard finished; the loss of the first
/// shard and the gradients of all side by side, against the unsplit reference.
async fn split_vocabulary(
    ctx: &Context,
    options: &CrossEntropy,
    (logits, [n, v]): (&[f32], [usize; 2]),
    labels: &[i64],
    starts: &[usize],
) -> Result<(Output, Output<f64>)> {
    let ranges: Vec<std::ops::Range<usize>> = starts
        .iter()
        .enumerate()
        .map(|(k, &s)| s..starts.get(k + 1).copied().unwrap_or(v))
        .collect();
    let parts: Vec<Vec<f32>> = ranges
        .iter()
        .map(|r| {
            logits
                .chunks(v)
                .flat_map(|row| row[r.clone()].to_vec())
                .collect()
        })
        .collect();
    let shard = |k: usize| VocabShard {
        first: ranges[k].start,
        vocab: v,
    };
    let states = |k: usize| {
        let input = Input::new(&parts[k], [n, ranges[k].len()]);
        let step = SplitStates {
            cross_entropy: options.clone(),
            shard: shard(k),
        };
        async move { ctx.compute_async(&step, input, labels).await }
    };
    let mut merged = states(0).await?;
    for k in 1..parts.len() {
        merged = states(k).await?.merge(&merged)?;
    }
    let finish = |k: usize| {
        let input = Input::new(&parts[k], [n, ranges[k].len()]).with_grad();
        let step = SplitFinish {
            cross_entropy: options.clone(),
            shard: shard(k),
        };
        let merged = &merged;
        async move { ctx.compute_async(&step, input, (labels, merged)).await }
    };
    let mut gpu = finish(0).await?;
    let mut grad = vec![0.0; n * v];
    for (k, range) in ranges.iter().enumerate() {
        let out = if k == 0 {
            gpu.grad.take()
        } else {
            finish(k).await?.grad
        };
        for (row, values) in out.unwrap_or_default().chunks(range.len()).enumerate() {
            grad[row * v + range.start..row * v + range.end].copy_from_slice(values);
        }
    }
    gpu.grad = Some(grad);
    let cpu = reference::compute(options, Input::new(logits, [n, v]).with_grad(), labels)?;
    Ok((gpu, cpu))
}
