//! Every bad input gets its typed error before anything is dispatched; nothing panics.

#[allow(unused_imports)]
use crate::common::api::*;
use crate::common::contexts;
use xent::{reference, BinaryCrossEntropy, BinaryCrossEntropyWithLogits, CrossEntropy, Error};

#[test]
fn targets_of_the_wrong_kind_and_misplaced_options_are_errors() {
    let ctx = &contexts()[0];
    let x = [0.5f32; 6];
    let wrong_targets = [
        ctx.compute(
            &CrossEntropy::default(),
            Input::new(&x, [2, 3]),
            Targets::None,
        ),
        ctx.compute(&LogSoftmax, Input::new(&x, [2, 3]), &[0u32, 1]),
        ctx.compute(
            &BinaryCrossEntropy::default(),
            Input::new(&x, [6]),
            &[0i64; 6],
        ),
        ctx.compute(
            &BinaryCrossEntropyWithLogits::default(),
            Input::new(&x, [6]),
            Targets::None,
        ),
    ];
    for got in wrong_targets {
        assert!(matches!(got, Err(Error::WrongTargets { .. })), "{got:?}");
    }
    // pos_weight has the length of a trailing part of the input's shape (6, 3 or 1 here);
    // the error lists them.
    let bce = BinaryCrossEntropyWithLogits {
        pos_weight: Some(vec![1.0, 2.0]),
        ..Default::default()
    };
    let got = ctx.compute(&bce, Input::new(&x, [2, 3]), &[1.0f32; 6]);
    assert!(
        matches!(
            &got,
            Err(Error::ShapeMismatch {
                what: "pos_weight",
                expected: 6,
                got: 2,
                hint,
            }) if hint.contains("[3]: 3")
        ),
        "{got:?}"
    );
    // Only cross-entropy writes its gradient in place; the input is left as it was.
    let mut y = x;
    let got = ctx.compute(
        &BinaryCrossEntropyWithLogits::default(),
        Input::in_place(&mut y, [6]),
        &[1.0f32; 6],
    );
    assert!(
        matches!(&got, Err(Error::Misuse { what: "an in-place gradient", reason })
            if reason.contains("binary cross-entropy with logits")),
        "{got:?}"
    );
    assert_eq!(y, x);
}

#[test]
fn shape_errors() {
    let ctx = &contexts()[0];
    let opts = CrossEntropy::default();
    // Logits that do not fill their shape, a shape that is not [N, C], and C = 0.
    assert!(matches!(
        ctx.compute(&opts, Input::new(&[1.0; 7], [2, 3]), &[0u32, 1])
            .map(|o| o.loss),
        Err(Error::ShapeMismatch {
            what: "input",
            expected: 6,
            got: 7,
            ..
        })
    ));
    // A scalar has no class dimension, and C = 0 no class ((C,), (N, C) and (N, C, d1, ...)
    // are cross-entropy's shapes).
    for shape in [vec![], vec![1, 0, 3], vec![0]] {
        let values = vec![1.0; shape.iter().product()];
        let got = ctx.compute(&opts, Input::new(&values, shape.clone()), &[0u32]);
        assert!(
            matches!(got, Err(Error::InvalidShape { .. })),
            "{shape:?}: {got:?}"
        );
    }
    // (1, 6, 2) logits take a class index per position: two, not one.
    assert!(matches!(
        ctx.compute(&opts, Input::new(&[1.0; 12], [1, 6, 2]), &[0u32]),
        Err(Error::ShapeMismatch {
            what: "targets",
            expected: 2,
            got: 1,
            ..
        })
    ));
    assert!(matches!(
        ctx.compute(&LogSoftmax, Input::new(&[], [2, 0]), Targets::None)
            .map(|o| o.loss.into_values()),
        Err(Error::InvalidShape { .. })
    ));
    // One target per row.
    assert!(matches!(
        ctx.compute(&opts, Input::new(&[1.0; 6], nc(&[1.0; 6], 3)), &[0u32])
            .map(|o| o.loss),
        Err(Error::ShapeMismatch {
            what: "targets",
            expected: 2,
            got: 1,
            ..
        })
    ));
    // Probability targets of the logits' shape.
    assert!(matches!(
        ctx.compute(&opts, Input::new(&[1.0; 6], nc(&[1.0; 6], 3)), &[0.5; 5])
            .map(|o| o.loss),
        Err(Error::ShapeMismatch {
            what: "targets",
            expected: 6,
            got: 5,
            ..
        })
    ));
    // BCE target and weight lengths.
    assert!(matches!(
        ctx.compute(
            &BinaryCrossEntropy::default(),
            Input::new(&[0.5; 4], flat(&[0.5; 4])),
            &[0.5; 3]
        )
        .map(|o| o.loss),
        Err(Error::ShapeMismatch { what: "target", .. })
    ));
    let w = BinaryCrossEntropy {
        weight: Some(vec![1.0; 3]),
        ..Default::default()
    };
    assert!(matches!(
        ctx.compute(&w, Input::new(&[0.5; 4], flat(&[0.5; 4])), &[0.5; 4])
            .map(|o| o.loss),
        Err(Error::ShapeMismatch {
            what: "weight",
            expected: 4,
            got: 3,
            ..
        })
    ));
    // pos_weight must have the length of the last dimension.
    let pw = BinaryCrossEntropyWithLogits {
        pos_weight: Some(vec![1.0; 3]),
        ..Default::default()
    };
    assert!(matches!(
        ctx.compute(&pw, Input::new(&[0.5; 4], [4]), &[0.5; 4])
            .map(|o| o.loss),
        Err(Error::ShapeMismatch {
            what: "pos_weight",
            expected: 4,
            got: 3,
            ..
        })
    ));
}

#[test]
fn label_errors() {
    let ctx = &contexts()[0];
    let logits = [0.0f32; 6];
    let opts = CrossEntropy::default();
    // usize labels give what the same u32 labels give; one beyond i64 is an error, not a
    // wrapped (negative, possibly ignored) label, on the GPU and in the reference alike.
    let shaped = || Input::new(&[0.5f32, -1.0, 2.0, 0.0, 1.0, -0.5], [2, 3]).with_grad();
    let as_usize = ctx.compute(&opts, shaped(), &[2usize, 0]).unwrap();
    assert_eq!(as_usize, ctx.compute(&opts, shaped(), &[2u32, 0]).unwrap());
    let wraps_to_ignore = CrossEntropy {
        ignore_index: -1,
        ..Default::default()
    };
    for got in [
        ctx.compute(&wraps_to_ignore, shaped(), &[0, usize::MAX])
            .map(|o| o.loss),
        reference::compute(&wraps_to_ignore, shaped(), &[0, usize::MAX])
            .map(|_| xent::Loss::Reduced(0.0)),
    ] {
        assert_eq!(
            got,
            Err(Error::LabelTooLarge {
                row: 1,
                label: usize::MAX
            })
        );
    }
    let err = ctx
        .compute(&opts, Input::new(&logits, nc(&logits, 3)), &[0i64, 3])
        .map(|o| o.loss)
        .unwrap_err();
    assert_eq!(
        err,
        Error::LabelOutOfRange {
            row: 1,
            label: 3,
            count: 1,
            classes: 3,
            ignore_index: -100
        }
    );
    assert!(matches!(
        ctx.compute(&opts, Input::new(&logits, nc(&logits, 3)), &[-1i32, 0])
            .map(|o| o.loss),
        Err(Error::LabelOutOfRange {
            row: 0,
            label: -1,
            ..
        })
    ));
    // -100 is only legal while it is the ignore_index.
    let other = CrossEntropy {
        ignore_index: 2,
        ..Default::default()
    };
    assert!(matches!(
        ctx.compute(&other, Input::new(&logits, nc(&logits, 3)), &[-100i64, 0])
            .map(|o| o.loss),
        Err(Error::LabelOutOfRange {
            row: 0,
            label: -100,
            ..
        })
    ));
    // u32 labels beyond i32 are out of range, not wrapped.
    assert!(matches!(
        ctx.compute(&opts, Input::new(&logits, nc(&logits, 3)), &[u32::MAX, 0])
            .map(|o| o.loss),
        Err(Error::LabelOutOfRange {
            label: 4294967295,
            ..
        })
    ));
    // The count covers every offending row, the row and value are the first one's.
    assert!(matches!(
        ctx.compute(
            &opts,
            Input::new(&[0.0f32; 12], nc(&[0.0f32; 12], 3)),
            &[0i64, 3, -100, -7]
        )
        .map(|o| o.loss),
        Err(Error::LabelOutOfRange {
            row: 1,
            label: 3,
            count: 2,
            ..
        })
    ));
    // The reference checks the same.
    assert!(matches!(
        reference::compute(&opts, Input::new(&logits, nc(&logits, 3)), &[0i64, 3]).map(|o| o.loss),
        Err(Error::LabelOutOfRange { .. })
    ));
}

#[test]
fn option_and_value_errors() {
    let ctx = &contexts()[0];
    let logits = [0.0f32; 6];
    for e in [-0.1f32, 1.5, f32::NAN] {
        let opts = CrossEntropy {
            label_smoothing: e,
            ..Default::default()
        };
        assert!(
            matches!(
                ctx.compute(&opts, Input::new(&logits, nc(&logits, 3)), &[0u32, 1])
                    .map(|o| o.loss),
                Err(Error::InvalidOption {
                    name: "label_smoothing",
                    ..
                })
            ),
            "label_smoothing {e}"
        );
    }
    let wrong_len = CrossEntropy {
        weight: Some(vec![1.0, 1.0]),
        ..Default::default()
    };
    assert!(matches!(
        ctx.compute(&wrong_len, Input::new(&logits, nc(&logits, 3)), &[0u32, 1])
            .map(|o| o.loss),
        Err(Error::ShapeMismatch {
            what: "weight",
            expected: 3,
            got: 2,
            ..
        })
    ));
    let non_finite = CrossEntropy {
        weight: Some(vec![1.0, f32::INFINITY, 1.0]),
        ..Default::default()
    };
    assert!(matches!(
        ctx.compute(&non_finite, Input::new(&logits, nc(&logits, 3)), &[0.3; 6])
            .map(|o| o.loss),
        Err(Error::NonFiniteWeight {
            what: "weight",
            index: 1,
            ..
        })
    ));
    let nan_pos_weight = BinaryCrossEntropyWithLogits {
        pos_weight: Some(vec![1.0, f32::NAN]),
        ..Default::default()
    };
    assert!(matches!(
        ctx.compute(
            &nan_pos_weight,
            Input::new(&[0.0; 4], bce_shape(&[0.0; 4], &nan_pos_weight)),
            &[0.0; 4]
        )
        .map(|o| o.loss),
        Err(Error::NonFiniteWeight {
            what: "pos_weight",
            index: 1,
            ..
        })
    ));
    for (i, bad) in [-0.01f32, 1.01, f32::NAN].into_iter().enumerate() {
        let mut p = vec![0.5f32; 4];
        p[i] = bad;
        assert!(
            matches!(
                ctx.compute(&BinaryCrossEntropy::default(), Input::new(&p, flat(&p)), &[0.5; 4]).map(|o| o.loss),
                Err(Error::ProbabilityOutOfRange { what: "input probability", index, count: 1, .. }) if index == i
            ),
            "probability {bad}"
        );
    }
}

/// BCE targets outside [0, 1] (or NaN) are refused on the host, as PyTorch refuses them, naming
/// the first one and counting them; 0 and 1 themselves are fine. BCE with logits takes any
/// finite target, as PyTorch does, and refuses infinite and NaN ones the same way.
#[test]
fn binary_targets_outside_their_range_are_refused() {
    let ctx = &contexts()[0];
    let x = [0.25f32, 0.5, 0.75, 0.5];
    let logits = BinaryCrossEntropyWithLogits::default();
    for bad in [2.0f32, -1.0, f32::NAN, 1.0000001, -1e-30, f32::INFINITY] {
        let mut t = vec![0.0f32, 1.0, 0.5, 0.0];
        t[1] = bad;
        t[3] = bad;
        let probs = ctx.compute(&BinaryCrossEntropy::default(), Input::new(&x, flat(&x)), &t);
        let reference =
            xent::reference::compute(&BinaryCrossEntropy::default(), Input::new(&x, flat(&x)), &t);
        for (what, got) in [("bce", probs.map(drop)), ("reference", reference.map(drop))] {
            match got {
                Err(Error::ProbabilityOutOfRange {
                    what: "target",
                    index: 1,
                    value: Some(v),
                    count: 2,
                }) if v.to_bits() == bad.to_bits() => {}
                other => panic!("{what}, target {bad}: {other:?}"),
            }
        }
        let with_logits = ctx.compute(&logits, Input::new(&x, flat(&x)), &t).map(drop);
        let reference = xent::reference::compute(&logits, Input::new(&x, flat(&x)), &t).map(drop);
        for (what, got) in [("bce with logits", with_logits), ("reference", reference)] {
            match (bad.is_finite(), got) {
                (true, Ok(())) => {}
                (
                    false,
                    Err(Error::NonFiniteTarget {
                        index: 1,
                        value: Some(v),
                        count: 2,
                    }),
                ) if v.to_bits() == bad.to_bits() => {}
                (_, other) => panic!("{what}, target {bad}: {other:?}"),
            }
        }
    }
    let edges = [0.0f32, -0.0, 1.0, 0.5];
    assert!(ctx
        .compute(
            &BinaryCrossEntropy::default(),
            Input::new(&x, flat(&x)),
            &edges
        )
        .is_ok());
}

#[test]
fn errors_read_as_one_clear_line() {
    let e = Error::LabelOutOfRange {
        row: 4,
        label: 10,
        count: 2,
        classes: 10,
        ignore_index: -100,
    };
    let text = e.to_string();
    assert_eq!(
        text,
        "target 10 at row 4 is outside [0, 10) and is not ignore_index (-100); 2 such \
         target(s) in the batch"
    );
    assert!(!text.contains('\n'));
}

/// Messages that name the real problem: 2-byte logits ending mid-word in their buffer, a
/// K-dimensional sample larger than a binding, an in-place gradient of a loss that writes its
/// own, and a GPU target outside [0, 1] (whose value is on the GPU).
#[test]
fn errors_name_the_real_problem() {
    use xent::{Dtype, GpuTensor, GradMode};
    let ctx = &contexts()[0];
    let labels = crate::common::storage(ctx, &[1i32]);
    // Three bf16 logits in a 6-byte buffer.
    let six = ctx.device().create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size: 6,
        usage: wgpu::BufferUsages::STORAGE,
        mapped_at_creation: false,
    });
    let tensor = GpuTensor::new(&six).with_dtype(Dtype::Bf16);
    let got = ctx.prepare(
        &CrossEntropy::default(),
        GpuInput::new(tensor, [1, 3]).with_grad(GradMode::Off),
        GpuTargets::indices(&labels),
    );
    assert!(
        matches!(&got, Err(Error::InvalidLayout { what: "logits", reason }) if reason.contains("8 bytes")),
        "{:?}",
        got.err()
    );
    // One sample of (1, 64, 64) logits in bindings of 8 KiB: no batch to split.
    let small = crate::common::with_binding_limit(ctx, 8 << 10);
    let x = vec![0.5f32; 64 * 64];
    let y = vec![1i64; 64];
    let got = small.compute(&CrossEntropy::default(), Input::new(&x, [1, 64, 64]), &y);
    let message = got.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(
        message.contains("one sample") && !message.contains("split the batch"),
        "{message}"
    );
    // A target read on the GPU has no value on the host to print.
    let e = Error::ProbabilityOutOfRange {
        what: "target",
        index: 5,
        value: None,
        count: 2,
    };
    assert_eq!(
        e.to_string(),
        "target at index 5 (read on the GPU) is outside [0, 1]; 2 such value(s)"
    );
}
