//! Launches past the per-dimension workgroup limit (2-D grids) and past the binding limit,
//! reached on small data by capping a context's limits.

use crate::common::{assert_close, assert_grad_close, contexts, Rng};
use xent::{reference, BceWithLogitsOptions, CrossEntropyOptions, Error, Reduction, Tuning};

#[test]
fn grids_past_the_workgroup_limit_give_the_same_results() {
    let mut rng = Rng::new(61);
    for base in contexts() {
        // At most 100 workgroups per dimension: the launches below (206 to 274 workgroups) need
        // 2-D grids.
        let ctx = &base.with_tuning(Tuning {
            max_workgroups_per_dimension: Some(100),
            ..base.tuning()
        });
        assert_eq!(ctx.limits().max_compute_workgroups_per_dimension, 100);
        let (n, c) = (70_000, 3);
        let logits = rng.vec(n * c, -6.0, 6.0);
        let labels: Vec<u32> = (0..n).map(|_| rng.below(c) as u32).collect();
        for reduction in [Reduction::None, Reduction::Mean] {
            let options = CrossEntropyOptions {
                label_smoothing: 0.1,
                reduction,
                ..Default::default()
            };
            let case = format!("2-D grid ce {n}x{c} {reduction:?}");
            let got = ctx
                .cross_entropy_and_grad(&logits, c, &labels, &options, None)
                .unwrap();
            let want =
                reference::cross_entropy_and_grad(&logits, c, &labels, &options, None).unwrap();
            assert_close(ctx, &case, got.loss.values(), want.loss.values());
            assert_grad_close(ctx, &case, &got.grad, &want.grad);
        }
        let t = rng.vec(n * c, 0.0, 1.0);
        let options = BceWithLogitsOptions::default();
        let got = ctx
            .binary_cross_entropy_with_logits(&logits, &t, &options)
            .unwrap();
        let want = reference::binary_cross_entropy_with_logits(&logits, &t, &options).unwrap();
        assert_close(ctx, "2-D grid bce", got.values(), want.values());
        let got = ctx.log_softmax(&logits, c).unwrap();
        let want = reference::log_softmax(&logits, c).unwrap();
        assert_close(ctx, "2-D grid log_softmax", &got, &want);
    }
}

#[test]
fn bindings_past_the_limit_are_an_error_naming_it() {
    let base = &contexts()[0];
    let ctx = base.with_tuning(Tuning {
        max_storage_binding_bytes: Some(1 << 20),
        ..base.tuning()
    });
    let (n, c) = (600, 1000); // 2.4 MB of logits
    let logits = vec![0.5f32; n * c];
    let labels = vec![1u32; n];
    match ctx.cross_entropy(&logits, c, &labels, &CrossEntropyOptions::default()) {
        Err(Error::TooLarge {
            limit_name,
            limit,
            needed,
            ..
        }) => {
            assert_eq!(limit_name, "max_storage_buffer_binding_size");
            assert_eq!(limit, 1 << 20);
            assert_eq!(needed, (4 * n * c) as u64);
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    // Within the cap, the same context computes.
    let small = ctx
        .cross_entropy(
            &logits[..100 * c],
            c,
            &labels[..100],
            &CrossEntropyOptions::default(),
        )
        .unwrap();
    assert!((small.scalar().unwrap() - (c as f32).ln()).abs() < 1e-4);
}
