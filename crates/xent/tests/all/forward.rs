//! GPU forward losses against the float64 reference, on every adapter, for every option
//! combination and reduction, over the shape list C = 1, 2, 255, 256, 257, 32768 and
//! N = 0, 1, 70000 (with N * C kept to a size lavapipe handles in seconds).

#[allow(unused_imports)]
use crate::common::api::*;
use crate::common::{
    assert_close, assert_grad_close, assert_loss, contexts, with_binding_limit, Rng,
};
use xent::{
    reference, BinaryCrossEntropy, BinaryCrossEntropyWithLogits, CrossEntropy, Loss, Reduction,
};

const CLASSES: [usize; 6] = [1, 2, 255, 256, 257, 32768];
const REDUCTIONS: [Reduction; 3] = [Reduction::None, Reduction::Mean, Reduction::Sum];

/// The (N, C) shapes tested: every C with N = 0, 1, a middle N, and N = 70000 where the batch
/// stays under about 20 M logits.
fn shapes() -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    for &c in &CLASSES {
        for n in [0, 1, 33, 70_000] {
            if n * c <= 20_000_000 {
                out.push((n, c));
            }
        }
    }
    out.push((48, 32768));
    out
}

/// Option combinations: weight, ignore_index (default or a valid class id), smoothing.
/// Large batches run the full combination only once, to keep the suite fast.
fn ce_options(classes: usize, rng: &mut Rng, full: bool) -> Vec<CrossEntropy> {
    let mut out = Vec::new();
    for with_weight in [false, true] {
        for ignore_valid_class in [false, true] {
            for smoothing in [0.0f32, 0.1] {
                let all_on = with_weight && ignore_valid_class && smoothing > 0.0;
                if !(full || all_on) {
                    continue;
                }
                for reduction in REDUCTIONS {
                    out.push(CrossEntropy {
                        weight: with_weight.then(|| rng.vec(classes, 0.1, 2.0)),
                        ignore_index: if ignore_valid_class { 0 } else { -100 },
                        label_smoothing: smoothing,
                        reduction,
                        softcap: None,
                        z_loss: 0.0,
                        return_lse: false,
                    });
                }
            }
        }
    }
    out
}

/// Labels in [0, C), about one in eight set to -100 (ignored under the default ignore_index).
fn labels(rng: &mut Rng, rows: usize, classes: usize) -> Vec<i64> {
    (0..rows)
        .map(|_| {
            if rng.below(8) == 0 {
                -100
            } else {
                rng.below(classes) as i64
            }
        })
        .collect()
}

#[test]
fn log_softmax_matches_reference() {
    let mut rng = Rng::new(1);
    for ctx in contexts() {
        for (n, c) in shapes() {
            let logits = rng.vec(n * c, -20.0, 20.0);
            let got = ctx
                .compute(
                    &LogSoftmax,
                    Input::new(&logits, nc(&logits, c)),
                    Targets::None,
                )
                .map(|o| o.loss.into_values())
                .unwrap();
            let want = reference::compute(
                &LogSoftmax,
                Input::new(&logits, nc(&logits, c)),
                Targets::None,
            )
            .map(|o| o.loss.into_values())
            .unwrap();
            assert_close(ctx, &format!("log_softmax {n}x{c}"), &got, &want);
        }
    }
}

#[test]
fn cross_entropy_indices_match_reference() {
    let mut rng = Rng::new(2);
    for ctx in contexts() {
        for (n, c) in shapes() {
            let logits = rng.vec(n * c, -10.0, 10.0);
            let mut targets = labels(&mut rng, n, c);
            let full = n * c <= 2_000_000;
            for options in ce_options(c, &mut rng, full) {
                // -100 labels are only legal while -100 is the ignore_index.
                if options.ignore_index != -100 {
                    targets
                        .iter_mut()
                        .filter(|y| **y == -100)
                        .for_each(|y| *y = 0);
                }
                let case = format!("cross_entropy {n}x{c} {options:?}");
                let got = ctx
                    .compute(&options, Input::new(&logits, nc(&logits, c)), &targets)
                    .map(|o| o.loss)
                    .unwrap();
                let want =
                    reference::compute(&options, Input::new(&logits, nc(&logits, c)), &targets)
                        .map(|o| o.loss)
                        .unwrap();
                assert_loss(ctx, &case, &got, &want);
            }
        }
    }
}

#[test]
fn cross_entropy_accepts_every_label_type() {
    let mut rng = Rng::new(3);
    let (n, c) = (50, 7);
    let logits = rng.vec(n * c, -5.0, 5.0);
    let labels: Vec<u32> = (0..n).map(|_| rng.below(c) as u32).collect();
    let as_i32: Vec<i32> = labels.iter().map(|&l| l as i32).collect();
    let as_i64: Vec<i64> = labels.iter().map(|&l| i64::from(l)).collect();
    let options = CrossEntropy::default();
    for ctx in contexts() {
        let a = ctx
            .compute(&options, Input::new(&logits, nc(&logits, c)), &labels)
            .map(|o| o.loss)
            .unwrap();
        let b = ctx
            .compute(&options, Input::new(&logits, nc(&logits, c)), &as_i32)
            .map(|o| o.loss)
            .unwrap();
        let d = ctx
            .compute(&options, Input::new(&logits, nc(&logits, c)), &as_i64)
            .map(|o| o.loss)
            .unwrap();
        assert_eq!(a, b);
        assert_eq!(a, d);
    }
}

#[test]
fn cross_entropy_probs_match_reference() {
    let mut rng = Rng::new(4);
    for ctx in contexts() {
        for (n, c) in shapes() {
            let logits = rng.vec(n * c, -10.0, 10.0);
            let targets = rng.distributions(n, c);
            let full = n * c <= 2_000_000;
            for options in ce_options(c, &mut rng, full) {
                if options.ignore_index != -100 {
                    continue; // ignore_index does not apply to probability targets
                }
                let case = format!("cross_entropy_probs {n}x{c} {options:?}");
                let got = ctx
                    .compute(&options, Input::new(&logits, nc(&logits, c)), &targets)
                    .map(|o| o.loss)
                    .unwrap();
                let want =
                    reference::compute(&options, Input::new(&logits, nc(&logits, c)), &targets)
                        .map(|o| o.loss)
                        .unwrap();
                assert_loss(ctx, &case, &got, &want);
            }
        }
    }
}

/// Element counts for BCE: empty, one, not a multiple of a workgroup's block, large.
const BCE_LENS: [usize; 5] = [0, 1, 1000, 4097, 300_000];

#[test]
fn binary_cross_entropy_matches_reference() {
    let mut rng = Rng::new(5);
    for ctx in contexts() {
        for len in BCE_LENS {
            let mut p = rng.vec(len, 0.0, 1.0);
            // Exact 0 and 1 exercise the -100 clamp; tiny and near-one values the careful logs.
            for (i, v) in [0.0, 1.0, 1e-30, 1e-7, 1.0 - 1e-7, 0.5].iter().enumerate() {
                if i < len {
                    p[i] = *v;
                }
            }
            let t = rng.vec(len, 0.0, 1.0); // soft targets
            for with_weight in [false, true] {
                for reduction in REDUCTIONS {
                    let options = BinaryCrossEntropy {
                        weight: with_weight.then(|| rng.vec(len, 0.0, 3.0)),
                        reduction,
                    };
                    let case = format!("bce len {len} weight {with_weight} {reduction:?}");
                    let got = ctx
                        .compute(&options, Input::new(&p, flat(&p)), &t)
                        .map(|o| o.loss)
                        .unwrap();
                    let want = reference::compute(&options, Input::new(&p, flat(&p)), &t)
                        .map(|o| o.loss)
                        .unwrap();
                    assert_loss(ctx, &case, &got, &want);
                }
            }
        }
    }
}

#[test]
fn binary_cross_entropy_with_logits_matches_reference() {
    let mut rng = Rng::new(6);
    for ctx in contexts() {
        for len in BCE_LENS {
            let last_dim = if len % 4 == 0 && len > 0 { 4 } else { 1 };
            let mut x = rng.vec(len, -30.0, 30.0);
            for (i, v) in [1e4, -1e4, 0.0, 1e-6, -88.0, 88.0].iter().enumerate() {
                if i < len {
                    x[i] = *v;
                }
            }
            let mut t = rng.vec(len, 0.0, 1.0);
            for (i, v) in t.iter_mut().enumerate().take(len / 2) {
                *v = (i % 2) as f32; // hard targets in the first half
            }
            for with_weight in [false, true] {
                for with_pos_weight in [false, true] {
                    for reduction in REDUCTIONS {
                        let options = BinaryCrossEntropyWithLogits {
                            weight: with_weight.then(|| rng.vec(len, 0.0, 3.0)),
                            pos_weight: with_pos_weight.then(|| rng.vec(last_dim, 0.5, 4.0)),
                            reduction,
                        };
                        let case = format!(
                            "bce_with_logits len {len} weight {with_weight} pos_weight \
                             {with_pos_weight} {reduction:?}"
                        );
                        let got = ctx
                            .compute(&options, Input::new(&x, bce_shape(&x, &options)), &t)
                            .map(|o| o.loss)
                            .unwrap();
                        let want = reference::compute(
                            &options,
                            Input::new(&x, bce_shape(&x, &options)),
                            &t,
                        )
                        .map(|o| o.loss)
                        .unwrap();
                        assert_loss(ctx, &case, &got, &want);
                    }
                }
            }
        }
    }
}

/// BCE with logits takes any finite target, as PyTorch does: targets like -1.3, 2.5 and 1e3
/// give the reference's loss and gradient (PyTorch's formula, which holds for any target) with
/// weights and pos_weight, over the tiles of every context; and at infinite logits the loss is
/// what PyTorch's expression gives there (+-inf where its two terms agree in sign, NaN where
/// they cancel), the gradient finite.
#[test]
fn bce_with_logits_takes_any_finite_target_as_pytorch() {
    let mut rng = Rng::new(61);
    let len = 4099;
    let mut x = rng.vec(len, -40.0, 40.0);
    let mut t = rng.vec(len, -3.0, 4.0);
    let edges = [-1.3f32, 2.5, 1e3, -1e3, 0.0, 1.0, -0.0, 1.5];
    for (i, &v) in edges.iter().enumerate() {
        t[i] = v;
        t[len - 1 - i] = v;
    }
    // Infinite logits against targets below 0, in [0, 1] and above 1, with pos_weight below
    // and above 1 (the sign of q = 1 + (pw - 1) t decides -inf's loss).
    for (k, &tv) in [-1.3f32, 0.0, 0.5, 1.0, 2.5].iter().enumerate() {
        x[20 + 2 * k] = f32::INFINITY;
        t[20 + 2 * k] = tv;
        x[21 + 2 * k] = f32::NEG_INFINITY;
        t[21 + 2 * k] = tv;
    }
    for ctx in contexts() {
        for (with_weight, pos_weight) in [
            (false, None),
            (true, Some((0.25, 4.0))),
            (false, Some((-2.0, 3.0))),
        ] {
            for reduction in REDUCTIONS {
                let options = BinaryCrossEntropyWithLogits {
                    weight: with_weight.then(|| rng.vec(len, 0.0, 3.0)),
                    pos_weight: pos_weight.map(|(lo, hi)| rng.vec(1, lo, hi)),
                    reduction,
                };
                let case = format!(
                    "bce_with_logits, any target, weight {with_weight} pos_weight {pos_weight:?} \
                     {reduction:?}"
                );
                let input = || Input::new(&x, bce_shape(&x, &options)).with_grad();
                let got = ctx.compute(&options, input(), &t).unwrap();
                let want = reference::compute(&options, input(), &t).unwrap();
                assert_loss(ctx, &case, &got.loss, &want.loss);
                let (got, want) = (got.grad.unwrap(), want.grad.unwrap());
                assert_grad_close(ctx, &case, &got, &want);
            }
        }
    }
}

#[test]
fn extreme_and_masked_rows_match_reference() {
    let c = 257;
    let mut rng = Rng::new(7);
    let mut rows: Vec<Vec<f32>> = vec![
        vec![3.5; c],                  // constant row: loss = log C
        rng.vec(c, -1e4, 1e4),         // huge spread
        rng.vec(c, 9_990.0, 10_000.0), // huge offset, tiny spread
        rng.vec(c, -10_000.0, -9_990.0),
    ];
    let mut masked = rng.vec(c, -5.0, 5.0);
    masked
        .iter_mut()
        .skip(1)
        .step_by(2)
        .for_each(|v| *v = f32::NEG_INFINITY);
    rows.push(masked.clone()); // -inf in non-target positions (target 0): finite loss
    rows.push(masked); // same row, target 1 (a -inf logit): loss +inf
    let mut nan_row = rng.vec(c, -5.0, 5.0);
    nan_row[100] = f32::NAN;
    rows.push(nan_row); // NaN anywhere: NaN loss
    let targets: Vec<i64> = vec![5, 17, 200, 3, 0, 1, 2];
    let logits: Vec<f32> = rows.concat();
    for ctx in contexts() {
        for smoothing in [0.0, 0.2] {
            for reduction in REDUCTIONS {
                let options = CrossEntropy {
                    label_smoothing: smoothing,
                    reduction,
                    ..Default::default()
                };
                let case = format!("extreme rows {options:?}");
                let got = ctx
                    .compute(&options, Input::new(&logits, nc(&logits, c)), &targets)
                    .map(|o| o.loss)
                    .unwrap();
                let want =
                    reference::compute(&options, Input::new(&logits, nc(&logits, c)), &targets)
                        .map(|o| o.loss)
                        .unwrap();
                assert_loss(ctx, &case, &got, &want);
                if reduction == Reduction::None && smoothing == 0.0 {
                    let v = got.values();
                    assert!(v[..5].iter().all(|l| l.is_finite()), "{case}: {v:?}");
                    assert!(
                        (v[0] - (c as f32).ln()).abs() < 1e-5,
                        "constant row: {}",
                        v[0]
                    );
                    assert_eq!(v[5], f32::INFINITY, "-inf at the target");
                    assert!(v[6].is_nan(), "NaN row");
                }
            }
        }
        let got = ctx
            .compute(
                &LogSoftmax,
                Input::new(&logits, nc(&logits, c)),
                Targets::None,
            )
            .map(|o| o.loss.into_values())
            .unwrap();
        let want = reference::compute(
            &LogSoftmax,
            Input::new(&logits, nc(&logits, c)),
            Targets::None,
        )
        .map(|o| o.loss.into_values())
        .unwrap();
        assert_close(ctx, "log_softmax extreme rows", &got, &want);
    }
}

#[test]
fn empty_and_all_ignored_batches_follow_pytorch() {
    for ctx in contexts() {
        let mean = CrossEntropy::default();
        let sum = CrossEntropy {
            reduction: Reduction::Sum,
            ..Default::default()
        };
        let none = CrossEntropy {
            reduction: Reduction::None,
            ..Default::default()
        };
        // N = 0.
        let empty: [i64; 0] = [];
        assert!(ctx
            .compute(&mean, Input::new(&[], nc(&[], 3)), &empty)
            .map(|o| o.loss)
            .unwrap()
            .scalar()
            .unwrap()
            .is_nan());
        assert_eq!(
            ctx.compute(&sum, Input::new(&[], nc(&[], 3)), &empty)
                .map(|o| o.loss)
                .unwrap(),
            Loss::Reduced(0.0)
        );
        assert_eq!(
            ctx.compute(&none, Input::new(&[], nc(&[], 3)), &empty)
                .map(|o| o.loss)
                .unwrap(),
            Loss::Unreduced(vec![])
        );
        // Every row ignored: mean is NaN (0 / 0), sum is 0.
        let logits = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let ignored = [-100i64, -100];
        let m = ctx
            .compute(&mean, Input::new(&logits, nc(&logits, 3)), &ignored)
            .map(|o| o.loss)
            .unwrap();
        assert!(m.scalar().unwrap().is_nan());
        assert_eq!(
            ctx.compute(&sum, Input::new(&logits, nc(&logits, 3)), &ignored)
                .map(|o| o.loss)
                .unwrap(),
            Loss::Reduced(0.0)
        );
        // Empty BCE: mean NaN, sum 0.
        let bce = ctx
            .compute(
                &BinaryCrossEntropy::default(),
                Input::new(&[], [0]),
                &[0f32; 0],
            )
            .map(|o| o.loss)
            .unwrap();
        assert!(bce.scalar().unwrap().is_nan());
        let bce_sum = BinaryCrossEntropyWithLogits {
            reduction: Reduction::Sum,
            ..Default::default()
        };
        let bce = ctx
            .compute(&bce_sum, Input::new(&[], [0]), &[0f32; 0])
            .map(|o| o.loss)
            .unwrap();
        assert_eq!(bce, Loss::Reduced(0.0));
        // C = 1: the only class has probability 1, so every loss is 0.
        let one = ctx
            .compute(
                &none,
                Input::new(&[7.0, -3.0], nc(&[7.0, -3.0], 1)),
                &[0u32, 0],
            )
            .map(|o| o.loss)
            .unwrap();
        assert_eq!(one, Loss::Unreduced(vec![0.0, 0.0]));
    }
}

/// BCE's weight and pos_weight broadcast as PyTorch's: a trailing part of the input's shape,
/// repeated over the leading dimensions, gives what the weight repeated to the full shape
/// gives (GPU and reference), whole and cut into chunks; other lengths are refused.
#[test]
fn bce_weights_broadcast_over_the_leading_dimensions() {
    let mut rng = Rng::new(77);
    // 105000 elements: 7 chunks at a 64 KiB binding, where a full-size weight is windowed
    // per chunk, one of (7, 3000) is repeated to full size first, and one of (3000,) bound
    // whole.
    let shape = [5usize, 7, 3000];
    let len: usize = shape.iter().product();
    let x = rng.vec(len, -6.0, 6.0);
    let p: Vec<f32> = x.iter().map(|v| 1.0 / (1.0 + (-v).exp())).collect();
    let t = rng.vec(len, 0.0, 1.0);
    let repeat = |w: &[f32]| -> Vec<f32> { (0..len).map(|i| w[i % w.len()]).collect() };
    let trailing = [len, 7 * 3000, 3000, 1];
    for whole in contexts() {
        let cut = with_binding_limit(whole, 64 << 10);
        for ctx in [whole, &cut] {
            for (k, &period) in trailing.iter().enumerate() {
                let w = rng.vec(period, 0.5, 2.0);
                let pw = rng.vec(trailing[(k + 2) % 4], 0.5, 3.0);
                for reduction in [Reduction::Sum, Reduction::None] {
                    let case = format!("weight {period}, pos_weight {}, {reduction:?}", pw.len());
                    let logits = |weight: &[f32], pos: &[f32]| BinaryCrossEntropyWithLogits {
                        weight: Some(weight.to_vec()),
                        pos_weight: Some(pos.to_vec()),
                        reduction,
                    };
                    let input = || Input::new(&x, shape).with_grad();
                    let got = ctx.compute(&logits(&w, &pw), input(), &t[..]).unwrap();
                    let full = logits(&repeat(&w), &repeat(&pw));
                    let want = reference::compute(&full, input(), &t[..]).unwrap();
                    assert_close(ctx, &case, got.loss.values(), want.loss.values());
                    assert_grad_close(ctx, &case, &got.grad.unwrap(), &want.grad.unwrap());
                    let probs = |weight: &[f32]| BinaryCrossEntropy {
                        weight: Some(weight.to_vec()),
                        reduction,
                    };
                    let input = || Input::new(&p, shape).with_grad();
                    let got = ctx.compute(&probs(&w), input(), &t[..]).unwrap();
                    let want = reference::compute(&probs(&repeat(&w)), input(), &t[..]).unwrap();
                    assert_close(ctx, &case, got.loss.values(), want.loss.values());
                    assert_grad_close(ctx, &case, &got.grad.unwrap(), &want.grad.unwrap());
                }
            }
        }
        // 7 values are no trailing part of (5, 7, 300): PyTorch refuses to broadcast them.
        let leading = BinaryCrossEntropy {
            weight: Some(vec![1.0; 7]),
            ..Default::default()
        };
        let refused = whole
            .compute(&leading, Input::new(&p, shape), &t[..])
            .unwrap_err();
        assert!(
            matches!(
                refused,
                xent::Error::ShapeMismatch {
                    what: "weight",
                    got: 7,
                    ..
                }
            ),
            "{refused}"
        );
    }
}
