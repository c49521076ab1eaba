//! Launches past the per-dimension workgroup limit (2-D grids) and past the binding limit
//! (chunks), reached on small data by capping a context's limits, and the large shapes every
//! adapter must take.

#[allow(unused_imports)]
use crate::common::api::*;
use crate::common::{
    assert_close, assert_grad_close, assert_lse, contexts, gpu_label_status, with_binding_limit,
    Rng,
};
use xent::{
    reference, BinaryCrossEntropyWithLogits, CrossEntropy, Error, Output, Reduction, Tuning,
};

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
            let options = CrossEntropy {
                label_smoothing: 0.1,
                reduction,
                ..Default::default()
            };
            let case = format!("2-D grid ce {n}x{c} {reduction:?}");
            let got = ctx
                .compute(&options, grad_input(&logits, nc(&logits, c), None), &labels)
                .unwrap();
            let want =
                reference::compute(&options, grad_input(&logits, nc(&logits, c), None), &labels)
                    .unwrap();
            assert_close(ctx, &case, got.loss.values(), want.loss.values());
            assert_grad_close(
                ctx,
                &case,
                got.grad.as_deref().unwrap(),
                want.grad.as_deref().unwrap(),
            );
        }
        let t = rng.vec(n * c, 0.0, 1.0);
        let options = BinaryCrossEntropyWithLogits::default();
        let got = ctx
            .compute(
                &options,
                Input::new(&logits, bce_shape(&logits, &options)),
                &t,
            )
            .map(|o| o.loss)
            .unwrap();
        let want = reference::compute(
            &options,
            Input::new(&logits, bce_shape(&logits, &options)),
            &t,
        )
        .map(|o| o.loss)
        .unwrap();
        assert_close(ctx, "2-D grid bce", got.values(), want.values());
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
        assert_close(ctx, "2-D grid log_softmax", &got, &want);
    }
}

/// Bits of a loss and gradient, for comparing runs exactly.
fn bits(loss: &[f32], grad: &[f32]) -> Vec<u32> {
    loss.iter().chain(grad).map(|v| v.to_bits()).collect()
}

/// With a 1 MiB binding cap (and at most 100 workgroups per dimension), every loss over
/// several MiB is cut into chunks: the results are bit-identical to the uncut run (chunks are
/// whole workgroups, so the reduction is the same tree) and match the reference.
#[test]
fn bindings_past_the_limit_are_cut_into_chunks_with_identical_results() {
    let mut rng = Rng::new(62);
    let (n, c) = (3000, 300); // 3.6 MB of logits: four chunks or more
    let logits = rng.vec(n * c, -8.0, 8.0);
    let mut labels: Vec<i64> = (0..n).map(|_| rng.below(c) as i64).collect();
    labels[2900] = -100;
    let probs = rng.distributions(n, c);
    let targets = rng.vec(n * c, 0.0, 1.0);
    let weight = rng.vec(c, 0.5, 2.0);
    let pos_weight = rng.vec(c, 0.5, 3.0);
    for whole in contexts() {
        let cut = &whole.with_tuning(Tuning {
            max_storage_binding_bytes: Some(1 << 20),
            max_workgroups_per_dimension: Some(100),
            ..whole.tuning()
        });
        for reduction in [Reduction::Mean, Reduction::None] {
            let options = CrossEntropy {
                weight: Some(weight.clone()),
                label_smoothing: 0.1,
                reduction,
                return_lse: true,
                ..Default::default()
            };
            let case = format!("chunked ce {n}x{c} {reduction:?}");
            let got = cut
                .compute(&options, grad_input(&logits, nc(&logits, c), None), &labels)
                .unwrap();
            let uncut = whole
                .compute(&options, grad_input(&logits, nc(&logits, c), None), &labels)
                .unwrap();
            let want =
                reference::compute(&options, grad_input(&logits, nc(&logits, c), None), &labels)
                    .unwrap();
            assert_close(cut, &case, got.loss.values(), want.loss.values());
            assert_lse(cut, &case, &got, &want);
            assert_eq!(
                got.lse, uncut.lse,
                "{case}: cut and uncut log-sum-exp differ"
            );
            assert_grad_close(
                cut,
                &case,
                got.grad.as_deref().unwrap(),
                want.grad.as_deref().unwrap(),
            );
            assert!(
                bits(got.loss.values(), got.grad.as_deref().unwrap())
                    == bits(uncut.loss.values(), uncut.grad.as_deref().unwrap()),
                "{case}: cut and uncut runs differ"
            );
            let mut in_place = logits.clone();
            let loss = cut
                .compute(&options, overwritten(&mut in_place, c, None), &labels)
                .map(|o| o.loss)
                .unwrap();
            assert!(
                bits(loss.values(), &in_place)
                    == bits(got.loss.values(), got.grad.as_deref().unwrap())
            );

            let case = format!("chunked ce probs {n}x{c} {reduction:?}");
            let got = cut
                .compute(&options, grad_input(&logits, nc(&logits, c), None), &probs)
                .unwrap();
            let uncut = whole
                .compute(&options, grad_input(&logits, nc(&logits, c), None), &probs)
                .unwrap();
            assert!(
                bits(got.loss.values(), got.grad.as_deref().unwrap())
                    == bits(uncut.loss.values(), uncut.grad.as_deref().unwrap()),
                "{case}: cut and uncut runs differ"
            );
            let want =
                reference::compute(&options, grad_input(&logits, nc(&logits, c), None), &probs)
                    .unwrap();
            assert_close(cut, &case, got.loss.values(), want.loss.values());
            assert_grad_close(
                cut,
                &case,
                got.grad.as_deref().unwrap(),
                want.grad.as_deref().unwrap(),
            );

            let options = BinaryCrossEntropyWithLogits {
                weight: Some(targets.iter().map(|t| t + 0.5).collect()),
                pos_weight: Some(pos_weight.clone()),
                reduction,
            };
            let case = format!("chunked bce logits {} {reduction:?}", n * c);
            let got = cut
                .compute(
                    &options,
                    grad_input(&logits, bce_shape(&logits, &options), None),
                    &targets,
                )
                .unwrap();
            let uncut = whole
                .compute(
                    &options,
                    grad_input(&logits, bce_shape(&logits, &options), None),
                    &targets,
                )
                .unwrap();
            assert!(
                bits(got.loss.values(), got.grad.as_deref().unwrap())
                    == bits(uncut.loss.values(), uncut.grad.as_deref().unwrap()),
                "{case}: cut and uncut runs differ"
            );
            let want = reference::compute(
                &options,
                grad_input(&logits, bce_shape(&logits, &options), None),
                &targets,
            )
            .unwrap();
            assert_close(cut, &case, got.loss.values(), want.loss.values());
            assert_grad_close(
                cut,
                &case,
                got.grad.as_deref().unwrap(),
                want.grad.as_deref().unwrap(),
            );
        }
        let upstream = rng.vec(n * c, -1.0, 1.0);
        let got = cut
            .compute(
                &LogSoftmax,
                Input::new(&logits, nc(&logits, c)).with_upstream(&upstream),
                Targets::None,
            )
            .unwrap();
        let uncut = whole
            .compute(
                &LogSoftmax,
                Input::new(&logits, nc(&logits, c)).with_upstream(&upstream),
                Targets::None,
            )
            .unwrap();
        assert!(
            bits(got.loss.values(), got.grad.as_deref().unwrap())
                == bits(uncut.loss.values(), uncut.grad.as_deref().unwrap())
        );
        let want = reference::compute(
            &LogSoftmax,
            Input::new(&logits, nc(&logits, c)).with_upstream(&upstream),
            Targets::None,
        )
        .unwrap();
        assert_close(
            cut,
            "chunked log_softmax",
            got.loss.values(),
            want.loss.values(),
        );
        assert_grad_close(
            cut,
            "chunked log_softmax",
            got.grad.as_deref().unwrap(),
            want.grad.as_deref().unwrap(),
        );
        let p: Vec<f32> = targets.iter().map(|t| t * 0.98 + 0.01).collect();
        let got = cut
            .compute(
                &xent::BinaryCrossEntropy::default(),
                Input::new(&p, flat(&p)),
                &probs,
            )
            .map(|o| o.loss)
            .unwrap();
        let uncut = whole
            .compute(
                &xent::BinaryCrossEntropy::default(),
                Input::new(&p, flat(&p)),
                &probs,
            )
            .map(|o| o.loss)
            .unwrap();
        assert_eq!(got.values()[0].to_bits(), uncut.values()[0].to_bits());
    }
}

/// Targets on the GPU are checked in every chunk, and the status names the first bad row of
/// the whole batch and its value, whichever chunk holds it.
#[test]
fn chunked_label_status_names_the_batch_row() {
    let (n, c) = (3000, 300);
    let mut labels: Vec<i32> = (0..n).map(|r| (r % c) as i32).collect();
    labels[2500] = 300;
    labels[2999] = -2;
    for whole in contexts() {
        let cut = with_binding_limit(whole, 1 << 20);
        assert_eq!(
            gpu_label_status(&cut, n, c, &labels),
            Err(Error::LabelOutOfRange {
                row: 2500,
                label: 300,
                count: 2,
                classes: c,
                ignore_index: -100,
            })
        );
    }
}

/// The sizes the library promises on every adapter, uncapped: C = 262144 with N = 4, N = 2^20
/// with C = 2, and 2^24 rows of 2 logits (128 MiB, past lavapipe's binding limit, so cut).
#[test]
fn large_class_counts_and_large_batches_match_the_reference() {
    let mut rng = Rng::new(63);
    let ctx = &contexts()[0];
    for (n, c, grad) in [(4, 262_144, true), (1 << 20, 2, true), (1 << 24, 2, false)] {
        let logits = rng.vec(n * c, -10.0, 10.0);
        let labels: Vec<u32> = (0..n).map(|_| rng.below(c) as u32).collect();
        let options = CrossEntropy::default();
        let case = format!("ce {n}x{c}");
        if grad {
            let got = ctx
                .compute(&options, grad_input(&logits, nc(&logits, c), None), &labels)
                .unwrap();
            let want =
                reference::compute(&options, grad_input(&logits, nc(&logits, c), None), &labels)
                    .unwrap();
            assert_close(ctx, &case, got.loss.values(), want.loss.values());
            assert_grad_close(
                ctx,
                &case,
                got.grad.as_deref().unwrap(),
                want.grad.as_deref().unwrap(),
            );
        } else {
            let got = ctx
                .compute(&options, Input::new(&logits, nc(&logits, c)), &labels)
                .map(|o| o.loss)
                .unwrap();
            let want = reference::compute(&options, Input::new(&logits, nc(&logits, c)), &labels)
                .map(|o| o.loss)
                .unwrap();
            assert_close(ctx, &case, got.values(), want.values());
        }
    }
}

/// With a 1 MiB buffer cap, host calls of several MiB run in parts of whole rows (or elements):
/// per-row and per-element values (unreduced losses, log-softmax, gradients of `None` and
/// `Sum`) are the bits of the uncut run; sums and means add the parts' sums on the host and
/// match the reference. Without the parts, each call would fail (a 3.6 MB upload). The parts
/// are cut on the host, so one context shows it.
#[test]
fn buffers_past_the_limit_are_cut_into_parts() {
    let mut rng = Rng::new(63);
    let (n, c) = (3000, 300); // 3.6 MB of logits: four parts of at most 1 MiB
    let logits = rng.vec(n * c, -8.0, 8.0);
    let mut labels: Vec<i64> = (0..n).map(|_| rng.below(c) as i64).collect();
    labels[10] = -100;
    labels[2900] = -100;
    let probs = rng.distributions(n, c);
    let targets = rng.vec(n * c, 0.0, 1.0);
    let weight = rng.vec(c, 0.5, 2.0);
    let whole = &contexts()[0];
    let cut = &whole.with_tuning(Tuning {
        max_buffer_bytes: Some(1 << 20),
        ..whole.tuning()
    });
    assert_eq!(cut.limits().max_buffer_size, 1 << 20);
    // The cut run against the reference, and against the uncut run: bit for bit for
    // per-item values (all of `None`, gradients of `Sum`).
    let check = |case: &str, reduction, got: &Output, uncut: &Output, want: &Output<f64>| {
        assert_close(cut, case, got.loss.values(), want.loss.values());
        assert_lse(cut, case, got, want);
        assert!(
            got.lse == uncut.lse,
            "{case}: cut and uncut log-sum-exp differ"
        );
        assert_grad_close(
            cut,
            case,
            got.grad.as_deref().unwrap(),
            want.grad.as_deref().unwrap(),
        );
        if reduction != Reduction::Mean {
            assert!(
                got.grad.as_deref().unwrap() == uncut.grad.as_deref().unwrap(),
                "{case}: cut and uncut gradients differ"
            );
        }
        if reduction == Reduction::None {
            assert!(
                got.loss == uncut.loss,
                "{case}: cut and uncut losses differ"
            );
        }
    };
    for reduction in [Reduction::None, Reduction::Sum, Reduction::Mean] {
        let options = CrossEntropy {
            weight: Some(weight.clone()),
            label_smoothing: 0.1,
            reduction,
            return_lse: reduction != Reduction::Sum,
            ..Default::default()
        };
        let upstream = match reduction {
            Reduction::None => rng.vec(n, -1.0, 1.0),
            _ => vec![0.75],
        };
        let up = Some(&upstream[..]);
        let got = cut
            .compute(&options, grad_input(&logits, nc(&logits, c), up), &labels)
            .unwrap();
        check(
            &format!("parts ce {n}x{c} {reduction:?}"),
            reduction,
            &got,
            &whole
                .compute(&options, grad_input(&logits, nc(&logits, c), up), &labels)
                .unwrap(),
            &reference::compute(&options, grad_input(&logits, nc(&logits, c), up), &labels)
                .unwrap(),
        );
        let mut in_place = logits.clone();
        let loss = cut
            .compute(&options, overwritten(&mut in_place, c, up), &labels)
            .map(|o| o.loss)
            .unwrap();
        assert!(
            bits(loss.values(), &in_place) == bits(got.loss.values(), got.grad.as_deref().unwrap())
        );
        check(
            &format!("parts ce probs {n}x{c} {reduction:?}"),
            reduction,
            &cut.compute(&options, grad_input(&logits, nc(&logits, c), up), &probs)
                .unwrap(),
            &whole
                .compute(&options, grad_input(&logits, nc(&logits, c), up), &probs)
                .unwrap(),
            &reference::compute(&options, grad_input(&logits, nc(&logits, c), up), &probs).unwrap(),
        );

        // pos_weight of 300 per row: parts are whole multiples of it.
        let options = BinaryCrossEntropyWithLogits {
            weight: Some(targets.iter().map(|t| t + 0.5).collect()),
            pos_weight: Some(rng.vec(c, 0.5, 3.0)),
            reduction,
        };
        let upstream = match reduction {
            Reduction::None => rng.vec(n * c, -1.0, 1.0),
            _ => vec![0.75],
        };
        let up = Some(&upstream[..]);
        check(
            &format!("parts bce logits {} {reduction:?}", n * c),
            reduction,
            &cut.compute(
                &options,
                grad_input(&logits, bce_shape(&logits, &options), up),
                &targets,
            )
            .unwrap(),
            &whole
                .compute(
                    &options,
                    grad_input(&logits, bce_shape(&logits, &options), up),
                    &targets,
                )
                .unwrap(),
            &reference::compute(
                &options,
                grad_input(&logits, bce_shape(&logits, &options), up),
                &targets,
            )
            .unwrap(),
        );

        let p: Vec<f32> = targets.iter().map(|t| t * 0.98 + 0.01).collect();
        let options = xent::BinaryCrossEntropy {
            weight: None,
            reduction,
        };
        let case = format!("parts bce {} {reduction:?}", n * c);
        let got = cut
            .compute(&options, Input::new(&p, flat(&p)), &probs)
            .map(|o| o.loss)
            .unwrap();
        let want = reference::compute(&options, Input::new(&p, flat(&p)), &probs)
            .map(|o| o.loss)
            .unwrap();
        assert_close(cut, &case, got.values(), want.values());
    }
    let upstream = rng.vec(n * c, -1.0, 1.0);
    let got = cut
        .compute(
            &LogSoftmax,
            Input::new(&logits, nc(&logits, c)).with_upstream(&upstream),
            Targets::None,
        )
        .unwrap();
    let uncut = whole
        .compute(
            &LogSoftmax,
            Input::new(&logits, nc(&logits, c)).with_upstream(&upstream),
            Targets::None,
        )
        .unwrap();
    assert!(
        bits(got.loss.values(), got.grad.as_deref().unwrap())
            == bits(uncut.loss.values(), uncut.grad.as_deref().unwrap())
    );
}

/// A single row wider than a binding cannot be cut into chunks, nor one larger than a buffer
/// into parts: an error naming the limit.
#[test]
fn rows_wider_than_a_limit_are_an_error_naming_it() {
    let base = &contexts()[0];
    let binding = with_binding_limit(base, 1 << 20);
    let buffer = base.with_tuning(Tuning {
        max_buffer_bytes: Some(1 << 20),
        ..base.tuning()
    });
    let c = 300_000; // 1.2 MB per row
    let logits = vec![0.5f32; 2 * c];
    for (ctx, name) in [
        (binding, "max_storage_buffer_binding_size"),
        (buffer, "max_buffer_size"),
    ] {
        match ctx
            .compute(
                &CrossEntropy::default(),
                Input::new(&logits, nc(&logits, c)),
                &[1u32, 2],
            )
            .map(|o| o.loss)
        {
            Err(Error::TooLarge {
                limit_name, limit, ..
            }) => {
                assert_eq!(limit_name, name);
                assert_eq!(limit, 1 << 20);
            }
            other => panic!("expected TooLarge naming {name}, got {other:?}"),
        }
    }
}
