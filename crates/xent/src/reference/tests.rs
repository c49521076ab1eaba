//! The reference gradients against central finite differences of the reference losses.
use super::binary::*;
use super::categorical::*;
use super::linear::*;
use super::*;
use crate::loss::linear::LinearShape;

/// A small seeded generator.
fn values(seed: u64, len: usize, lo: f64, hi: f64) -> Vec<f64> {
    let mut state = seed;
    (0..len)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            lo + (hi - lo) * ((state >> 11) as f64 / (1u64 << 53) as f64)
        })
        .collect()
}

/// The scalar a gradient is taken of: the reduced loss, or sum_i u_i l_i for `None`.
fn scalar(loss: &Loss<f64>, upstream: &[f64]) -> f64 {
    match loss {
        Loss::Reduced(v) => v * upstream[0],
        Loss::Unreduced(v) => v.iter().zip(upstream).map(|(l, u)| l * u).sum(),
    }
}

/// Asserts `grad` equals central differences of `f` at `x` (step 1e-6, error ~1e-9).
fn check(name: &str, x: &[f64], grad: &[f64], f: impl Fn(&[f64]) -> f64) {
    let h = 1e-6;
    let scale = grad.iter().fold(1e-3f64, |m, g| m.max(g.abs()));
    for i in 0..x.len() {
        let mut plus = x.to_vec();
        let mut minus = x.to_vec();
        plus[i] += h;
        minus[i] -= h;
        let numeric = (f(&plus) - f(&minus)) / (2.0 * h);
        assert!(
            (numeric - grad[i]).abs() <= 1e-6 * scale,
            "{name}: d/dx[{i}] analytic {} vs numeric {numeric}",
            grad[i]
        );
    }
}

const REDUCTIONS: [Reduction; 3] = [Reduction::None, Reduction::Mean, Reduction::Sum];

/// Checks the analytic gradient of `loss` (`loss(x, Some(u))` gives the loss and its
/// gradient, `loss(x, None)` the loss) against central differences, for a seeded upstream
/// gradient of the reduction's shape over `items` items.
fn check_loss(
    name: &str,
    x: &[f64],
    (seed, items, reduction): (u64, usize, Reduction),
    loss: impl Fn(&[f64], Option<&[f64]>) -> (Loss<f64>, Vec<f64>),
) {
    let len = if reduction == Reduction::None {
        items
    } else {
        1
    };
    let u = values(seed, len, 0.5, 2.0);
    let (_, grad) = loss(x, Some(&u));
    check(&format!("{name} {reduction:?}"), x, &grad, |x| {
        scalar(&loss(x, None).0, &u)
    });
}

#[test]
fn cross_entropy_gradients_match_finite_differences() {
    let (n, c) = (5, 4);
    let x = values(1, n * c, -3.0, 3.0);
    let labels = [0i64, 3, -100, 1, 2];
    for reduction in REDUCTIONS {
        for smoothing in [0.0f32, 0.3] {
            for weight in [None, Some(vec![0.5f32, 2.0, 1.0, 1.5])] {
                let options = CrossEntropy {
                    weight,
                    label_smoothing: smoothing,
                    reduction,
                    ..Default::default()
                };
                check_loss(&format!("{options:?}"), &x, (2, n, reduction), |x, u| {
                    cross_entropy_f64(x, c, &labels, &options, u)
                });
            }
        }
    }
}

#[test]
fn linear_gradients_match_finite_differences() {
    let shape = LinearShape {
        rows: 4,
        dim: 3,
        classes: 5,
    };
    let (nh, nw) = (4 * 3, 5 * 3);
    // hidden, classifier and bias side by side.
    let x = values(11, nh + nw + 5, -1.5, 1.5);
    let labels = [0i64, 4, -100, 2];
    for reduction in REDUCTIONS {
        for (smoothing, softcap, z_loss) in [(0.0, None, 0.0), (0.2, Some(2.0f32), 1e-2)] {
            let loss = LinearCrossEntropy {
                cross_entropy: CrossEntropy {
                    weight: Some(vec![0.5, 2.0, 1.0, 1.5, 0.7]),
                    label_smoothing: smoothing,
                    softcap,
                    z_loss,
                    reduction,
                    ..Default::default()
                },
                ..Default::default()
            };
            check_loss(
                &format!("linear {loss:?}"),
                &x,
                (12, 4, reduction),
                |x, u| {
                    let params = (&x[..nh], &x[nh..nh + nw], Some(&x[nh + nw..]));
                    let (l, grads) = linear_f64(params, shape, &labels, &loss, u);
                    (l, grads.concat())
                },
            );
        }
    }
}

#[test]
fn probability_target_gradients_match_finite_differences() {
    let (n, c) = (4, 5);
    let x = values(3, n * c, -3.0, 3.0);
    let t = values(4, n * c, 0.0, 1.0);
    for reduction in REDUCTIONS {
        let options = CrossEntropy {
            weight: Some(vec![0.5, 2.0, 1.0, 1.5, 0.7]),
            label_smoothing: 0.2,
            reduction,
            ..Default::default()
        };
        check_loss(&format!("{options:?}"), &x, (5, n, reduction), |x, u| {
            cross_entropy_probs_f64(x, c, &t, &options, u)
        });
    }
}

#[test]
fn binary_gradients_match_finite_differences() {
    let len = 12;
    let p = values(6, len, 0.05, 0.95);
    let x = values(7, len, -6.0, 6.0);
    let t = values(8, len, 0.0, 1.0);
    for reduction in REDUCTIONS {
        let options = BinaryCrossEntropy {
            weight: Some(
                values(10, len, 0.5, 2.0)
                    .iter()
                    .map(|&v| v as f32)
                    .collect(),
            ),
            reduction,
        };
        check_loss("bce", &p, (9, len, reduction), |p, u| {
            bce_f64(p, &t, &options, u)
        });
        let options = BinaryCrossEntropyWithLogits {
            weight: options.weight.clone(),
            pos_weight: Some(vec![0.5, 2.0, 3.0]),
            reduction,
        };
        check_loss("bce_with_logits", &x, (9, len, reduction), |x, u| {
            bce_logits_f64(x, &t, &options, 3, u)
        });
    }
}

#[test]
fn softcap_and_z_loss_gradients_match_finite_differences() {
    let (n, c) = (4, 5);
    let x = values(18, n * c, -40.0, 40.0);
    let labels = [0i64, 4, -100, 2];
    let t = values(19, n * c, 0.0, 1.0);
    for reduction in REDUCTIONS {
        let options = CrossEntropy {
            weight: Some(vec![0.5, 2.0, 1.0, 1.5, 0.7]),
            label_smoothing: 0.2,
            reduction,
            softcap: Some(15.0),
            z_loss: 0.05,
            ..Default::default()
        };
        let cap = options.softcap;
        check_loss(
            &format!("indices {options:?}"),
            &x,
            (20, n, reduction),
            |x, u| softcapped(x, cap, |z| cross_entropy_f64(z, c, &labels, &options, u)),
        );
        check_loss(
            &format!("probs {options:?}"),
            &x,
            (21, n, reduction),
            |x, u| softcapped(x, cap, |z| cross_entropy_probs_f64(z, c, &t, &options, u)),
        );
    }
}

#[test]
fn nll_gradients_match_finite_differences() {
    let (n, c) = (5, 4);
    let x = values(16, n * c, -4.0, 0.0);
    let labels = [0i64, 3, -100, 1, 3];
    for reduction in REDUCTIONS {
        for weight in [None, Some(vec![0.5f32, 2.0, 1.0, 1.5])] {
            let options = NllLoss {
                weight,
                reduction,
                ..Default::default()
            };
            check_loss(&format!("{options:?}"), &x, (17, n, reduction), |x, u| {
                nll_f64(x, c, &labels, &options, u)
            });
        }
    }
}

/// K-dimensional inputs go through the reference as rows of positions and back: the
/// gradient moved back to the (N, C, d) layout is that of the loss of the (N, C, d)
/// values, class indices, probabilities and NLL.
#[test]
fn k_dimensional_gradients_match_finite_differences() {
    let shape = ClassShape {
        rows: 6,
        classes: 4,
        positions: 3,
    };
    let x = values(30, 24, -3.0, 3.0);
    let t = values(31, 24, 0.0, 1.0);
    let labels = [0i64, 3, -100, 1, 2, 2];
    let options = CrossEntropy {
        weight: Some(vec![0.5, 2.0, 1.0, 1.5]),
        label_smoothing: 0.2,
        softcap: Some(2.0),
        z_loss: 0.1,
        ..Default::default()
    };
    type Computed = (Loss<f64>, Vec<f64>);
    type RowLoss<'a> = &'a dyn Fn(&[f64], Option<&[f64]>) -> Computed;
    fn moved(
        shape: ClassShape,
        f: RowLoss<'_>,
    ) -> impl Fn(&[f64], Option<&[f64]>) -> Computed + '_ {
        move |x, u| {
            let (loss, grad) = f(&to_rows(x, shape), u);
            (loss, from_rows(&grad, shape))
        }
    }
    check_loss(
        "k-dim indices",
        &x,
        (32, 6, Reduction::Mean),
        moved(shape, &|x, u| {
            softcapped(x, options.softcap, |z| {
                cross_entropy_f64(z, 4, &labels, &options, u)
            })
        }),
    );
    let rows_t = to_rows(&t, shape);
    check_loss(
        "k-dim probs",
        &x,
        (33, 6, Reduction::None),
        moved(shape, &|x, u| {
            softcapped(x, options.softcap, |z| {
                cross_entropy_probs_f64(z, 4, &rows_t, &options, u)
            })
        }),
    );
    let nll = NllLoss {
        reduction: Reduction::Sum,
        ..Default::default()
    };
    check_loss(
        "k-dim nll",
        &x,
        (34, 6, Reduction::Sum),
        moved(shape, &|x, u| nll_f64(x, 4, &labels, &nll, u)),
    );
    assert_eq!(from_rows(&to_rows(&x, shape), shape), x);
}

#[test]
fn focal_gradients_match_finite_differences() {
    let len = 12;
    let x = values(13, len, -5.0, 5.0);
    let mut t = values(14, len, 0.0, 1.0);
    t[0] = 0.0;
    t[1] = 1.0;
    for reduction in REDUCTIONS {
        for (alpha, gamma) in [(0.25f32, 2.0f32), (-1.0, 0.5), (0.9, 0.0), (0.4, 3.7)] {
            let options = SigmoidFocalLoss {
                alpha,
                gamma,
                reduction,
            };
            check_loss(&format!("{options:?}"), &x, (15, len, reduction), |x, u| {
                focal_f64(x, &t, &options, u)
            });
        }
    }
}

#[test]
fn log_softmax_gradient_matches_finite_differences() {
    let (n, c) = (3, 6);
    let x: Vec<f32> = values(11, n * c, -3.0, 3.0)
        .iter()
        .map(|&v| v as f32)
        .collect();
    let g: Vec<f32> = values(12, n * c, -1.0, 1.0)
        .iter()
        .map(|&v| v as f32)
        .collect();
    let g64 = widen(&g);
    let (_, grad) = log_softmax_f64(&widen(&x), c, Some(&g64));
    check("log_softmax", &widen(&x), &grad, |x| {
        let logp: Vec<f64> = x.chunks(c).flat_map(log_softmax_row).collect();
        logp.iter().zip(&g64).map(|(l, g)| l * g).sum()
    });
}
