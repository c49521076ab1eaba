//! The logit softcap and the z-loss of cross-entropy on the GPU against the float64 reference:
//! on every row path (rows cached in registers, long rows read twice, rows split across
//! workgroups, chunks), each alone and together, with class indices and probabilities, weights
//! and smoothing, the gradient separate and in place, and at infinite logits; bad values are
//! errors.

#[allow(unused_imports)]
use crate::common::api::*;
use crate::common::{assert_close, assert_grad_close, contexts, with_binding_limit, Rng};
use xent::{reference, CrossEntropy, Error, Reduction};

const REDUCTIONS: [Reduction; 3] = [Reduction::None, Reduction::Mean, Reduction::Sum];

fn check_both_targets(
    ctx: &xent::Context,
    options: &CrossEntropy,
    x: &[f32],
    classes: usize,
    rng: &mut Rng,
) {
    let rows = x.len() / classes;
    let labels: Vec<i64> = (0..rows)
        .map(|n| {
            if n % 9 == 4 {
                options.ignore_index
            } else {
                rng.below(classes) as i64
            }
        })
        .collect();
    let probs = rng.distributions(rows, classes);
    let case = format!("softcap {rows}x{classes} {options:?}");
    let shape = [rows, classes];
    let got = ctx
        .compute(options, grad_input(x, shape, None), &labels)
        .unwrap();
    let want = reference::compute(options, grad_input(x, shape, None), &labels).unwrap();
    assert_close(ctx, &case, got.loss.values(), want.loss.values());
    let want_grad = want.grad.unwrap();
    assert_grad_close(ctx, &case, &got.grad.unwrap(), &want_grad);
    // In place: the same gradient over the logits.
    let mut over = x.to_vec();
    ctx.compute(options, overwritten(&mut over, classes, None), &labels)
        .unwrap();
    assert_grad_close(ctx, &format!("{case} in place"), &over, &want_grad);
    let got = ctx
        .compute(options, grad_input(x, shape, None), &probs[..])
        .unwrap();
    let want = reference::compute(options, grad_input(x, shape, None), &probs[..]).unwrap();
    let case = format!("{case} probabilities");
    assert_close(ctx, &case, got.loss.values(), want.loss.values());
    assert_grad_close(ctx, &case, &got.grad.unwrap(), &want.grad.unwrap());
}

#[test]
fn softcap_and_z_loss_match_the_reference_on_every_row_path() {
    let mut rng = Rng::new(98);
    for whole in contexts() {
        let cut = with_binding_limit(whole, 64 << 10);
        // Short rows (cached), long rows (read twice), few long rows (split), and chunks.
        for (rows, classes, ctx) in [
            (333, 7, whole),
            (16, 3000, whole),
            (2, 20000, whole),
            (900, 37, &cut),
        ] {
            let x = rng.vec(rows * classes, -90.0, 90.0);
            for (k, reduction) in REDUCTIONS.into_iter().enumerate() {
                let options = CrossEntropy {
                    weight: (k != 1).then(|| rng.vec(classes, 0.2, 2.0)),
                    label_smoothing: [0.0, 0.1, 0.3][k],
                    reduction,
                    softcap: [Some(30.0), None, Some(0.5)][k],
                    z_loss: [1e-4, 0.01, 0.0][k],
                    ..Default::default()
                };
                check_both_targets(ctx, &options, &x, classes, &mut rng);
            }
        }
    }
}

/// A softcapped infinite logit is +-S: finite losses, and a zero gradient through it.
#[test]
fn softcap_takes_infinite_logits_to_its_bounds() {
    let x = [
        f32::INFINITY,
        0.5,
        f32::NEG_INFINITY,
        -1.0,
        2.0,
        f32::NEG_INFINITY,
    ];
    let options = CrossEntropy {
        softcap: Some(10.0),
        reduction: Reduction::None,
        ..Default::default()
    };
    for ctx in contexts() {
        let got = ctx
            .compute(&options, grad_input(&x, [2, 3], None), &[0u32, 2])
            .unwrap();
        let want = reference::compute(&options, grad_input(&x, [2, 3], None), &[0u32, 2]).unwrap();
        assert!(
            got.loss.values().iter().all(|v| v.is_finite()),
            "{:?}",
            got.loss
        );
        assert_close(ctx, "softcap inf", got.loss.values(), want.loss.values());
        assert_grad_close(ctx, "softcap inf", &got.grad.unwrap(), &want.grad.unwrap());
    }
}

#[test]
fn a_z_loss_must_be_finite_and_not_negative() {
    let ctx = &contexts()[0];
    for z in [-1e-3f32, f32::NAN, f32::INFINITY] {
        let options = CrossEntropy {
            z_loss: z,
            ..Default::default()
        };
        let got = ctx.compute(&options, Input::new(&[0.0f32, 1.0], [1, 2]), &[0u32]);
        assert!(
            matches!(got, Err(Error::InvalidOption { name: "z_loss", .. })),
            "{z}: {:?}",
            got.map(|o| o.loss)
        );
    }
}

#[test]
fn a_softcap_must_be_finite_and_positive() {
    let ctx = &contexts()[0];
    for s in [0.0f32, -1.0, f32::NAN, f32::INFINITY] {
        let options = CrossEntropy {
            softcap: Some(s),
            ..Default::default()
        };
        let got = ctx.compute(&options, Input::new(&[0.0f32, 1.0], [1, 2]), &[0u32]);
        assert!(
            matches!(
                got,
                Err(Error::InvalidOption {
                    name: "softcap",
                    ..
                })
            ),
            "{s}: {:?}",
            got.map(|o| o.loss)
        );
    }
}
