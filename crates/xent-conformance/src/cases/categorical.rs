//! Cross-entropy with class indices and with probabilities, for each reduction: plain, every
//! option, long and split rows, softcapped logits, many short rows.

use super::*;

/// Adds this family's cases to `out`, in a fixed order.
pub(crate) fn add(out: &mut Vec<Case>) {
    for (i, r) in REDUCTIONS.into_iter().enumerate() {
        let seed = 100 + i as u64;
        let plain = CrossEntropy {
            reduction: r,
            ..Default::default()
        };
        let mut rng = Rng(seed);
        let all = CrossEntropy {
            weight: Some(rng.vec(1000, 0.2, 2.0)),
            ignore_index: 3,
            label_smoothing: 0.1,
            reduction: r,
            softcap: None,
            z_loss: 0.0,
            return_lse: false,
        };
        let long = CrossEntropy {
            weight: Some(rng.vec(5000, 0.2, 2.0)),
            label_smoothing: 0.05,
            reduction: r,
            ..Default::default()
        };
        out.push(ce_case("indices", 200, 1000, plain.clone(), seed, 8.0));
        out.push(ce_case(
            "indices weight+ignore+smoothing",
            200,
            1000,
            all.clone(),
            seed,
            8.0,
        ));
        out.push(ce_case("indices long rows", 8, 5000, long, seed, 8.0));
        // Logits up to +-60 read through a softcap of 20, in long rows and in short ones, with
        // and without a z-loss; weights from a stream of their own leave the other cases'
        // inputs as they were.
        for (n, c, z_loss) in [(64, 1000, 0.0), (3000, 7, 1e-3)] {
            let capped = CrossEntropy {
                weight: Some(Rng(seed + 60).vec(c, 0.2, 2.0)),
                label_smoothing: 0.1,
                reduction: r,
                softcap: Some(20.0),
                z_loss,
                ..Default::default()
            };
            let label = format!("indices softcap 20 z-loss {z_loss}");
            out.push(ce_case(&label, n, c, capped, seed + 60, 60.0));
        }
        // Too few rows to fill any adapter: rows are split (see the launch plan).
        let split = CrossEntropy {
            weight: Some(rng.vec(65536, 0.2, 2.0)),
            label_smoothing: 0.05,
            reduction: r,
            ..Default::default()
        };
        out.push(ce_case("indices split rows", 2, 65536, split, seed, 8.0));
        out.push(ce_case(
            "indices short rows",
            3000,
            7,
            CrossEntropy {
                reduction: r,
                ..Default::default()
            },
            seed,
            8.0,
        ));
        // Enough short rows that a CPU adapter's threads take several each (see the launch
        // plan); weights from a stream of their own leave the other cases' inputs as they were.
        let many = CrossEntropy {
            weight: Some(Rng(seed + 50).vec(7, 0.2, 2.0)),
            label_smoothing: 0.1,
            reduction: r,
            ..Default::default()
        };
        out.push(ce_case(
            "indices many short rows",
            140_000,
            7,
            many,
            seed,
            8.0,
        ));

        let (n, c) = (200, 1000);
        let logits = rng.vec(n * c, -8.0, 8.0);
        let mut probs = rng.vec(n * c, 0.0, 1.0);
        for row in probs.chunks_mut(c) {
            let s: f32 = row.iter().sum();
            row.iter_mut().for_each(|v| *v /= s);
        }
        let options = all.clone();
        out.push(case(
            format!(
                "ce probabilities weight+smoothing {n}x{c} {}",
                reduction_name(r)
            ),
            move |ctx| {
                Box::pin(async move {
                    both(
                        ctx,
                        &options,
                        || Input::new(&logits, [logits.len() / c, c]).with_grad(),
                        &probs[..],
                    )
                    .await
                })
            },
        ));
    }
}
