//! GPU gradients against the float64 reference, on every adapter, for every loss, option
//! combination and reduction, over the foundation's shape list.

#[allow(unused_imports)]
use crate::common::api::*;
use crate::common::{assert_grad_close, assert_loss, contexts, Rng};
use xent::{
    reference, BinaryCrossEntropy, BinaryCrossEntropyWithLogits, CrossEntropy, Loss, Reduction,
};

const REDUCTIONS: [Reduction; 3] = [Reduction::None, Reduction::Mean, Reduction::Sum];

/// (N, C) shapes: C = 1, 2, 255, 256, 257, 32768 with N = 0, 1, 33, and N = 70000 for short
/// rows; 48 x 32768 for rows too long to keep in registers.
fn shapes() -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    for c in [1, 2, 255, 256, 257, 32768] {
        for n in [0, 1, 33, 70_000] {
            if n * c <= 20_000_000 {
                out.push((n, c));
            }
        }
    }
    out.push((48, 32768));
    out
}

/// Upstream gradient: one value for a reduced loss, one per item for `None`.
fn upstream(rng: &mut Rng, reduction: Reduction, items: usize) -> Vec<f32> {
    let len = if reduction == Reduction::None {
        items
    } else {
        1
    };
    rng.vec(len, 0.5, 2.0)
}

#[test]
fn cross_entropy_gradients_match_reference() {
    let mut rng = Rng::new(21);
    for ctx in contexts() {
        for (n, c) in shapes() {
            let logits = rng.vec(n * c, -10.0, 10.0);
            let targets: Vec<i64> = (0..n)
                .map(|i| {
                    if i % 7 == 3 {
                        1 % c as i64
                    } else {
                        rng.below(c) as i64
                    }
                })
                .collect();
            let full = n * c <= 2_000_000;
            for with_weight in [false, true] {
                for smoothing in [0.0f32, 0.1] {
                    for reduction in REDUCTIONS {
                        if !(full || with_weight && smoothing > 0.0) {
                            continue;
                        }
                        // ignore_index = 1 % C: a valid class id, so some rows are ignored.
                        let options = CrossEntropy {
                            weight: with_weight.then(|| rng.vec(c, 0.1, 2.0)),
                            ignore_index: 1 % c as i64,
                            label_smoothing: smoothing,
                            reduction,
                            softcap: None,
                            z_loss: 0.0,
                            return_lse: false,
                        };
                        let u = upstream(&mut rng, reduction, n);
                        let case = format!("cross_entropy_and_grad {n}x{c} {options:?}");
                        let got = ctx
                            .compute(
                                &options,
                                grad_input(&logits, nc(&logits, c), Some(&u)),
                                &targets,
                            )
                            .unwrap();
                        let want = reference::compute(
                            &options,
                            grad_input(&logits, nc(&logits, c), Some(&u)),
                            &targets,
                        )
                        .unwrap();
                        assert_loss(ctx, &case, &got.loss, &want.loss);
                        assert_grad_close(
                            ctx,
                            &case,
                            got.grad.as_deref().unwrap(),
                            want.grad.as_deref().unwrap(),
                        );
                        // Ignored rows get exactly zero.
                        for (row, y) in targets.iter().enumerate() {
                            if *y == options.ignore_index {
                                assert!(got.grad.as_deref().unwrap()[row * c..(row + 1) * c]
                                    .iter()
                                    .all(|g| *g == 0.0));
                            }
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn cross_entropy_probs_gradients_match_reference() {
    let mut rng = Rng::new(22);
    for ctx in contexts() {
        for (n, c) in shapes() {
            let logits = rng.vec(n * c, -10.0, 10.0);
            let targets = rng.distributions(n, c);
            // Large batches run the weighted options only: the same pipelines run unweighted
            // at the small shapes of the same C.
            let full = n * c <= 2_000_000;
            for with_weight in [false, true] {
                for reduction in REDUCTIONS {
                    if !(full || with_weight) {
                        continue;
                    }
                    let options = CrossEntropy {
                        weight: with_weight.then(|| rng.vec(c, 0.1, 2.0)),
                        label_smoothing: 0.05,
                        reduction,
                        ..Default::default()
                    };
                    let u = upstream(&mut rng, reduction, n);
                    let case = format!("cross_entropy_probs_and_grad {n}x{c} {options:?}");
                    let got = ctx
                        .compute(
                            &options,
                            grad_input(&logits, nc(&logits, c), Some(&u)),
                            &targets,
                        )
                        .unwrap();
                    let want = reference::compute(
                        &options,
                        grad_input(&logits, nc(&logits, c), Some(&u)),
                        &targets,
                    )
                    .unwrap();
                    assert_loss(ctx, &case, &got.loss, &want.loss);
                    assert_grad_close(
                        ctx,
                        &case,
                        got.grad.as_deref().unwrap(),
                        want.grad.as_deref().unwrap(),
                    );
                }
            }
        }
    }
}

#[test]
fn log_softmax_gradients_match_reference() {
    let mut rng = Rng::new(23);
    for ctx in contexts() {
        for (n, c) in shapes() {
            if n * c > 5_000_000 {
                continue;
            }
            let logits = rng.vec(n * c, -10.0, 10.0);
            let g = rng.vec(n * c, -1.0, 1.0);
            let case = format!("log_softmax_and_grad {n}x{c}");
            let got = ctx
                .compute(
                    &LogSoftmax,
                    Input::new(&logits, nc(&logits, c)).with_upstream(&g),
                    Targets::None,
                )
                .unwrap();
            let want = reference::compute(
                &LogSoftmax,
                Input::new(&logits, nc(&logits, c)).with_upstream(&g),
                Targets::None,
            )
            .unwrap();
            assert_loss(ctx, &case, &got.loss, &want.loss);
            assert_grad_close(
                ctx,
                &case,
                got.grad.as_deref().unwrap(),
                want.grad.as_deref().unwrap(),
            );
        }
    }
}

#[test]
fn binary_gradients_match_reference() {
    let mut rng = Rng::new(24);
    for ctx in contexts() {
        for len in [0usize, 1, 1000, 4097, 300_000] {
            let p = rng.vec(len, 0.001, 0.999);
            let x = rng.vec(len, -30.0, 30.0);
            let t = rng.vec(len, 0.0, 1.0);
            let last_dim = if len % 4 == 0 && len > 0 { 4 } else { 1 };
            for with_weight in [false, true] {
                for reduction in REDUCTIONS {
                    let weight = with_weight.then(|| rng.vec(len, 0.0, 3.0));
                    let u = upstream(&mut rng, reduction, len);
                    let options = BinaryCrossEntropy {
                        weight: weight.clone(),
                        reduction,
                    };
                    let case = format!("binary_cross_entropy_and_grad {len} {options:?}");
                    let got = ctx
                        .compute(&options, grad_input(&p, flat(&p), Some(&u)), &t)
                        .unwrap();
                    let want = reference::compute(&options, grad_input(&p, flat(&p), Some(&u)), &t)
                        .unwrap();
                    assert_loss(ctx, &case, &got.loss, &want.loss);
                    assert_grad_close(
                        ctx,
                        &case,
                        got.grad.as_deref().unwrap(),
                        want.grad.as_deref().unwrap(),
                    );

                    let options = BinaryCrossEntropyWithLogits {
                        weight,
                        pos_weight: Some(rng.vec(last_dim, 0.5, 4.0)),
                        reduction,
                    };
                    let case = format!("bce_with_logits_and_grad {len} {reduction:?}");
                    let got = ctx
                        .compute(
                            &options,
                            grad_input(&x, bce_shape(&x, &options), Some(&u)),
                            &t,
                        )
                        .unwrap();
                    let want = reference::compute(
                        &options,
                        grad_input(&x, bce_shape(&x, &options), Some(&u)),
                        &t,
                    )
                    .unwrap();
                    assert_loss(ctx, &case, &got.loss, &want.loss);
                    assert_grad_close(
                        ctx,
                        &case,
                        got.grad.as_deref().unwrap(),
                        want.grad.as_deref().unwrap(),
                    );
                }
            }
        }
    }
}

#[test]
fn in_place_gradients_equal_separate_ones() {
    let mut rng = Rng::new(25);
    for ctx in contexts() {
        for (n, c) in [(300, 10), (20, 5000)] {
            let logits = rng.vec(n * c, -8.0, 8.0);
            let targets: Vec<u32> = (0..n).map(|_| rng.below(c) as u32).collect();
            let probs = rng.distributions(n, c);
            let options = CrossEntropy {
                label_smoothing: 0.1,
                ..Default::default()
            };
            let separate = ctx
                .compute(
                    &options,
                    grad_input(&logits, nc(&logits, c), None),
                    &targets,
                )
                .unwrap();
            let mut buffer = logits.clone();
            let loss = ctx
                .compute(&options, overwritten(&mut buffer, c, None), &targets)
                .map(|o| o.loss)
                .unwrap();
            assert_eq!(loss, separate.loss, "{n}x{c}");
            assert_eq!(
                buffer,
                separate.grad.as_deref().unwrap(),
                "{n}x{c}: in-place gradient"
            );

            let separate = ctx
                .compute(&options, grad_input(&logits, nc(&logits, c), None), &probs)
                .unwrap();
            let mut buffer = logits.clone();
            let loss = ctx
                .compute(&options, overwritten(&mut buffer, c, None), &probs)
                .map(|o| o.loss)
                .unwrap();
            assert_eq!(loss, separate.loss, "{n}x{c} probs");
            assert_eq!(
                buffer,
                separate.grad.as_deref().unwrap(),
                "{n}x{c} probs: in-place gradient"
            );
        }
    }
}

#[test]
fn all_ignored_mean_gives_nan_loss_and_zero_gradient() {
    for ctx in contexts() {
        let logits = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0];
        let got = ctx
            .compute(
                &CrossEntropy::default(),
                grad_input(&logits, nc(&logits, 3), None),
                &[-100i64, -100],
            )
            .unwrap();
        assert!(got.loss.scalar().unwrap().is_nan());
        assert_eq!(got.grad.as_deref().unwrap(), vec![0.0; 6]);
        let empty: [u32; 0] = [];
        let got = ctx
            .compute(
                &CrossEntropy::default(),
                grad_input(&[], [0, 3], None),
                &empty,
            )
            .unwrap();
        assert!(got.loss.scalar().unwrap().is_nan());
        assert!(got.grad.as_deref().unwrap().is_empty());
        assert_eq!(
            ctx.compute(
                &CrossEntropy {
                    reduction: Reduction::None,
                    ..Default::default()
                },
                grad_input(&logits, nc(&logits, 3), Some(&[1.0])),
                &[0u32, 1]
            )
            .unwrap_err(),
            xent::Error::ShapeMismatch {
                what: "upstream",
                expected: 2,
                got: 1,
                hint: "one upstream gradient per row for reduction None".into()
            }
        );
        let _: Loss = got.loss;
    }
}
