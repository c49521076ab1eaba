//! The NLL loss on the GPU against the float64 reference: weights, an ignore_index that is a
//! valid class, every reduction, with and without the gradient, at odd sizes, whole and cut
//! into chunks; every row ignored; out-of-range labels from GPU tensors.

#[allow(unused_imports)]
use crate::common::api::*;
use crate::common::{assert_close, assert_grad_close, contexts, storage, with_binding_limit, Rng};
use xent::{reference, Error, GradMode, NllLoss, Reduction};

const REDUCTIONS: [Reduction; 3] = [Reduction::None, Reduction::Mean, Reduction::Sum];

/// (rows, classes) log-probabilities (any values: NLL takes its input as given) and labels,
/// every fifth row labelled -100 (to be ignored) and every seventh 2.
fn batch(rng: &mut Rng, rows: usize, classes: usize) -> (Vec<f32>, Vec<i64>) {
    let x = rng.vec(rows * classes, -9.0, 0.5);
    let labels = (0..rows)
        .map(|n| match n {
            _ if n % 5 == 4 => -100,
            _ if n % 7 == 6 && classes > 2 => 2,
            _ => rng.below(classes) as i64,
        })
        .collect();
    (x, labels)
}

fn assert_nll(ctx: &xent::Context, options: &NllLoss, x: &[f32], labels: &[i64], classes: usize) {
    let case = format!("nll {}x{classes} {options:?}", labels.len());
    let shape = [labels.len(), classes];
    let got = ctx.compute(options, Input::new(x, shape), labels).unwrap();
    let want = reference::compute(options, Input::new(x, shape), labels).unwrap();
    assert_close(ctx, &case, got.loss.values(), want.loss.values());
    let got = ctx
        .compute(options, grad_input(x, shape, None), labels)
        .unwrap();
    let want = reference::compute(options, grad_input(x, shape, None), labels).unwrap();
    assert_close(ctx, &case, got.loss.values(), want.loss.values());
    assert_grad_close(ctx, &case, &got.grad.unwrap(), &want.grad.unwrap());
}

#[test]
fn nll_matches_the_reference() {
    let mut rng = Rng::new(95);
    for whole in contexts() {
        let cut = with_binding_limit(whole, 64 << 10);
        for (rows, classes, ctx) in [
            (1, 1, whole),
            (0, 3, whole),
            (7, 5, whole),
            (300, 257, whole),
            (5000, 10, whole),
            (3001, 37, &cut),
        ] {
            let (x, labels) = batch(&mut rng, rows, classes);
            let weight = rng.vec(classes, 0.2, 3.0);
            for reduction in REDUCTIONS {
                for (weight, ignore_index) in [(None, -100), (Some(weight.clone()), 2)] {
                    // The rows labelled -100 carry this case's ignore_index.
                    let ignore = |&l: &i64| if l == -100 { ignore_index } else { l };
                    let labels: Vec<i64> = labels.iter().map(ignore).collect();
                    let options = NllLoss {
                        weight,
                        ignore_index,
                        reduction,
                    };
                    assert_nll(ctx, &options, &x, &labels, classes);
                }
            }
        }
    }
}

/// NLL of log-softmax is cross-entropy, loss and gradient (through log-softmax's backward).
#[test]
fn nll_of_log_softmax_is_cross_entropy() {
    let mut rng = Rng::new(96);
    let (rows, classes) = (64, 33);
    let logits = rng.vec(rows * classes, -6.0, 6.0);
    let labels: Vec<i64> = (0..rows).map(|_| rng.below(classes) as i64).collect();
    for ctx in contexts() {
        let shape = [rows, classes];
        let logp = ctx
            .compute(&LogSoftmax, Input::new(&logits, shape), Targets::None)
            .unwrap()
            .loss;
        let nll = ctx
            .compute(
                &NllLoss::default(),
                Input::new(logp.values(), shape),
                &labels,
            )
            .unwrap();
        let ce = reference::compute(
            &xent::CrossEntropy::default(),
            Input::new(&logits, shape),
            &labels,
        )
        .unwrap();
        assert_close(
            ctx,
            "nll of log_softmax",
            nll.loss.values(),
            ce.loss.values(),
        );
    }
}

#[test]
fn nll_with_every_row_ignored_is_nan_for_mean_with_a_zero_gradient() {
    for ctx in contexts() {
        let x = [-1.0f32, -0.5, -2.0, -0.1];
        let got = ctx
            .compute(
                &NllLoss::default(),
                grad_input(&x, [2, 2], None),
                &[-100i64, -100],
            )
            .unwrap();
        assert!(got.loss.scalar().unwrap().is_nan());
        assert_eq!(got.grad.unwrap(), vec![0.0; 4]);
    }
}

#[test]
fn nll_labels_from_gpu_tensors_are_checked_and_in_place_is_refused() {
    for ctx in contexts() {
        let logp = storage(ctx, &[-1.0f32, -0.5, -2.0, -0.1, -0.3, -3.0]);
        let labels = storage(ctx, &[1i32, 5, -7]);
        for grad in [GradMode::Off, GradMode::Separate] {
            let prepared = ctx
                .prepare(
                    &NllLoss::default(),
                    GpuInput::new(&logp, [3, 2]).with_grad(grad),
                    GpuTargets::indices(&labels),
                )
                .unwrap();
            prepared.run().unwrap();
            assert_eq!(
                prepared.read_loss(),
                Err(Error::LabelOutOfRange {
                    row: 1,
                    label: 5,
                    count: 2,
                    classes: 2,
                    ignore_index: -100,
                }),
                "{grad:?}"
            );
        }
        let in_place = ctx.prepare(
            &NllLoss::default(),
            GpuInput::new(&logp, [3, 2]).with_grad(GradMode::InPlace),
            GpuTargets::indices(&labels),
        );
        assert!(
            matches!(
                in_place,
                Err(Error::Misuse {
                    what: "an in-place gradient",
                    ..
                })
            ),
            "{:?}",
            in_place.err()
        );
    }
}
