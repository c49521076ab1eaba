//! K-dimensional (N, C, d1, ..., dk) and unbatched (C,) inputs of cross-entropy and the NLL
//! loss against the float64 reference: class indices and probabilities, option sets that
//! cover every pair of options, every reduction, with and without the gradient (separate and
//! in place), whole and cut into chunks of samples, and GPU tensors with strided samples.

#[allow(unused_imports)]
use crate::common::api::*;
use crate::common::{
    assert_close, assert_grad_close, assert_loss, assert_lse, contexts, pairwise_options, storage,
    with_binding_limit, Rng,
};
use xent::{reference, CrossEntropy, Error, GradMode, Loss, NllLoss, Reduction};

/// Shapes with dimensions after the classes, an unbatched one, and empty ones.
const SHAPES: [&[usize]; 7] = [
    &[5],
    &[3, 4, 7],
    &[2, 5, 3, 4],
    &[1, 21, 33, 17],
    &[4, 1, 9],
    &[0, 3, 4],
    &[2, 3, 0],
];

/// Option sets in which every pair of options occurs (see [`pairwise_options`]), and the
/// log-sum-exp output with each reduction and softcap.
fn option_sets(classes: usize, rng: &mut Rng) -> Vec<CrossEntropy> {
    let sets = pairwise_options(classes, rng).into_iter();
    sets.map(|o| CrossEntropy {
        return_lse: o.reduction != Reduction::Mean || o.softcap.is_some(),
        ..o
    })
    .collect()
}

/// Logits and labels of `shape`: one label per position (every fifth -100, every seventh 0).
fn batch(rng: &mut Rng, shape: &[usize]) -> (Vec<f32>, Vec<i64>) {
    let len = shape.iter().product();
    let classes = if shape.len() == 1 { shape[0] } else { shape[1] };
    let rows = len / classes.max(1);
    let x = rng.vec(len, -6.0, 6.0);
    let labels = (0..rows)
        .map(|n| match n {
            _ if n % 5 == 4 => -100,
            _ if n % 7 == 6 => 0,
            _ => rng.below(classes) as i64,
        })
        .collect();
    (x, labels)
}

/// Probability targets of `shape`: for each position, a distribution over the classes.
fn probabilities(rng: &mut Rng, shape: &[usize]) -> Vec<f32> {
    let len: usize = shape.iter().product();
    let classes = if shape.len() == 1 { shape[0] } else { shape[1] };
    let positions: usize = shape.iter().skip(2).product();
    let mut t = rng.vec(len, 0.0, 1.0);
    if len == 0 {
        return t;
    }
    for sample in t.chunks_mut(classes * positions) {
        for p in 0..positions {
            let sum: f32 = (0..classes).map(|c| sample[c * positions + p]).sum();
            for c in 0..classes {
                sample[c * positions + p] /= sum;
            }
        }
    }
    t
}

fn assert_matches(
    ctx: &xent::Context,
    case: &str,
    loss: &impl crate::common::HostLoss,
    (x, shape): (&[f32], &[usize]),
    targets: xent::Targets<'_>,
) {
    let got = ctx.compute(loss, Input::new(x, shape), targets).unwrap();
    let want = reference::compute(loss, Input::new(x, shape), targets).unwrap();
    assert_loss(ctx, case, &got.loss, &want.loss);
    assert_lse(ctx, case, &got, &want);
    let got = ctx
        .compute(loss, grad_input(x, shape, None), targets)
        .unwrap();
    let want = reference::compute(loss, grad_input(x, shape, None), targets).unwrap();
    assert_loss(ctx, case, &got.loss, &want.loss);
    assert_lse(ctx, case, &got, &want);
    assert_grad_close(ctx, case, &got.grad.unwrap(), want.grad.as_ref().unwrap());
}

#[test]
fn k_dimensional_cross_entropy_matches_the_reference() {
    let mut rng = Rng::new(171);
    for whole in contexts() {
        // Samples of 7 x 300 values: the cut context holds a few per binding.
        let cut = with_binding_limit(whole, 64 << 10);
        let shapes = SHAPES.iter().map(|s| (s.to_vec(), whole));
        for (shape, ctx) in shapes.chain([(vec![6, 7, 300], &cut), (vec![5, 3, 2, 700], &cut)]) {
            let classes = if shape.len() == 1 { shape[0] } else { shape[1] };
            let (x, labels) = batch(&mut rng, &shape);
            let t = probabilities(&mut rng, &shape);
            for options in option_sets(classes, &mut rng) {
                let case = format!("ce {shape:?} {options:?}");
                let ignore = |&l: &i64| if l == -100 { options.ignore_index } else { l };
                let labels: Vec<i64> = labels.iter().map(ignore).collect();
                let indices = xent::Targets::from(&labels[..]);
                assert_matches(ctx, &case, &options, (&x, &shape), indices);
                let case = format!("ce probs {shape:?} {options:?}");
                let probs = xent::Targets::from(&t[..]);
                assert_matches(ctx, &case, &options, (&x, &shape), probs);
            }
        }
    }
}

#[test]
fn k_dimensional_nll_matches_the_reference() {
    let mut rng = Rng::new(172);
    for whole in contexts() {
        let cut = with_binding_limit(whole, 64 << 10);
        let shapes = SHAPES.iter().map(|s| (s.to_vec(), whole));
        for (shape, ctx) in shapes.chain([(vec![6, 7, 300], &cut)]) {
            let classes = if shape.len() == 1 { shape[0] } else { shape[1] };
            let (x, labels) = batch(&mut rng, &shape);
            let weight = rng.vec(classes, 0.2, 3.0);
            for (reduction, weight, ignore_index) in [
                (Reduction::None, None, -100),
                (Reduction::Mean, Some(weight.clone()), 0),
                (Reduction::Sum, Some(weight), -100),
            ] {
                let options = NllLoss {
                    weight,
                    ignore_index,
                    reduction,
                };
                let ignore = |&l: &i64| if l == -100 { ignore_index } else { l };
                let labels: Vec<i64> = labels.iter().map(ignore).collect();
                let case = format!("nll {shape:?} {options:?}");
                let targets = xent::Targets::from(&labels[..]);
                assert_matches(ctx, &case, &options, (&x, &shape), targets);
            }
        }
    }
}

/// The reference's K-dimensional cross-entropy is its cross-entropy of the positions as
/// rows: (N, C, d) logits moved to (N d, C) by hand give the same losses, and the gradient
/// moved back.
#[test]
fn the_reference_reads_k_dimensional_inputs_as_rows_of_positions() {
    let mut rng = Rng::new(173);
    let (n, c, d) = (3, 4, 5);
    let (x, labels) = batch(&mut rng, &[n, c, d]);
    let rows: Vec<f32> = (0..n * d)
        .flat_map(|r| (0..c).map(move |k| (r / d) * c * d + k * d + r % d))
        .map(|i| x[i])
        .collect();
    let options = CrossEntropy {
        label_smoothing: 0.1,
        reduction: Reduction::None,
        ..Default::default()
    };
    let kdim = reference::compute(&options, grad_input(&x, [n, c, d], None), &labels).unwrap();
    let flat = reference::compute(&options, grad_input(&rows, [n * d, c], None), &labels).unwrap();
    assert_eq!(kdim.loss, flat.loss);
    let (kg, fg) = (kdim.grad.unwrap(), flat.grad.unwrap());
    for r in 0..n * d {
        for k in 0..c {
            assert_eq!(kg[(r / d) * c * d + k * d + r % d], fg[r * c + k]);
        }
    }
}

#[test]
fn an_unbatched_input_gives_one_loss() {
    for ctx in contexts() {
        let options = CrossEntropy {
            reduction: Reduction::None,
            ..Default::default()
        };
        let x = [1.0f32, 2.0, 0.5];
        let got = ctx.compute(&options, Input::new(&x, [3]), &[1i64]).unwrap();
        let Loss::Unreduced(v) = got.loss else {
            panic!("unreduced")
        };
        let want = 3f64.ln() + (2.0 - 1.0) - 2.0;
        let lse = (1f64.exp() + 2f64.exp() + 0.5f64.exp()).ln();
        assert_eq!(v.len(), 1);
        assert!((f64::from(v[0]) - (lse - 2.0)).abs() < 1e-6, "{v:?} {want}");
        // A label per position: an unbatched input takes one.
        let err = ctx
            .compute(&options, Input::new(&x, [3]), &[1i64, 0])
            .unwrap_err();
        assert!(matches!(err, Error::ShapeMismatch { .. }), "{err:?}");
    }
}

/// In-place gradients of K-dimensional inputs, and GPU tensors whose samples are strided
/// within a larger buffer.
#[test]
fn k_dimensional_gpu_tensors_and_in_place_gradients() {
    let mut rng = Rng::new(174);
    let shape = [3usize, 6, 5, 7];
    let (n, c, d) = (3, 6, 35);
    let (x, labels) = batch(&mut rng, &shape);
    let options = CrossEntropy {
        label_smoothing: 0.05,
        ..Default::default()
    };
    let want = reference::compute(&options, grad_input(&x, shape, None), &labels).unwrap();
    let want_grad = want.grad.unwrap();
    for ctx in contexts() {
        let mut y = x.clone();
        let got = ctx
            .compute(&options, Input::in_place(&mut y, shape), &labels)
            .unwrap();
        assert_loss(ctx, "in place", &got.loss, &want.loss);
        assert_grad_close(ctx, "in place", &y, &want_grad);
        // Samples 3 values apart more than they hold, after 5 values of something else.
        let (front, gap) = (5, 3);
        let stride = c * d + gap;
        let mut padded = vec![f32::NAN; front + n * stride];
        for s in 0..n {
            let at = front + s * stride;
            padded[at..at + c * d].copy_from_slice(&x[s * c * d..(s + 1) * c * d]);
        }
        let logits = storage(ctx, &padded);
        let gpu_labels: Vec<i32> = labels.iter().map(|&l| l as i32).collect();
        let labels_buffer = storage(ctx, &gpu_labels);
        let tensor = xent::GpuTensor::new(&logits)
            .at(4 * front as u64)
            .with_row_stride(stride);
        // (An in-place gradient of a sliced input is read from the caller's buffer.)
        for mode in [GradMode::Separate, GradMode::SeparateAsInput] {
            let prepared = ctx
                .prepare(
                    &options,
                    GpuInput::new(tensor, shape).with_grad(mode),
                    GpuTargets::indices(&labels_buffer),
                )
                .unwrap();
            prepared.run().unwrap();
            let case = format!("strided samples {mode:?}");
            assert_loss(ctx, &case, &prepared.read_loss().unwrap(), &want.loss);
            let grad = prepared.read_grad().unwrap().unwrap();
            assert_grad_close(ctx, &case, &grad, &want_grad);
        }
    }
}

/// A sample larger than a storage binding cannot be cut (its classes lie a whole sample
/// apart): an error naming the limit, never a wrong value.
#[test]
fn a_sample_larger_than_a_binding_is_an_error() {
    let ctx = &contexts()[0];
    let small = with_binding_limit(ctx, 4 << 10);
    let shape = [2usize, 3, 1000];
    let x = vec![0.5f32; 6000];
    let labels = vec![1i64; 2000];
    let err = small
        .compute(&CrossEntropy::default(), Input::new(&x, shape), &labels)
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::TooLarge {
                limit_name: "max_storage_buffer_binding_size",
                ..
            }
        ),
        "{err:?}"
    );
    let got = small
        .compute(
            &CrossEntropy::default(),
            Input::new(&x[..600], [2, 3, 100]),
            &labels[..200],
        )
        .unwrap();
    let want = (3f64).ln();
    assert_close(ctx, "fits", got.loss.values(), &[want]);
}
