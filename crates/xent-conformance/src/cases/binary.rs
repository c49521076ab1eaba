//! Binary cross-entropy on probabilities (0 and 1 included) and with logits (|x| = 1e4, both
//! weights), for each reduction; with logits on targets outside [0, 1]; and sigmoid focal loss.

use super::*;

/// Adds this family's cases to `out`, in a fixed order.
pub(crate) fn add(out: &mut Vec<Case>) {
    for (i, r) in REDUCTIONS.into_iter().enumerate() {
        // A stream of its own for the binary losses' inputs.
        let mut rng = Rng(200 + i as u64);
        let len = 10_000;
        let mut p = rng.vec(len, 0.0, 1.0);
        p[0] = 0.0;
        p[1] = 1.0;
        let t = rng.vec(len, 0.0, 1.0);
        let options = BinaryCrossEntropy {
            weight: Some(rng.vec(len, 0.0, 2.0)),
            reduction: r,
        };
        let (p2, t2) = (p.clone(), t.clone());
        out.push(case(
            format!("bce weight, p in {{0, 1}} {len} {}", reduction_name(r)),
            move |ctx| {
                Box::pin(async move {
                    // Exact 0 and 1 have a clamped loss but an unbounded-by-clamp gradient; compare the
                    // gradient only away from them.
                    let input = || Input::new(&p2, [p2.len()]).with_grad();
                    let mut pair = both(ctx, &options, input, &t2[..]).await?;
                    drop_grad(&mut pair, 0..2);
                    Ok(pair)
                })
            },
        ));
        let mut x = rng.vec(len, -30.0, 30.0);
        x[0] = 1e4;
        x[1] = -1e4;
        // Both weights of the last dimension, repeated over the rows (PyTorch's broadcast).
        let options = BinaryCrossEntropyWithLogits {
            weight: Some(rng.vec(8, 0.0, 2.0)),
            pos_weight: Some(rng.vec(8, 0.5, 3.0)),
            reduction: r,
        };
        out.push(case(
            format!(
                "bce_with_logits weight+pos_weight (8,), |x| = 1e4 {len} {}",
                reduction_name(r)
            ),
            move |ctx| {
                Box::pin(async move {
                    both(
                        ctx,
                        &options,
                        || Input::new(&x, [x.len() / 8, 8]).with_grad(),
                        &t[..],
                    )
                    .await
                })
            },
        ));
    }
    // BCE with logits takes any finite target, as PyTorch does: targets from -3 to 4 and
    // beyond, pos_weight on both sides of 1 and below 0.
    let mut rng = Rng(230);
    let len = 10_000;
    let mut x = rng.vec(len, -30.0, 30.0);
    x[0] = 1e4;
    x[1] = -1e4;
    let mut t = rng.vec(len, -3.0, 4.0);
    t[2..6].copy_from_slice(&[-1.3, 2.5, 1e3, -1e3]);
    let options = BinaryCrossEntropyWithLogits {
        weight: None,
        pos_weight: Some(vec![-2.0, 0.5, 1.0, 3.0]),
        reduction: Reduction::None,
    };
    out.push(case(
        format!("bce_with_logits, targets outside [0, 1], pos_weight (4,) {len} none"),
        move |ctx| {
            Box::pin(async move {
                both(
                    ctx,
                    &options,
                    || Input::new(&x, [x.len() / 4, 4]).with_grad(),
                    &t[..],
                )
                .await
            })
        },
    ));
    // Sigmoid focal loss: torchvision's defaults, then alpha off with a fractional gamma, on
    // logits that reach where sigmoid saturates and beyond, with hard and soft targets.
    for (k, r) in [Reduction::None, Reduction::Mean, Reduction::Sum]
        .into_iter()
        .enumerate()
    {
        let mut rng = Rng(11 + k as u64);
        let len = 10_001;
        let mut x = rng.vec(len, -20.0, 20.0);
        x[0] = 1e4;
        x[1] = -1e4;
        let mut t = rng.vec(len, 0.0, 1.0);
        for i in (0..len).step_by(2) {
            t[i] = (i % 4 / 2) as f32;
        }
        let (alpha, gamma) = [(0.25, 2.0), (-1.0, 0.5), (0.75, 3.5)][k];
        let options = SigmoidFocalLoss {
            alpha,
            gamma,
            reduction: r,
        };
        out.push(case(
            format!(
                "focal alpha {alpha} gamma {gamma}, |x| = 1e4 {len} {}",
                reduction_name(r)
            ),
            move |ctx| {
                Box::pin(async move {
                    both(ctx, &options, || Input::new(&x, [len]).with_grad(), &t[..]).await
                })
            },
        ));
    }
}
