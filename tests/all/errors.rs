//! Every bad input gets its typed error before anything is dispatched; nothing panics.

use crate::common::contexts;
use xent::{reference, BceOptions, BceWithLogitsOptions, CrossEntropyOptions, Error};

#[test]
fn shape_errors() {
    let ctx = &contexts()[0];
    let opts = CrossEntropyOptions::default();
    // Logits not a multiple of C, and C = 0.
    assert!(matches!(
        ctx.cross_entropy(&[1.0; 7], 3, &[0u32, 1], &opts),
        Err(Error::InvalidShape { .. })
    ));
    assert!(matches!(
        ctx.log_softmax(&[1.0; 6], 0),
        Err(Error::InvalidShape { .. })
    ));
    // One target per row.
    assert!(matches!(
        ctx.cross_entropy(&[1.0; 6], 3, &[0u32], &opts),
        Err(Error::ShapeMismatch {
            what: "targets",
            expected: 2,
            got: 1,
            ..
        })
    ));
    // Probability targets of the logits' shape.
    assert!(matches!(
        ctx.cross_entropy_probs(&[1.0; 6], 3, &[0.5; 5], &opts),
        Err(Error::ShapeMismatch {
            what: "targets",
            expected: 6,
            got: 5,
            ..
        })
    ));
    // BCE target and weight lengths.
    assert!(matches!(
        ctx.binary_cross_entropy(&[0.5; 4], &[0.5; 3], &BceOptions::default()),
        Err(Error::ShapeMismatch { what: "target", .. })
    ));
    let w = BceOptions {
        weight: Some(vec![1.0; 3]),
        ..Default::default()
    };
    assert!(matches!(
        ctx.binary_cross_entropy(&[0.5; 4], &[0.5; 4], &w),
        Err(Error::ShapeMismatch {
            what: "weight",
            expected: 4,
            got: 3,
            ..
        })
    ));
    // pos_weight must divide the input into rows.
    let pw = BceWithLogitsOptions {
        pos_weight: Some(vec![1.0; 3]),
        ..Default::default()
    };
    assert!(matches!(
        ctx.binary_cross_entropy_with_logits(&[0.5; 4], &[0.5; 4], &pw),
        Err(Error::InvalidShape { .. })
    ));
}

#[test]
fn label_errors() {
    let ctx = &contexts()[0];
    let logits = [0.0f32; 6];
    let opts = CrossEntropyOptions::default();
    let err = ctx
        .cross_entropy(&logits, 3, &[0i64, 3], &opts)
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
        ctx.cross_entropy(&logits, 3, &[-1i32, 0], &opts),
        Err(Error::LabelOutOfRange {
            row: 0,
            label: -1,
            ..
        })
    ));
    // -100 is only legal while it is the ignore_index.
    let other = CrossEntropyOptions {
        ignore_index: 2,
        ..Default::default()
    };
    assert!(matches!(
        ctx.cross_entropy(&logits, 3, &[-100i64, 0], &other),
        Err(Error::LabelOutOfRange {
            row: 0,
            label: -100,
            ..
        })
    ));
    // u32 labels beyond i32 are out of range, not wrapped.
    assert!(matches!(
        ctx.cross_entropy(&logits, 3, &[u32::MAX, 0], &opts),
        Err(Error::LabelOutOfRange {
            label: 4294967295,
            ..
        })
    ));
    // The count covers every offending row, the row and value are the first one's.
    assert!(matches!(
        ctx.cross_entropy(&[0.0f32; 12], 3, &[0i64, 3, -100, -7], &opts),
        Err(Error::LabelOutOfRange {
            row: 1,
            label: 3,
            count: 2,
            ..
        })
    ));
    // The reference checks the same.
    assert!(matches!(
        reference::cross_entropy(&logits, 3, &[0i64, 3], &opts),
        Err(Error::LabelOutOfRange { .. })
    ));
}

#[test]
fn option_and_value_errors() {
    let ctx = &contexts()[0];
    let logits = [0.0f32; 6];
    for e in [-0.1f32, 1.5, f32::NAN] {
        let opts = CrossEntropyOptions {
            label_smoothing: e,
            ..Default::default()
        };
        assert!(
            matches!(
                ctx.cross_entropy(&logits, 3, &[0u32, 1], &opts),
                Err(Error::InvalidOption {
                    name: "label_smoothing",
                    ..
                })
            ),
            "label_smoothing {e}"
        );
    }
    let wrong_len = CrossEntropyOptions {
        weight: Some(vec![1.0, 1.0]),
        ..Default::default()
    };
    assert!(matches!(
        ctx.cross_entropy(&logits, 3, &[0u32, 1], &wrong_len),
        Err(Error::ShapeMismatch {
            what: "weight",
            expected: 3,
            got: 2,
            ..
        })
    ));
    let non_finite = CrossEntropyOptions {
        weight: Some(vec![1.0, f32::INFINITY, 1.0]),
        ..Default::default()
    };
    assert!(matches!(
        ctx.cross_entropy_probs(&logits, 3, &[0.3; 6], &non_finite),
        Err(Error::NonFiniteWeight {
            what: "weight",
            index: 1,
            ..
        })
    ));
    let nan_pos_weight = BceWithLogitsOptions {
        pos_weight: Some(vec![1.0, f32::NAN]),
        ..Default::default()
    };
    assert!(matches!(
        ctx.binary_cross_entropy_with_logits(&[0.0; 4], &[0.0; 4], &nan_pos_weight),
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
                ctx.binary_cross_entropy(&p, &[0.5; 4], &BceOptions::default()),
                Err(Error::ProbabilityOutOfRange { index, .. }) if index == i
            ),
            "probability {bad}"
        );
    }
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
