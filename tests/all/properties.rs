//! Properties: binary cross-entropy is two-class categorical cross-entropy (the seed's
//! formula (2) is formula (1) with C = 2), and repeated runs are bit-identical.

use crate::common::{assert_close, contexts, Rng};
use xent::{BceOptions, BceWithLogitsOptions, CrossEntropyOptions, Reduction};

/// With classes {positive, negative}, logits [x, 0] and targets [t, 1 - t], categorical
/// cross-entropy is BCE with logits x (softmax([x, 0])[0] = sigmoid(x)); with logits
/// [log p, log(1 - p)] it is BCE on the probability p.
#[test]
fn binary_is_categorical_with_two_classes() {
    let mut rng = Rng::new(11);
    let n = 5000;
    let x = rng.vec(n, -12.0, 12.0);
    let p = rng.vec(n, 0.001, 0.999);
    let t = rng.vec(n, 0.0, 1.0);
    let two_class = |a: &[f32], b: &[f32]| -> Vec<f32> {
        a.iter().zip(b).flat_map(|(&u, &v)| [u, v]).collect()
    };
    let zeros = vec![0.0; n];
    let one_minus_t: Vec<f32> = t.iter().map(|v| 1.0 - v).collect();
    let targets = two_class(&t, &one_minus_t);
    let logits_x = two_class(&x, &zeros);
    let log_p: Vec<f32> = p.iter().map(|v| v.ln()).collect();
    let log_1mp: Vec<f32> = p.iter().map(|v| (-v).ln_1p()).collect();
    let logits_p = two_class(&log_p, &log_1mp);
    for ctx in contexts() {
        for reduction in [Reduction::None, Reduction::Mean, Reduction::Sum] {
            let ce_opts = CrossEntropyOptions {
                reduction,
                ..Default::default()
            };
            let ce_x = ctx
                .cross_entropy_probs(&logits_x, 2, &targets, &ce_opts)
                .unwrap();
            let bce_x = ctx
                .binary_cross_entropy_with_logits(
                    &x,
                    &t,
                    &BceWithLogitsOptions {
                        reduction,
                        ..Default::default()
                    },
                )
                .unwrap();
            let want: Vec<f64> = ce_x.values().iter().map(|&v| f64::from(v)).collect();
            assert_close(
                ctx,
                &format!("(2) = (1), logits, {reduction:?}"),
                bce_x.values(),
                &want,
            );

            let ce_p = ctx
                .cross_entropy_probs(&logits_p, 2, &targets, &ce_opts)
                .unwrap();
            let bce_p = ctx
                .binary_cross_entropy(
                    &p,
                    &t,
                    &BceOptions {
                        weight: None,
                        reduction,
                    },
                )
                .unwrap();
            let want: Vec<f64> = ce_p.values().iter().map(|&v| f64::from(v)).collect();
            assert_close(
                ctx,
                &format!("(2) = (1), probabilities, {reduction:?}"),
                bce_p.values(),
                &want,
            );
        }
        // Hard targets: class-index CE with label 0 (positive) or 1 (negative).
        let hard: Vec<f32> = t.iter().map(|v| v.round()).collect();
        let labels: Vec<u32> = hard.iter().map(|&v| if v == 1.0 { 0 } else { 1 }).collect();
        let ce = ctx
            .cross_entropy(&logits_x, 2, &labels, &CrossEntropyOptions::default())
            .unwrap();
        let bce = ctx
            .binary_cross_entropy_with_logits(&x, &hard, &BceWithLogitsOptions::default())
            .unwrap();
        assert_close(
            ctx,
            "(2) = (1), hard labels",
            bce.values(),
            &[f64::from(ce.values()[0])],
        );
    }
}

/// Batch reductions are fixed-order trees: the same call gives the same bits every time.
#[test]
fn repeated_runs_are_bit_identical() {
    let mut rng = Rng::new(12);
    let (n, c) = (20_000, 100);
    let logits = rng.vec(n * c, -10.0, 10.0);
    let labels: Vec<u32> = (0..n).map(|_| rng.below(c) as u32).collect();
    let probs = rng.distributions(n, c);
    let p = rng.vec(n * c, 0.0, 1.0);
    let options = CrossEntropyOptions {
        label_smoothing: 0.1,
        ..Default::default()
    };
    for ctx in contexts() {
        let run = || {
            [
                ctx.cross_entropy(&logits, c, &labels, &options)
                    .unwrap()
                    .values()[0],
                ctx.cross_entropy_probs(&logits, c, &probs, &options)
                    .unwrap()
                    .values()[0],
                ctx.binary_cross_entropy(&p, &probs, &BceOptions::default())
                    .unwrap()
                    .values()[0],
                ctx.binary_cross_entropy_with_logits(&logits, &p, &Default::default())
                    .unwrap()
                    .values()[0],
            ]
            .map(f32::to_bits)
        };
        let first = run();
        for _ in 0..4 {
            assert_eq!(
                run(),
                first,
                "results differ between runs on {}",
                crate::common::name(ctx)
            );
        }
    }
}
