//! Sigmoid focal loss on the GPU against the float64 reference: every alpha and gamma case
//! (alpha off, 0, inside and at 1; gamma 0, fractional, integer, large) with every reduction,
//! at odd sizes, whole and cut into chunks; extreme and infinite logits; bad options.

#[allow(unused_imports)]
use crate::common::api::*;
use crate::common::{assert_close, assert_grad_close, contexts, with_binding_limit, Rng};
use xent::{reference, Error, Reduction, SigmoidFocalLoss};

const REDUCTIONS: [Reduction; 3] = [Reduction::None, Reduction::Mean, Reduction::Sum];
const ALPHAS: [f32; 4] = [0.25, -1.0, 1.0, 0.6];
const GAMMAS: [f32; 4] = [2.0, 0.0, 0.5, 3.7];

/// Logits in [-12, 12] and targets soft, with hard 0 and 1 on every third element.
fn batch(rng: &mut Rng, len: usize) -> (Vec<f32>, Vec<f32>) {
    let x = rng.vec(len, -12.0, 12.0);
    let mut t = rng.vec(len, 0.0, 1.0);
    for i in (0..len).step_by(3) {
        t[i] = (i % 2) as f32;
    }
    (x, t)
}

fn assert_focal(ctx: &xent::Context, options: &SigmoidFocalLoss, x: &[f32], t: &[f32]) {
    let case = format!("focal {} {options:?}", x.len());
    let input = || grad_input(x, flat(x), None);
    let got = ctx.compute(options, input(), t).unwrap();
    let want = reference::compute(options, input(), t).unwrap();
    assert_close(ctx, &case, got.loss.values(), want.loss.values());
    assert_grad_close(ctx, &case, &got.grad.unwrap(), &want.grad.unwrap());
}

#[test]
fn focal_loss_and_gradient_match_the_reference() {
    let mut rng = Rng::new(91);
    for whole in contexts() {
        // Every alpha x gamma x reduction at sizes below and at one workgroup's block.
        for len in [1, 7, 4099] {
            let (x, t) = batch(&mut rng, len);
            for alpha in ALPHAS {
                for gamma in GAMMAS {
                    for reduction in REDUCTIONS {
                        let options = SigmoidFocalLoss {
                            alpha,
                            gamma,
                            reduction,
                        };
                        assert_focal(whole, &options, &x, &t);
                    }
                }
            }
        }
        // Cut into chunks (64 KiB bindings): each alpha and gamma once, every reduction.
        let cut = with_binding_limit(whole, 64 << 10);
        let (x, t) = batch(&mut rng, 100_003);
        for (k, reduction) in REDUCTIONS.into_iter().enumerate() {
            for (alpha, gamma) in ALPHAS.into_iter().zip(GAMMAS.into_iter().cycle().skip(k)) {
                let options = SigmoidFocalLoss {
                    alpha,
                    gamma,
                    reduction,
                };
                assert_focal(&cut, &options, &x, &t);
            }
        }
    }
}

/// Logits at the edges: where sigmoid saturates in f32 and f64, far beyond it, and infinite,
/// against hard and soft targets; NaN and infinities only where the reference has them.
#[test]
fn focal_loss_at_extreme_logits_matches_the_reference() {
    let logits = [
        0.0f32,
        17.0,
        -17.0,
        40.0,
        -40.0,
        88.0,
        -88.0,
        104.0,
        -104.0,
        1e30,
        -1e30,
        f32::MAX,
        f32::INFINITY,
        f32::NEG_INFINITY,
    ];
    let mut x = Vec::new();
    let mut t = Vec::new();
    for &v in &logits {
        for target in [0.0f32, 1.0, 0.3] {
            x.push(v);
            t.push(target);
        }
    }
    for ctx in contexts() {
        for alpha in ALPHAS {
            for gamma in GAMMAS {
                let options = SigmoidFocalLoss {
                    alpha,
                    gamma,
                    reduction: Reduction::None,
                };
                assert_focal(ctx, &options, &x, &t);
            }
        }
    }
}

#[test]
fn focal_options_and_targets_are_checked() {
    let ctx = &contexts()[0];
    let x = [0.5f32, -1.0];
    for (alpha, gamma, name) in [
        (0.25, -1.0, "gamma"),
        (0.25, f32::NAN, "gamma"),
        (f32::INFINITY, 2.0, "alpha"),
    ] {
        let options = SigmoidFocalLoss {
            alpha,
            gamma,
            ..Default::default()
        };
        for got in [
            ctx.compute(&options, Input::new(&x, [2]), &[1.0f32, 0.0])
                .map(drop),
            reference::compute(&options, Input::new(&x, [2]), &[1.0f32, 0.0]).map(drop),
        ] {
            assert!(
                matches!(&got, Err(Error::InvalidOption { name: n, .. }) if *n == name),
                "{got:?}"
            );
        }
    }
    let got = ctx.compute(
        &SigmoidFocalLoss::default(),
        Input::new(&x, [2]),
        &[1.0f32, 1.5],
    );
    assert!(
        matches!(got, Err(Error::ProbabilityOutOfRange { index: 1, .. })),
        "{got:?}"
    );
}
