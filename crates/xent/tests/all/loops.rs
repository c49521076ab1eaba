//! Every row and elementwise kernel past its loops' and grids' bounds, against the float64
//! reference: rows past 2^22, rows of classes past 65535 and past 2^22 read by one workgroup
//! or split, and K-dimensional rows whose classes lie apart past 65535. llvmpipe ends every
//! loop of an invocation once they have run 65535 iterations together, silently; these sizes
//! give wrong values on it unless each plan keeps its kernels' loops short (plan.rs,
//! `MAX_LOOP_TRIPS`). The fused linear loss has its own such test (linear.rs).

#[allow(unused_imports)]
use crate::common::api::*;
use crate::common::{assert_grad_close, assert_loss, contexts, Rng};
use xent::{
    reference, BinaryCrossEntropy, BinaryCrossEntropyWithLogits, Context, CrossEntropy, LogSoftmax,
    NllLoss, SigmoidFocalLoss, Targets, Tuning,
};

/// Runs `loss` with its gradient on `ctx` and on the reference; asserts both agree.
fn assert_matches(
    ctx: &Context,
    case: &str,
    loss: &impl crate::common::HostLoss,
    (x, shape): (&[f32], &[usize]),
    targets: Targets<'_>,
) {
    let input = || Input::new(x, shape).with_grad();
    let got = ctx
        .compute(loss, input(), targets)
        .unwrap_or_else(|e| panic!("{case}: {e}"));
    let want = reference::compute(loss, input(), targets).unwrap();
    assert_loss(ctx, case, &got.loss, &want.loss);
    let (got, want) = (got.grad.unwrap(), want.grad.unwrap());
    assert_grad_close(ctx, case, &got, &want);
}

/// Class indices for `rows` rows of `classes`, every ninth ignored.
fn labels(rng: &mut Rng, rows: usize, classes: usize) -> Vec<i64> {
    (0..rows)
        .map(|n| match n % 9 {
            8 => -100,
            _ => rng.below(classes) as i64,
        })
        .collect()
}

/// 2^22 + 1 rows of 2 logits (elements, for the binary losses), with the gradient, through
/// every row and elementwise kernel.
#[test]
fn rows_past_2_pow_22_match_the_reference_in_every_kernel() {
    let mut rng = Rng::new(2901);
    let ctx = &contexts()[0];
    let (n, c) = ((1 << 22) + 1, 2);
    let shape = [n, c];
    let x = rng.vec(n * c, -8.0, 8.0);
    let y = labels(&mut rng, n, c);
    let probs = rng.distributions(n, c);
    let unit: Vec<f32> = rng.vec(n * c, 0.001, 0.999);
    let logp: Vec<f32> = x.chunks(c).flat_map(log_softmax).collect();
    let mean = CrossEntropy::default();
    assert_matches(ctx, "ce", &mean, (&x, &shape), (&y).into());
    assert_matches(ctx, "ce probs", &mean, (&x, &shape), (&probs).into());
    assert_matches(ctx, "log-softmax", &LogSoftmax, (&x, &shape), Targets::None);
    let nll = NllLoss::default();
    assert_matches(ctx, "nll", &nll, (&logp, &shape), (&y).into());
    let bce = BinaryCrossEntropy::default();
    assert_matches(ctx, "bce", &bce, (&unit, &shape), (&probs).into());
    let logits = BinaryCrossEntropyWithLogits::default();
    assert_matches(ctx, "bce logits", &logits, (&x, &shape), (&probs).into());
    let focal = SigmoidFocalLoss::default();
    assert_matches(ctx, "focal", &focal, (&x, &shape), (&probs).into());
}

/// Rows of 65537 and 2^23 + 1 classes, each read by one workgroup (a tuning that never splits
/// rows) and split as the default plan does, through the row kernels with the gradient.
#[test]
fn long_rows_match_the_reference_whole_and_split() {
    let mut rng = Rng::new(2902);
    let base = &contexts()[0];
    let unsplit = base.with_tuning(Tuning {
        fill_workgroups: 0,
        ..base.tuning()
    });
    for (n, c) in [(3, 65_537), (1, (1 << 23) + 1)] {
        let shape = [n, c];
        let x = rng.vec(n * c, -8.0, 8.0);
        let y = labels(&mut rng, n, c);
        let probs = rng.distributions(n, c);
        let smooth = CrossEntropy {
            label_smoothing: 0.1,
            ..Default::default()
        };
        for ctx in [base, &unsplit] {
            let case = format!("{n} x {c}, fill {}", ctx.tuning().fill_workgroups);
            assert_matches(ctx, &case, &smooth, (&x, &shape), (&y).into());
            let probs_case = format!("{case} probs");
            assert_matches(ctx, &probs_case, &smooth, (&x, &shape), (&probs).into());
            let lsm_case = format!("{case} log-softmax");
            assert_matches(ctx, &lsm_case, &LogSoftmax, (&x, &shape), Targets::None);
        }
    }
}

/// K-dimensional rows (N, C, d) whose classes lie d apart, past 65535 classes: a thread per
/// row would loop over every class.
#[test]
fn k_dimensional_rows_past_65535_classes_match_the_reference() {
    let mut rng = Rng::new(2903);
    let (n, c, d) = (2, 70_000, 3);
    let shape = [n, c, d];
    let x = rng.vec(n * c * d, -8.0, 8.0);
    let y = labels(&mut rng, n * d, c);
    for ctx in contexts() {
        let loss = CrossEntropy::default();
        assert_matches(ctx, "(2, 70000, 3)", &loss, (&x, &shape), (&y).into());
    }
}

/// log_softmax of one row in f32 (the NLL loss's input).
fn log_softmax(row: &[f32]) -> Vec<f32> {
    let m = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let s: f32 = row.iter().map(|v| (v - m).exp()).sum();
    row.iter().map(|v| v - m - s.ln()).collect()
}
