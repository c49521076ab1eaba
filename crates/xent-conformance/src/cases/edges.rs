//! The edge cases: ignored rows, -inf logits, C = 1, NaN through every path a row takes.

use super::*;

/// Adds this family's cases to `out`, in a fixed order.
pub(crate) fn add(out: &mut Vec<Case>) {
    // Edge cases.
    out.push(ce_case(
        "extreme logits |x| <= 1e4",
        64,
        257,
        CrossEntropy::default(),
        8,
        1e4,
    ));
    let c = 257;
    let mut rng = Rng(9);
    let mut masked = rng.vec(4 * c, -5.0, 5.0);
    masked
        .iter_mut()
        .skip(1)
        .step_by(2)
        .for_each(|v| *v = f32::NEG_INFINITY);
    let masked_targets = vec![0i64, 2, 4, 1]; // the last target is a -inf logit: loss +inf
    let none = CrossEntropy {
        reduction: Reduction::None,
        return_lse: true,
        ..Default::default()
    };
    out.push(case(
        "ce -inf masks (and a -inf target), with log-sum-exp".into(),
        move |ctx| {
            Box::pin(async move {
                let input = || Input::new(&masked, [4, c]).with_grad();
                let mut pair = both(ctx, &none, input, &masked_targets).await?;
                // The -inf target's row has an infinite loss; its gradient is compared on the others.
                drop_grad(&mut pair, 3 * c..4 * c);
                Ok(pair)
            })
        },
    ));
    let logits = Rng(10).vec(6, -2.0, 2.0);
    out.push(case(
        "ce all rows ignored, mean: NaN loss, zero gradient".into(),
        move |ctx| {
            Box::pin(async move {
                let targets = [-100i64, -100];
                let o = CrossEntropy::default();
                both(
                    ctx,
                    &o,
                    || Input::new(&logits, [2, 3]).with_grad(),
                    &targets,
                )
                .await
            })
        },
    ));
    for r in [Reduction::Mean, Reduction::Sum] {
        out.push(case(
            format!("ce empty batch {}", reduction_name(r)),
            move |ctx| {
                Box::pin(async move {
                    let o = CrossEntropy {
                        reduction: r,
                        ..Default::default()
                    };
                    let empty: [i64; 0] = [];
                    both(ctx, &o, || Input::new(&[], [0, 5]).with_grad(), &empty).await
                })
            },
        ));
    }
    let one_class = Rng(11).vec(50, -3.0, 3.0);
    out.push(case("ce C = 1".into(), move |ctx| {
        Box::pin(async move {
            let targets = vec![0u32; 50];
            let o = CrossEntropy {
                reduction: Reduction::None,
                ..Default::default()
            };
            both(
                ctx,
                &o,
                || Input::new(&one_class, [50, 1]).with_grad(),
                &targets,
            )
            .await
        })
    }));
    let mut nan_rows = Rng(12).vec(3 * 100, -3.0, 3.0);
    nan_rows[150] = f32::NAN;
    out.push(case(
        "ce NaN in a row gives that row NaN (log-sum-exp too)".into(),
        move |ctx| {
            Box::pin(async move {
                let o = CrossEntropy {
                    reduction: Reduction::None,
                    return_lse: true,
                    ..Default::default()
                };
                let targets = [5i64, 6, 7];
                let input = || Input::new(&nan_rows, [3, 100]).with_grad();
                let mut pair = both(ctx, &o, input, &targets).await?;
                // Compare gradients on the finite rows only: the NaN row's gradient is NaN in both.
                drop_grad(&mut pair, 100..200);
                Ok(pair)
            })
        },
    ));
    // A NaN through every other path a row takes: the softcap, the z-loss and the log-sum-exp
    // output on rows long enough to split, and log-softmax. Some WGSL implementations give a
    // number for exp(NaN) or drop a NaN from max (WGSL allows both), so each path keeps NaN
    // explicitly; the whole NaN row's gradient is compared (NaN in both).
    let (n, c) = (2, 65536);
    let mut split_nan = Rng(13).vec(n * c, -8.0, 8.0);
    split_nan[c + 40_000] = f32::NAN;
    out.push(case(
        format!("ce NaN in a split row, softcap 20, z-loss, log-sum-exp {n}x{c}"),
        move |ctx| {
            Box::pin(async move {
                let o = CrossEntropy {
                    reduction: Reduction::None,
                    softcap: Some(20.0),
                    z_loss: 1e-3,
                    return_lse: true,
                    ..Default::default()
                };
                let input = || Input::new(&split_nan, [n, c]).with_grad();
                both(ctx, &o, input, &[3i64, 70]).await
            })
        },
    ));
    let mut nan_logp = Rng(14).vec(4 * 300, -6.0, 6.0);
    nan_logp[310] = f32::NAN;
    let upstream = Rng(15).vec(4 * 300, -1.0, 1.0);
    out.push(case("log_softmax NaN in a row 4x300".into(), move |ctx| {
        Box::pin(async move {
            let input = || Input::new(&nan_logp, [4, 300]).with_upstream(&upstream);
            both(ctx, &LogSoftmax, input, Targets::None).await
        })
    }));
}
