//! Split rows: batches of too few long rows to fill the adapter cut each row into segments of
//! one workgroup each (a segment-state dispatch, then the loss dispatch). A tuning of 4 logits
//! per thread and 64 workgroups to fill splits rows of a few thousand logits, so these run in
//! seconds; every loss that splits is compared with the float64 reference, chunked too.

#[allow(unused_imports)]
use crate::common::api::*;
use crate::common::{
    assert_close, assert_cross_entropy_every_way, assert_cross_entropy_probs_with_grad,
    assert_grad_close, assert_loss, contexts, gpu_label_status, Rng,
};
use xent::{reference, Context, CrossEntropy, Error, Reduction, Tuning};

/// `base` with rows of at least 1024 logits split until a batch makes 64 workgroups: 3 rows of
/// 5000 logits make 4 segments of 1250 each.
fn splitting(base: &Context) -> Context {
    base.with_tuning(Tuning {
        row_elements_per_thread: 4,
        fill_workgroups: 64,
        ..base.tuning()
    })
}

/// `x` with a -inf logit in its first row, which a merge of segment states must add as 0.
/// (With label smoothing, such a row's loss is +inf, so those cases leave it out.)
fn with_neg_inf(x: &[f32]) -> Vec<f32> {
    let mut x = x.to_vec();
    x[3] = f32::NEG_INFINITY;
    x
}

/// `x` with +inf in its last row of `c` logits: NaN results there, as PyTorch. Sums and means
/// over such a row are NaN whatever else is wrong, so only unreduced results use it.
fn with_pos_inf_row(x: &[f32], c: usize) -> Vec<f32> {
    let mut x = x.to_vec();
    let last = x.len() - c;
    x[last + c / 2] = f32::INFINITY;
    x
}

#[test]
fn split_class_index_losses_match_the_reference() {
    let mut rng = Rng::new(71);
    let (n, c) = (3, 5000);
    let finite = rng.vec(n * c, -8.0, 8.0);
    let mut labels: Vec<i64> = (0..n).map(|_| rng.below(c) as i64).collect();
    labels[1] = -100;
    let weight = rng.vec(c, 0.5, 2.0);
    for base in contexts() {
        let ctx = &splitting(base);
        for (reduction, smoothing, weighted) in [
            (Reduction::Mean, 0.0, false),
            (Reduction::None, 0.1, true),
            (Reduction::Sum, 0.0, true),
            (Reduction::Sum, 0.2, false),
        ] {
            let x = if smoothing == 0.0 {
                with_neg_inf(&finite)
            } else {
                finite.clone()
            };
            let options = CrossEntropy {
                reduction,
                label_smoothing: smoothing,
                weight: weighted.then(|| weight.clone()),
                return_lse: reduction != Reduction::Mean,
                ..Default::default()
            };
            let case = format!("split ce {n}x{c} {reduction:?} smoothing {smoothing}");
            // Every way includes in place, where the segment holding the target forms the
            // loss: no other workgroup writes over the target logit first.
            assert_cross_entropy_every_way(ctx, &case, &x, c, &labels, &options);
        }
    }
}

#[test]
fn split_probability_targets_and_log_softmax_match_the_reference() {
    let mut rng = Rng::new(72);
    let (n, c) = (3, 5000);
    let x = rng.vec(n * c, -8.0, 8.0);
    let t = rng.distributions(n, c);
    let g = rng.vec(n * c, -1.0, 1.0);
    let x_inf = with_pos_inf_row(&with_neg_inf(&x), c);
    for base in contexts() {
        let ctx = &splitting(base);
        let weight = rng.vec(c, 0.5, 2.0);
        // Mean divides by N, so only a sum shows a loss counted once per segment.
        for reduction in [Reduction::Mean, Reduction::Sum] {
            let options = CrossEntropy {
                label_smoothing: 0.1,
                weight: Some(weight.clone()),
                reduction,
                return_lse: reduction == Reduction::Sum,
                ..Default::default()
            };
            let case = format!("split ce probs {n}x{c} {reduction:?}");
            assert_cross_entropy_probs_with_grad(ctx, &case, &x, c, &t, &options);
        }

        let case = format!("split log_softmax {n}x{c}");
        let want = reference::compute(
            &LogSoftmax,
            Input::new(&x_inf, nc(&x_inf, c)).with_upstream(&g),
            Targets::None,
        )
        .unwrap();
        let got = ctx
            .compute(
                &LogSoftmax,
                Input::new(&x_inf, nc(&x_inf, c)),
                Targets::None,
            )
            .map(|o| o.loss.into_values())
            .unwrap();
        assert_close(ctx, &case, &got, want.loss.values());
        let got = ctx
            .compute(
                &LogSoftmax,
                Input::new(&x_inf, nc(&x_inf, c)).with_upstream(&g),
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

/// Split rows in chunks of the binding limit: 200 rows of 1024 logits, split in 4 segments of
/// 256 (1 logit per thread, 1024 workgroups to fill), under a 512 KiB binding cap (chunks of
/// 128 rows, a multiple of the 64 rows that keep 4-byte losses aligned) and at most 100
/// workgroups per dimension (2-D grids of 512 and 288). Each chunk's segment states and
/// (loss, weight) pairs land where the whole batch expects them.
#[test]
fn split_rows_in_chunks_match_the_reference() {
    let mut rng = Rng::new(73);
    let (n, c) = (200, 1024);
    let x = with_neg_inf(&rng.vec(n * c, -8.0, 8.0));
    let labels: Vec<u32> = (0..n).map(|_| rng.below(c) as u32).collect();
    for base in contexts() {
        let ctx = &base.with_tuning(Tuning {
            row_elements_per_thread: 1,
            fill_workgroups: 1024,
            max_storage_binding_bytes: Some(512 << 10),
            max_workgroups_per_dimension: Some(100),
            ..base.tuning()
        });
        for reduction in [Reduction::None, Reduction::Mean] {
            let options = CrossEntropy {
                reduction,
                ..Default::default()
            };
            let case = format!("split chunked ce {n}x{c} {reduction:?}");
            let want =
                reference::compute(&options, grad_input(&x, nc(&x, c), None), &labels).unwrap();
            let got = ctx
                .compute(&options, grad_input(&x, nc(&x, c), None), &labels)
                .unwrap();
            assert_loss(ctx, &case, &got.loss, &want.loss);
            assert_grad_close(
                ctx,
                &case,
                got.grad.as_deref().unwrap(),
                want.grad.as_deref().unwrap(),
            );
        }
        let case = format!("split chunked log_softmax {n}x{c}");
        let want = reference::compute(&LogSoftmax, Input::new(&x, nc(&x, c)), Targets::None)
            .map(|o| o.loss.into_values())
            .unwrap();
        assert_close(
            ctx,
            &case,
            &ctx.compute(&LogSoftmax, Input::new(&x, nc(&x, c)), Targets::None)
                .map(|o| o.loss.into_values())
                .unwrap(),
            &want,
        );
    }
}

/// A bad target on the GPU is counted once per row, not once per segment.
#[test]
fn split_rows_count_a_bad_target_once() {
    let (n, c) = (3, 5000);
    for base in contexts() {
        assert_eq!(
            gpu_label_status(&splitting(base), n, c, &[7, 5000, -3]),
            Err(Error::LabelOutOfRange {
                row: 1,
                label: 5000,
                count: 2,
                classes: c,
                ignore_index: -100,
            })
        );
    }
}
