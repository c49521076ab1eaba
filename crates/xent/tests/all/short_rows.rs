//! Several short rows per thread (`Tuning::rows_per_thread`): where a row has a thread of its
//! own, each thread handles a few rows one after another and adds their (loss, weight) pairs
//! before the workgroup's sum. A tuning of 4 rows per thread with no workgroup count to fill
//! takes that path at any batch size, so these run in seconds; every row kernel is compared
//! with the float64 reference, with batches that end inside a workgroup and in chunks.

#[allow(unused_imports)]
use crate::common::api::*;
use crate::common::{
    assert_close, assert_cross_entropy_every_way, assert_cross_entropy_probs_with_grad,
    assert_grad_close, assert_loss, contexts, gpu_label_status, with_binding_limit, Rng,
};
use xent::{reference, Context, CrossEntropy, Error, Reduction, Tuning};

/// `base` with 4 rows per thread wherever a row has one thread: a workgroup covers 1024 rows.
fn four_rows_per_thread(base: &Context) -> Context {
    base.with_tuning(Tuning {
        rows_per_thread: 4,
        fill_workgroups: 0,
        ..base.tuning()
    })
}

/// Rows of 10 logits (one thread each, in registers) and of 100 (one thread each on a CPU
/// adapter's tuning, read twice; several threads, so one row per thread, on a GPU's). 2500
/// rows make 3 workgroups of 1024 rows, the last one part full.
const SHAPES: [(usize, usize); 2] = [(2500, 10), (2500, 100)];

#[test]
fn class_index_losses_of_several_rows_per_thread_match_the_reference() {
    let mut rng = Rng::new(81);
    for (n, c) in SHAPES {
        let x = rng.vec(n * c, -8.0, 8.0);
        let mut labels: Vec<i64> = (0..n).map(|_| rng.below(c) as i64).collect();
        for row in [1, 1023, 1024, n - 1] {
            labels[row] = -100;
        }
        let weight = rng.vec(c, 0.5, 2.0);
        for base in contexts() {
            let ctx = &four_rows_per_thread(base);
            for (reduction, smoothing, weighted) in [
                (Reduction::Mean, 0.0, true),
                (Reduction::None, 0.1, true),
                (Reduction::Sum, 0.0, false),
                (Reduction::Mean, 0.2, false),
            ] {
                let options = CrossEntropy {
                    reduction,
                    label_smoothing: smoothing,
                    weight: weighted.then(|| weight.clone()),
                    ..Default::default()
                };
                let case = format!("4 rows per thread ce {n}x{c} {reduction:?} {smoothing}");
                assert_cross_entropy_every_way(ctx, &case, &x, c, &labels, &options);
            }
        }
    }
}

#[test]
fn probability_targets_and_log_softmax_of_several_rows_per_thread_match_the_reference() {
    let mut rng = Rng::new(82);
    for (n, c) in SHAPES {
        let x = rng.vec(n * c, -8.0, 8.0);
        let t = rng.distributions(n, c);
        let g = rng.vec(n * c, -1.0, 1.0);
        let weight = rng.vec(c, 0.5, 2.0);
        for base in contexts() {
            let ctx = &four_rows_per_thread(base);
            for reduction in [Reduction::None, Reduction::Mean, Reduction::Sum] {
                let options = CrossEntropy {
                    label_smoothing: 0.1,
                    weight: Some(weight.clone()),
                    reduction,
                    ..Default::default()
                };
                let case = format!("4 rows per thread ce probs {n}x{c} {reduction:?}");
                assert_cross_entropy_probs_with_grad(ctx, &case, &x, c, &t, &options);
            }
            let case = format!("4 rows per thread log_softmax {n}x{c}");
            let want = reference::compute(
                &LogSoftmax,
                Input::new(&x, nc(&x, c)).with_upstream(&g),
                Targets::None,
            )
            .unwrap();
            let got = ctx
                .compute(
                    &LogSoftmax,
                    Input::new(&x, nc(&x, c)).with_upstream(&g),
                    Targets::None,
                )
                .unwrap();
            assert_close(ctx, &case, got.loss.values(), want.loss.values());
            assert_grad_close(
                ctx,
                &case,
                got.grad.as_deref().unwrap(),
                want.grad.as_deref().unwrap(),
            );
        }
    }
}

/// Chunks of whole workgroups of 4 rows per thread: 5000 rows of 10 logits under a 64 KiB
/// binding cap make chunks of 1024 rows, and their (loss, weight) pairs land where the whole
/// batch expects them; the results are the bits of the uncut run.
#[test]
fn several_rows_per_thread_in_chunks_match_the_whole_batch() {
    let mut rng = Rng::new(83);
    let (n, c) = (5000, 10);
    let x = rng.vec(n * c, -8.0, 8.0);
    let labels: Vec<u32> = (0..n).map(|_| rng.below(c) as u32).collect();
    for base in contexts() {
        let whole = &four_rows_per_thread(base);
        let cut = &with_binding_limit(whole, 64 << 10);
        for reduction in [Reduction::None, Reduction::Mean] {
            let options = CrossEntropy {
                reduction,
                ..Default::default()
            };
            let case = format!("4 rows per thread chunked ce {n}x{c} {reduction:?}");
            let want =
                reference::compute(&options, grad_input(&x, nc(&x, c), None), &labels).unwrap();
            let got = cut
                .compute(&options, grad_input(&x, nc(&x, c), None), &labels)
                .unwrap();
            assert_loss(cut, &case, &got.loss, &want.loss);
            assert_grad_close(
                cut,
                &case,
                got.grad.as_deref().unwrap(),
                want.grad.as_deref().unwrap(),
            );
            let uncut = whole
                .compute(&options, grad_input(&x, nc(&x, c), None), &labels)
                .unwrap();
            assert_eq!(
                got.loss.values(),
                uncut.loss.values(),
                "{case}: chunks change the loss bits"
            );
            assert_eq!(
                got.grad.as_deref().unwrap(),
                uncut.grad.as_deref().unwrap(),
                "{case}: chunks change the gradient bits"
            );
        }
    }
}

/// Bad targets in several rows of one thread are each counted once, and the first is named.
#[test]
fn several_rows_per_thread_count_each_bad_target() {
    let (n, c) = (2500, 10);
    let mut labels = vec![3i32; n];
    // Rows 5, 261 and 1029 are the same thread's (local 5) in passes 0 and 1 of workgroup 0,
    // and pass 0 of workgroup 1.
    labels[261] = 10;
    labels[5] = -3;
    labels[1029] = 12;
    for base in contexts() {
        assert_eq!(
            gpu_label_status(&four_rows_per_thread(base), n, c, &labels),
            Err(Error::LabelOutOfRange {
                row: 5,
                label: -3,
                count: 3,
                classes: c,
                ignore_index: -100,
            })
        );
    }
}
