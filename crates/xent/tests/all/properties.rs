//! Properties: binary cross-entropy is two-class categorical cross-entropy (the seed's
//! formula (2) is formula (1) with C = 2), and repeated runs are bit-identical.

#[allow(unused_imports)]
use crate::common::api::*;
use crate::common::{assert_close, contexts, Rng};
use xent::{BinaryCrossEntropy, BinaryCrossEntropyWithLogits, CrossEntropy, Reduction};

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
            let ce_opts = CrossEntropy {
                reduction,
                ..Default::default()
            };
            let ce_x = ctx
                .compute(&ce_opts, Input::new(&logits_x, nc(&logits_x, 2)), &targets)
                .map(|o| o.loss)
                .unwrap();
            let bce_x = ctx
                .compute(
                    &BinaryCrossEntropyWithLogits {
                        reduction,
                        ..Default::default()
                    },
                    Input::new(
                        &x,
                        bce_shape(
                            &x,
                            &BinaryCrossEntropyWithLogits {
                                reduction,
                                ..Default::default()
                            },
                        ),
                    ),
                    &t,
                )
                .map(|o| o.loss)
                .unwrap();
            let want: Vec<f64> = ce_x.values().iter().map(|&v| f64::from(v)).collect();
            assert_close(
                ctx,
                &format!("(2) = (1), logits, {reduction:?}"),
                bce_x.values(),
                &want,
            );

            let ce_p = ctx
                .compute(&ce_opts, Input::new(&logits_p, nc(&logits_p, 2)), &targets)
                .map(|o| o.loss)
                .unwrap();
            let bce_p = ctx
                .compute(
                    &BinaryCrossEntropy {
                        weight: None,
                        reduction,
                    },
                    Input::new(&p, flat(&p)),
                    &t,
                )
                .map(|o| o.loss)
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
            .compute(
                &CrossEntropy::default(),
                Input::new(&logits_x, nc(&logits_x, 2)),
                &labels,
            )
            .map(|o| o.loss)
            .unwrap();
        let bce = ctx
            .compute(
                &BinaryCrossEntropyWithLogits::default(),
                Input::new(&x, bce_shape(&x, &BinaryCrossEntropyWithLogits::default())),
                &hard,
            )
            .map(|o| o.loss)
            .unwrap();
        assert_close(
            ctx,
            "(2) = (1), hard labels",
            bce.values(),
            &[f64::from(ce.values()[0])],
        );
    }
}

/// The bits of every value of a result, in order, folded into one number (FNV-1a).
fn digest(values: &[f32]) -> u64 {
    values.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, v| {
        (h ^ u64::from(v.to_bits())).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Batch reductions are fixed-order trees and gradients have one writer per element: the same
/// call gives the same bits every time, for every loss and gradient (20 repeats per adapter).
#[test]
fn repeated_runs_are_bit_identical() {
    let mut rng = Rng::new(12);
    // 10000 rows of 100: 40 to 300 workgroups (by launch plan) feed each reduction.
    let (n, c) = (10_000, 100);
    let logits = rng.vec(n * c, -10.0, 10.0);
    let labels: Vec<u32> = (0..n).map(|_| rng.below(c) as u32).collect();
    let probs = rng.distributions(n, c);
    let p = rng.vec(n * c, 0.0, 1.0);
    let options = CrossEntropy {
        label_smoothing: 0.1,
        weight: Some(rng.vec(c, 0.5, 2.0)),
        ..Default::default()
    };
    let bce = BinaryCrossEntropy::default();
    let bce_logits = BinaryCrossEntropyWithLogits::default();
    let up = Some(&[0.75f32][..]);
    for ctx in contexts() {
        let run = || -> Vec<(&str, u64)> {
            let ce = ctx
                .compute(&options, grad_input(&logits, nc(&logits, c), up), &labels)
                .unwrap();
            let ce_probs = ctx
                .compute(&options, grad_input(&logits, nc(&logits, c), up), &probs)
                .unwrap();
            let b = ctx
                .compute(&bce, grad_input(&p, flat(&p), up), &probs)
                .unwrap();
            let bl = ctx
                .compute(
                    &bce_logits,
                    grad_input(&logits, bce_shape(&logits, &bce_logits), up),
                    &p,
                )
                .unwrap();
            let ls = ctx
                .compute(
                    &LogSoftmax,
                    Input::new(&logits, nc(&logits, c)).with_upstream(&p),
                    Targets::None,
                )
                .unwrap();
            vec![
                ("ce loss", digest(ce.loss.values())),
                ("ce grad", digest(ce.grad.as_deref().unwrap())),
                ("ce probs loss", digest(ce_probs.loss.values())),
                ("ce probs grad", digest(ce_probs.grad.as_deref().unwrap())),
                ("bce loss", digest(b.loss.values())),
                ("bce grad", digest(b.grad.as_deref().unwrap())),
                ("bce logits loss", digest(bl.loss.values())),
                ("bce logits grad", digest(bl.grad.as_deref().unwrap())),
                ("log_softmax", digest(ls.loss.values())),
                ("log_softmax grad", digest(ls.grad.as_deref().unwrap())),
            ]
        };
        let first = run();
        for repeat in 1..20 {
            assert_eq!(
                run(),
                first,
                "repeat {repeat} differs from the first on {}",
                crate::common::name(ctx)
            );
        }
    }
}

/// The edge of "finite inputs never give inf where the exact result fits": label smoothing
/// (and probability targets) need a row's weighted spread sum_c q_c (max - x_c) to fit in f32,
/// and a `Mean` needs the sum of the items' losses to fit. Just inside, the GPU gives the
/// reference's finite value; just outside, inf, never a plausible finite number.
#[test]
fn finite_inputs_stay_finite_up_to_the_stated_domain_edge() {
    let smoothing = CrossEntropy {
        label_smoothing: 0.5,
        ..Default::default()
    };
    let logits_mean = BinaryCrossEntropyWithLogits::default();
    for ctx in contexts() {
        for (spread, fits) in [(1.5e38f32, true), (3e38, false)] {
            // Row 0's spread is 2 * spread; the reference's mean loss is spread / 2 + ln 2 / 2.
            let x = [spread, -spread, 0.0, 0.0];
            let got = ctx
                .compute(&smoothing, Input::new(&x, [2, 2]), &[0i64, 0])
                .unwrap();
            let want =
                xent::reference::compute(&smoothing, Input::new(&x, [2, 2]), &[0i64, 0]).unwrap();
            let case = format!("smoothing, spread {}", 2.0 * spread);
            check_edge(
                ctx,
                &case,
                got.loss.values()[0],
                want.loss.values()[0],
                fits,
            );

            // Two losses of `spread` each: their sum fits only inside the domain.
            let x = [-spread, spread];
            let t = [1.0f32, 0.0];
            let got = ctx.compute(&logits_mean, Input::new(&x, [2]), &t).unwrap();
            let want = xent::reference::compute(&logits_mean, Input::new(&x, [2]), &t).unwrap();
            let case = format!("bce with logits mean, sum {}", 2.0 * spread);
            check_edge(
                ctx,
                &case,
                got.loss.values()[0],
                want.loss.values()[0],
                fits,
            );
        }
    }
}

/// Inside the domain (`fits`) the value matches the reference; outside it is +inf.
fn check_edge(ctx: &xent::Context, case: &str, got: f32, want: f64, fits: bool) {
    assert!(
        want.is_finite() && want < f64::from(f32::MAX),
        "{case}: the reference fits"
    );
    if fits {
        assert_close(ctx, case, &[got], &[want]);
    } else {
        assert_eq!(got, f32::INFINITY, "{case}: outside the domain");
    }
}
