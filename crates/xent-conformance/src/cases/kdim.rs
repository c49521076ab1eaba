//! K-dimensional (N, C, d1, d2) inputs and an unbatched (C,) one.

use super::*;

/// Adds this family's cases to `out`, in a fixed order.
pub(crate) fn add(out: &mut Vec<Case>) {
    // K-dimensional (N, C, d1, d2) inputs, a row per position: class indices with every
    // option, probabilities, NLL; and an unbatched (C,) input.
    for (k, r) in REDUCTIONS.into_iter().enumerate() {
        let mut rng = Rng(31 + k as u64);
        let shape = [3usize, 21, 17, 19];
        let (c, positions) = (shape[1], shape[2] * shape[3]);
        let logits = rng.vec(shape.iter().product(), -8.0, 8.0);
        let mut labels = rng.labels(shape[0] * positions, c);
        labels.iter_mut().step_by(11).for_each(|l| *l = 0);
        let options = CrossEntropy {
            weight: Some(rng.vec(c, 0.2, 2.0)),
            ignore_index: 0,
            label_smoothing: 0.1,
            reduction: r,
            softcap: Some(5.0),
            z_loss: 1e-3,
            return_lse: true,
        };
        let name = format!(
            "ce k-dim every option and log-sum-exp {shape:?} {}",
            reduction_name(r)
        );
        let (x, t) = (logits.clone(), labels.clone());
        out.push(case(name, move |ctx| {
            Box::pin(async move {
                both(ctx, &options, || Input::new(&x, shape).with_grad(), &t[..]).await
            })
        }));
        let mut probs = rng.vec(logits.len(), 0.0, 1.0);
        for sample in probs.chunks_mut(c * positions) {
            for p in 0..positions {
                let sum: f32 = (0..c).map(|k| sample[k * positions + p]).sum();
                (0..c).for_each(|k| sample[k * positions + p] /= sum);
            }
        }
        let plain = CrossEntropy {
            reduction: r,
            ..Default::default()
        };
        let name = format!("ce k-dim probabilities {shape:?} {}", reduction_name(r));
        let x = logits.clone();
        out.push(case(name, move |ctx| {
            Box::pin(async move {
                both(
                    ctx,
                    &plain,
                    || Input::new(&x, shape).with_grad(),
                    &probs[..],
                )
                .await
            })
        }));
        let nll = NllLoss {
            reduction: r,
            ..Default::default()
        };
        let logp: Vec<f32> = logits.iter().map(|v| -v.abs()).collect();
        let name = format!("nll k-dim {shape:?} {}", reduction_name(r));
        out.push(case(name, move |ctx| {
            Box::pin(async move {
                both(
                    ctx,
                    &nll,
                    || Input::new(&logp, shape).with_grad(),
                    &labels[..],
                )
                .await
            })
        }));
    }
    let unbatched = Rng(34).vec(1000, -10.0, 10.0);
    out.push(case("ce unbatched (1000,)".into(), move |ctx| {
        Box::pin(async move {
            let options = CrossEntropy::default();
            both(
                ctx,
                &options,
                || Input::new(&unbatched, [1000]).with_grad(),
                &[7i64],
            )
            .await
        })
    }));
}
