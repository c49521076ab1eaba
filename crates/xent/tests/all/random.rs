//! Property tests: random shapes, options and values (extremes included) on every adapter, the
//! GPU against the float64 reference. A failure is shrunk by proptest to a minimal case.
//!
//! The comparison (`common::compare`) requires NaN where the reference is NaN and the same
//! infinity where it is infinite, so these also check the NaN policy: finite inputs give
//! finite results wherever the exact result fits in f32, and non-finite inputs give exactly
//! PyTorch's NaN and infinities.
//!
//! Cases per property: 24, or `XENT_PROPTEST_CASES`; the seed is fixed (`XENT_PROPTEST_SEED`
//! picks another).

use proptest::prelude::*;
use proptest::test_runner::Config;

#[allow(unused_imports)]
use crate::common::api::*;
use crate::common::{assert_close, assert_grad_close, contexts, proptest_config};
use xent::{
    reference, BinaryCrossEntropy, BinaryCrossEntropyWithLogits, CrossEntropy, NllLoss, Reduction,
    SigmoidFocalLoss,
};

fn config() -> Config {
    proptest_config("XENT_PROPTEST_CASES", 24)
}

/// The reference rounded to f32, as an exact f32 computation would give it (beyond f32's
/// range, an infinity).
fn in_f32(values: &[f64]) -> Vec<f64> {
    values.iter().map(|&v| f64::from(v as f32)).collect()
}

/// A logit: mostly ordinary, sometimes huge, at exp's overflow and underflow edges, or -inf
/// (a masked class).
fn logit() -> impl Strategy<Value = f32> {
    prop_oneof![
        12 => -10.0f32..10.0,
        3 => -200.0f32..200.0,
        1 => -1e30f32..1e30,
        1 => Just(0.0f32),
        1 => Just(88.8f32),
        1 => Just(-104.0f32),
        1 => Just(f32::NEG_INFINITY),
    ]
}

/// A probability, with the edges 0 and 1 and values next to them.
fn probability() -> impl Strategy<Value = f32> {
    prop_oneof![
        6 => 0.0f32..=1.0,
        1 => Just(0.0f32),
        1 => Just(1.0f32),
        1 => Just(1e-30f32),
        1 => Just(1.0f32 - f32::EPSILON / 2.0),
    ]
}

fn reduction() -> impl Strategy<Value = Reduction> {
    prop_oneof![
        Just(Reduction::Mean),
        Just(Reduction::Sum),
        Just(Reduction::None)
    ]
}

fn weights(len: usize) -> impl Strategy<Value = Option<Vec<f32>>> {
    proptest::option::of(proptest::collection::vec(0.0f32..3.0, len))
}

/// Rows and classes: short rows, rows of hundreds (read once or twice, by launch plan), and
/// empty batches.
fn shape() -> impl Strategy<Value = (usize, usize)> {
    (
        prop_oneof![3 => 1usize..40, 1 => Just(0usize)],
        prop_oneof![1usize..9, 1usize..300, 300usize..700],
    )
}

/// The upstream gradient for a reduction over `items` items.
fn upstream(reduction: Reduction, items: usize) -> impl Strategy<Value = Vec<f32>> {
    let len = match reduction {
        Reduction::None => items,
        _ => 1,
    };
    proptest::collection::vec(-2.0f32..2.0, len)
}

#[derive(Debug, Clone)]
struct CeCase {
    /// (N, C), or (N, C, P) with P positions per sample.
    shape: Vec<usize>,
    logits: Vec<f32>,
    labels: Vec<i64>,
    probs: Vec<f32>,
    options: CrossEntropy,
    upstream: Vec<f32>,
}

/// Positions per sample: 1 for an (N, C) batch, or a K-dimensional (N, C, P) one.
fn positions() -> impl Strategy<Value = usize> {
    prop_oneof![3 => Just(1usize), 1 => 2usize..8]
}

fn ce_case() -> impl Strategy<Value = CeCase> {
    (shape(), positions(), reduction())
        .prop_flat_map(|((samples, classes), positions, reduction)| {
            // K-dimensional batches of a few samples, so that they cost no more than the rest.
            let samples = if positions > 1 {
                samples.min(5)
            } else {
                samples
            };
            let rows = samples * positions;
            let label = prop_oneof![
                6 => 0..classes as i64,
                1 => Just(-100i64),
            ];
            let shape = match positions {
                1 => vec![samples, classes],
                p => vec![samples, classes, p],
            };
            (
                proptest::collection::vec(logit(), rows * classes),
                proptest::collection::vec(label, rows),
                proptest::collection::vec(probability(), rows * classes),
                weights(classes),
                (
                    prop_oneof![Just(0.0f32), 0.0f32..=1.0],
                    // A softcap from tiny to beyond every ordinary logit, or none.
                    prop_oneof![2 => Just(None), 1 => (0.01f32..100.0).prop_map(Some)],
                    prop_oneof![2 => Just(0.0f32), 1 => 0.0f32..0.1],
                ),
                upstream(reduction, rows),
                Just((shape, reduction)),
            )
        })
        .prop_map(
            |(
                logits,
                labels,
                probs,
                weight,
                (label_smoothing, softcap, z_loss),
                upstream,
                (shape, reduction),
            )| {
                CeCase {
                    shape,
                    logits,
                    labels,
                    probs,
                    options: CrossEntropy {
                        weight,
                        label_smoothing,
                        reduction,
                        softcap,
                        z_loss,
                        // The log-sum-exp output with the z-loss, which needs the same lse:
                        // no more pipeline variants to compile than the z-loss brings.
                        return_lse: z_loss > 0.0,
                        ..Default::default()
                    },
                    upstream,
                }
            },
        )
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn random_cross_entropy_matches_the_reference(case in ce_case()) {
        let CeCase { shape, logits, labels, probs, options, upstream, .. } = &case;
        let input = || grad_input(logits, shape.clone(), Some(&upstream[..]));
        let want = reference::compute(options, input(), labels).unwrap();
        let want_probs = reference::compute(options, input(), probs).unwrap();
        for ctx in contexts() {
            for (case, got, want) in [
                ("random ce", ctx.compute(options, input(), labels).unwrap(), &want),
                ("random ce probs", ctx.compute(options, input(), probs).unwrap(), &want_probs),
            ] {
                assert_close(ctx, case, got.loss.values(), &in_f32(want.loss.values()));
                let (got_grad, want_grad) = (got.grad.as_deref(), want.grad.as_deref());
                assert_grad_close(ctx, case, got_grad.unwrap(), &in_f32(want_grad.unwrap()));
                assert_eq!(got.lse.is_some(), want.lse.is_some(), "{case}");
                if let (Some(got), Some(want)) = (&got.lse, &want.lse) {
                    assert_close(ctx, &format!("{case} lse"), got, &in_f32(want));
                }
            }
        }
    }

    #[test]
    fn random_log_softmax_matches_the_reference(
        (c, logits, upstream) in shape().prop_flat_map(|(rows, classes)| (
            Just(classes),
            proptest::collection::vec(logit(), rows * classes),
            proptest::collection::vec(-2.0f32..2.0, rows * classes),
        ))
    ) {
        let want = reference::compute(&LogSoftmax, Input::new(&logits, nc(&logits, c)).with_upstream(&upstream), Targets::None).unwrap();
        for ctx in contexts() {
            let got = ctx.compute(&LogSoftmax, Input::new(&logits, nc(&logits, c)).with_upstream(&upstream), Targets::None).unwrap();
            assert_close(ctx, "random log_softmax", got.loss.values(), &in_f32(want.loss.values()));
            assert_grad_close(ctx, "random log_softmax", got.grad.as_deref().unwrap(), &in_f32(want.grad.as_deref().unwrap()));
        }
    }

    #[test]
    fn random_binary_cross_entropy_matches_the_reference(
        (input, target, weight, reduction, upstream) in (0usize..3000, reduction())
            .prop_flat_map(|(len, reduction)| (
                proptest::collection::vec(probability(), len),
                proptest::collection::vec(probability(), len),
                weights(len),
                Just(reduction),
                upstream(reduction, len),
            ))
    ) {
        let options = BinaryCrossEntropy { weight, reduction };
        let up = Some(&upstream[..]);
        let want =
            reference::compute(&options, grad_input(&input, flat(&input), up), &target).unwrap();
        for ctx in contexts() {
            let got = ctx.compute(&options, grad_input(&input, flat(&input), up), &target).unwrap();
            assert_close(ctx, "random bce", got.loss.values(), &in_f32(want.loss.values()));
            assert_grad_close(ctx, "random bce", got.grad.as_deref().unwrap(), &in_f32(want.grad.as_deref().unwrap()));
        }
    }

    #[test]
    fn random_binary_cross_entropy_with_logits_matches_the_reference(
        (input, target, weight, pos_weight, reduction, upstream) in
            (0usize..400, 1usize..8, reduction())
            .prop_flat_map(|(rows, last, reduction)| (
                proptest::collection::vec(logit(), rows * last),
                proptest::collection::vec(probability(), rows * last),
                weights(rows * last),
                weights(last),
                Just(reduction),
                upstream(reduction, rows * last),
            ))
    ) {
        let options = BinaryCrossEntropyWithLogits { weight, pos_weight, reduction };
        let up = Some(&upstream[..]);
        let want = reference::compute(&options, grad_input(&input, bce_shape(&input, &options), up), &target)
        .unwrap();
        for ctx in contexts() {
            let got = ctx
                .compute(&options, grad_input(&input, bce_shape(&input, &options), up), &target)
                .unwrap();
            assert_close(ctx, "random bce logits", got.loss.values(), &in_f32(want.loss.values()));
            assert_grad_close(ctx, "random bce logits", got.grad.as_deref().unwrap(), &in_f32(want.grad.as_deref().unwrap()));
        }
    }

    #[test]
    fn random_focal_loss_matches_the_reference(
        (input, target, alpha, gamma, reduction, upstream) in
            (0usize..2000, reduction())
            .prop_flat_map(|(len, reduction)| (
                proptest::collection::vec(logit(), len),
                proptest::collection::vec(probability(), len),
                prop_oneof![Just(-1.0f32), 0.0f32..=1.0],
                prop_oneof![Just(0.0f32), Just(2.0f32), 0.0f32..6.0],
                Just(reduction),
                upstream(reduction, len),
            ))
    ) {
        let options = SigmoidFocalLoss { alpha, gamma, reduction };
        let up = Some(&upstream[..]);
        let want = reference::compute(&options, grad_input(&input, flat(&input), up), &target).unwrap();
        for ctx in contexts() {
            let got = ctx
                .compute(&options, grad_input(&input, flat(&input), up), &target)
                .unwrap();
            assert_close(ctx, "random focal", got.loss.values(), &in_f32(want.loss.values()));
            assert_grad_close(ctx, "random focal", got.grad.as_deref().unwrap(), &in_f32(want.grad.as_deref().unwrap()));
        }
    }

    /// The NLL loss takes its input as given: any value, -inf included, as log-probabilities.
    #[test]
    fn random_nll_loss_matches_the_reference(
        (shape, input, labels, weight, ignore_index, reduction, upstream) in
            (shape(), positions(), reduction())
            .prop_flat_map(|((samples, classes), positions, reduction)| {
                let samples = if positions > 1 { samples.min(5) } else { samples };
                let rows = samples * positions;
                let shape = match positions {
                    1 => vec![samples, classes],
                    p => vec![samples, classes, p],
                };
                let label = prop_oneof![6 => 0..classes as i64, 1 => Just(-100i64)];
                (
                    Just(shape),
                    proptest::collection::vec(logit(), rows * classes),
                    proptest::collection::vec(label, rows),
                    weights(classes),
                    prop_oneof![Just(-100i64), 0..classes as i64],
                    Just(reduction),
                    upstream(reduction, rows),
                )
            })
    ) {
        let labels: Vec<i64> =
            labels.iter().map(|&l| if l == -100 { ignore_index } else { l }).collect();
        let options = NllLoss { weight, ignore_index, reduction };
        let input = || grad_input(&input, shape.clone(), Some(&upstream[..]));
        let want = reference::compute(&options, input(), &labels).unwrap();
        for ctx in contexts() {
            let got = ctx.compute(&options, input(), &labels).unwrap();
            assert_close(ctx, "random nll", got.loss.values(), &in_f32(want.loss.values()));
            assert_grad_close(ctx, "random nll", got.grad.as_deref().unwrap(), &in_f32(want.grad.as_deref().unwrap()));
        }
    }
}
