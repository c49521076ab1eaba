//! A vocabulary split across devices: each shard's states on one adapter (here lavapipe's
//! Vulkan and GL adapters, the first and last contexts), merged on the host, finished on each,
//! give the loss and gradients of the unsplit float64 reference.

#[allow(unused_imports)]
use crate::common::api::*;
use crate::common::{
    assert_close, assert_grad_close, contexts, pairwise_options, storage, with_binding_limit, Rng,
};
use xent::{
    reference, Context, CrossEntropy, Error, Reduction, ShardStates, SplitFinish, SplitStates,
    VocabShard,
};

/// The columns `cols` of (rows, width) row-major values.
fn columns<T: Copy>(values: &[T], width: usize, cols: std::ops::Range<usize>) -> Vec<T> {
    values
        .chunks(width)
        .flat_map(|row| row[cols.clone()].to_vec())
        .collect()
}

#[test]
fn a_split_vocabulary_gives_the_unsplit_loss_and_gradients() {
    let mut rng = Rng::new(191);
    let all = contexts();
    let devices = [&all[0], &all[all.len() - 1]];
    // (rows, vocabulary, where each shard starts): uneven shards, one of a single class,
    // rows long enough for several threads each, and an empty batch.
    let cases: [(usize, usize, &[usize]); 5] = [
        (6, 7, &[0, 3]),
        (33, 300, &[0, 1, 170]),
        (3, 5000, &[0, 2500]),
        (257, 40, &[0, 39]),
        (0, 10, &[0, 5]),
    ];
    for (rows, vocab, starts) in cases {
        let mut x = rng.vec(rows * vocab, -8.0, 8.0);
        if rows > 1 {
            x[vocab + 1] = f32::NEG_INFINITY;
        }
        let labels: Vec<i64> = (0..rows)
            .map(|n| match n % 5 {
                4 => -100,
                _ => rng.below(vocab) as i64,
            })
            .collect();
        let ranges: Vec<std::ops::Range<usize>> = starts
            .iter()
            .enumerate()
            .map(|(k, &s)| s..starts.get(k + 1).copied().unwrap_or(vocab))
            .collect();
        // Every option set on one shape, a third of them (every option still) on the others.
        let step = if vocab == 300 { 1 } else { 3 };
        for options in pairwise_options(vocab, &mut rng).into_iter().step_by(step) {
            let upstream = match options.reduction {
                Reduction::None => rng.vec(rows, -1.0, 1.0),
                _ => vec![0.75],
            };
            let case = format!(
                "shards {rows}x{vocab} at {starts:?}, weighted {}, ignore {}, smoothing {}, \
                 softcap {:?}, z-loss {}, {:?}",
                options.weight.is_some(),
                options.ignore_index,
                options.label_smoothing,
                options.softcap,
                options.z_loss,
                options.reduction
            );
            let ignore = |&l: &i64| if l == -100 { options.ignore_index } else { l };
            let labels: Vec<i64> = labels.iter().map(ignore).collect();
            let want = reference::compute(
                &options,
                Input::new(&x, [rows, vocab]).with_upstream(&upstream),
                &labels,
            )
            .unwrap();
            let parts: Vec<Vec<f32>> = ranges
                .iter()
                .map(|r| columns(&x, vocab, r.clone()))
                .collect();
            let shard = |k: usize| VocabShard {
                first: ranges[k].start,
                vocab,
            };
            // Each shard's states on its own device, merged here.
            let mut merged: Option<ShardStates> = None;
            for (k, part) in parts.iter().enumerate() {
                let ctx = devices[k % 2];
                let input = Input::new(part, [rows, ranges[k].len()]);
                let states = states_of(ctx, &options, shard(k), input, &labels).unwrap();
                assert_eq!(states.rows(), rows);
                merged = Some(match merged {
                    None => states,
                    Some(m) => m.merge(&states).unwrap(),
                });
            }
            let merged = merged.unwrap();
            for (k, part) in parts.iter().enumerate() {
                let ctx = devices[(k + 1) % 2];
                let input = Input::new(part, [rows, ranges[k].len()]).with_upstream(&upstream);
                let got = finish_of(ctx, &options, shard(k), input, &labels, &merged).unwrap();
                let shard_case = format!("{case} shard {k}");
                assert_shard_matches(ctx, &shard_case, &got, (&want, vocab), ranges[k].clone());
            }
        }
    }
}

/// Asserts a shard's finish gives the unsplit reference's loss (`want`, over `vocab` classes)
/// and its gradient's columns `cols`.
fn assert_shard_matches(
    ctx: &xent::Context,
    case: &str,
    got: &xent::Output,
    (want, vocab): (&xent::Output<f64>, usize),
    cols: std::ops::Range<usize>,
) {
    assert_close(ctx, case, got.loss.values(), want.loss.values());
    let want_grad = columns(want.grad.as_deref().unwrap(), vocab, cols);
    assert_grad_close(ctx, case, got.grad.as_deref().unwrap(), &want_grad);
}

/// Merging is exact up to rounding in any grouping: (a b) c and a (b c) agree.
#[test]
fn shard_states_merge_in_any_grouping() {
    let mut rng = Rng::new(192);
    let ctx = &contexts()[0];
    let (rows, vocab) = (20, 90);
    let x = rng.vec(rows * vocab, -30.0, 30.0);
    let labels: Vec<i64> = (0..rows).map(|_| rng.below(vocab) as i64).collect();
    let options = CrossEntropy {
        label_smoothing: 0.2,
        weight: Some(rng.vec(vocab, 0.5, 2.0)),
        ..Default::default()
    };
    let states: Vec<ShardStates> = [0..30, 30..31, 31..90]
        .into_iter()
        .map(|r| {
            let part = columns(&x, vocab, r.clone());
            let shard = VocabShard {
                first: r.start,
                vocab,
            };
            let input = Input::new(&part, [rows, r.len()]);
            states_of(ctx, &options, shard, input, &labels).unwrap()
        })
        .collect();
    let left = states[0]
        .merge(&states[1])
        .unwrap()
        .merge(&states[2])
        .unwrap();
    let right = states[0]
        .merge(&states[1].merge(&states[2]).unwrap())
        .unwrap();
    let want: Vec<f64> = right.values().iter().map(|&v| f64::from(v)).collect();
    assert_close(ctx, "merge grouping", left.values(), &want);
}

#[test]
fn shard_misuse_is_an_error() {
    let ctx = &contexts()[0];
    let options = CrossEntropy::default();
    let x = [0.5f32; 6];
    let shard = VocabShard {
        first: 8,
        vocab: 10,
    };
    // Three classes from class 8 overrun a vocabulary of 10.
    let err = states_of(ctx, &options, shard, Input::new(&x, [2, 3]), &[0i64, 1]).unwrap_err();
    assert!(matches!(err, Error::InvalidShape { .. }), "{err}");
    let shard = VocabShard {
        first: 7,
        vocab: 10,
    };
    // A target beyond the vocabulary.
    let err = states_of(ctx, &options, shard, Input::new(&x, [2, 3]), &[0i64, 10]).unwrap_err();
    assert!(matches!(err, Error::LabelOutOfRange { .. }), "{err}");
    // Probabilities, and the lse output, are not a shard's.
    let t = [0.5f32; 6];
    let err = states_of(ctx, &options, shard, Input::new(&x, [2, 3]), &t[..]).unwrap_err();
    assert!(matches!(err, Error::Misuse { .. }), "{err}");
    let lse = CrossEntropy {
        return_lse: true,
        ..Default::default()
    };
    let err = states_of(ctx, &lse, shard, Input::new(&x, [2, 3]), &[0i64, 1]).unwrap_err();
    assert!(matches!(err, Error::InvalidOption { .. }), "{err}");
    // Merged states of other rows.
    let three = ShardStates::from_values(vec![0.0; 12], 0..10, 10).unwrap();
    let err = finish_of(
        ctx,
        &options,
        shard,
        Input::new(&x, [2, 3]),
        &[0i64, 1],
        &three,
    )
    .unwrap_err();
    assert!(matches!(err, Error::ShapeMismatch { .. }), "{err}");
    assert!(three
        .merge(&ShardStates::from_values(vec![0.0; 8], 0..10, 10).unwrap())
        .is_err());
}

/// Shards that overlap, leave a gap or are finished without the others' states are errors,
/// never a wrong loss: (0..5, 3..8), (0..3, 5..8), and 0..5 finished with its own states.
#[test]
fn overlapping_missing_and_unmerged_shards_are_errors() {
    let mut rng = Rng::new(193);
    let ctx = &contexts()[0];
    let (rows, vocab) = (4, 8);
    let x = rng.vec(rows * vocab, -3.0, 3.0);
    let labels: Vec<i64> = (0..rows).map(|_| rng.below(vocab) as i64).collect();
    let options = CrossEntropy::default();
    let states = |r: std::ops::Range<usize>| {
        let part = columns(&x, vocab, r.clone());
        let shard = VocabShard {
            first: r.start,
            vocab,
        };
        let input = Input::new(&part, [rows, r.len()]);
        states_of(ctx, &options, shard, input, &labels).unwrap()
    };
    let finish = |r: std::ops::Range<usize>, merged: &ShardStates| {
        let part = columns(&x, vocab, r.clone());
        let shard = VocabShard {
            first: r.start,
            vocab,
        };
        let input = Input::new(&part, [rows, r.len()]).with_grad();
        finish_of(ctx, &options, shard, input, &labels, merged)
    };
    // Overlap: refused at the merge.
    let err = states(0..5).merge(&states(3..8)).unwrap_err();
    assert!(
        matches!(&err, Error::Misuse { reason, .. } if reason.contains("3..5")),
        "{err}"
    );
    // A gap: the merge is fine, the finish is refused.
    let gap = states(0..3).merge(&states(5..8)).unwrap();
    assert_eq!(gap.classes(), &[0..3, 5..8]);
    let err = finish(0..3, &gap).unwrap_err();
    assert!(matches!(err, Error::Misuse { .. }), "{err}");
    // Own states only.
    let err = finish(0..5, &states(0..5)).unwrap_err();
    assert!(matches!(err, Error::Misuse { .. }), "{err}");
    // Every shard once: the loss of the unsplit logits.
    let whole = states(0..5).merge(&states(5..8)).unwrap();
    assert!(whole.is_complete());
    let got = finish(0..5, &whole).unwrap();
    let want = reference::compute(&options, Input::new(&x, [rows, vocab]), &labels).unwrap();
    assert_close(ctx, "two shards", got.loss.values(), want.loss.values());
    // States that travelled as plain values keep their classes.
    let moved = ShardStates::from_values(states(5..8).values().to_vec(), 5..8, vocab).unwrap();
    assert!(states(0..5).merge(&moved).unwrap().is_complete());
}

/// Shards whose logits exceed a storage binding run in chunks of rows: each chunk's states are
/// copied out, and its merged states in, at its own rows.
#[test]
fn a_split_vocabulary_runs_in_chunks() {
    let mut rng = Rng::new(193);
    let (rows, vocab) = (700, 200);
    let x = rng.vec(rows * vocab, -8.0, 8.0);
    let labels: Vec<i64> = (0..rows).map(|_| rng.below(vocab) as i64).collect();
    let options = CrossEntropy {
        label_smoothing: 0.1,
        z_loss: 1e-3,
        reduction: Reduction::None,
        ..Default::default()
    };
    let want =
        reference::compute(&options, Input::new(&x, [rows, vocab]).with_grad(), &labels).unwrap();
    // 128 KiB bindings hold 327 rows of a shard's 100 logits, chunks are whole workgroups of
    // 256 rows: 3 chunks.
    let ctx = &with_binding_limit(&contexts()[0], 128 << 10);
    let ranges = [0..100, 100..200];
    let parts: Vec<Vec<f32>> = ranges
        .iter()
        .map(|r| columns(&x, vocab, r.clone()))
        .collect();
    let shard = |k: usize| VocabShard {
        first: ranges[k].start,
        vocab,
    };
    let states = |k: usize| {
        let input = Input::new(&parts[k], [rows, 100]);
        states_of(ctx, &options, shard(k), input, &labels).unwrap()
    };
    let merged = states(0).merge(&states(1)).unwrap();
    for k in 0..2 {
        let input = Input::new(&parts[k], [rows, 100]).with_grad();
        let got = finish_of(ctx, &options, shard(k), input, &labels, &merged).unwrap();
        let case = format!("chunked shard {k}");
        assert_shard_matches(ctx, &case, &got, (&want, vocab), ranges[k].clone());
    }
}

/// A shape whose size overflows is an error, not a panic.
#[test]
fn an_overflowing_shard_shape_is_an_error() {
    let ctx = &contexts()[0];
    let shard = VocabShard {
        first: 0,
        vocab: usize::MAX,
    };
    let input = Input::new(&[0.0f32; 4], [usize::MAX / 2, 4]);
    let err = states_of(ctx, &CrossEntropy::default(), shard, input, &[0i64]).unwrap_err();
    assert!(matches!(err, Error::InvalidShape { .. }), "{err}");
}

/// The states of `options`' cross-entropy over `shard`'s logits (the [`SplitStates`] step).
fn states_of<'a>(
    ctx: &Context,
    options: &CrossEntropy,
    shard: VocabShard,
    input: Input<'a>,
    labels: impl Into<xent::Targets<'a>>,
) -> xent::Result<ShardStates> {
    let step = SplitStates {
        cross_entropy: options.clone(),
        shard,
    };
    ctx.compute(&step, input, labels)
}

/// The loss and `shard`'s gradient from `merged` (the [`SplitFinish`] step).
fn finish_of<'a>(
    ctx: &Context,
    options: &CrossEntropy,
    shard: VocabShard,
    input: Input<'a>,
    labels: impl Into<xent::Targets<'a>>,
    merged: &'a ShardStates,
) -> xent::Result<xent::Output> {
    let step = SplitFinish {
        cross_entropy: options.clone(),
        shard,
    };
    ctx.compute(&step, input, (labels.into(), merged))
}

/// The split on GPU buffers only: each shard's states from its prepared form stay in a GPU
/// buffer, are gathered into one buffer (as an all-gather would), and every shard's finish
/// merges them there in shard order; the results match the unsplit reference, and every shard
/// gets the same loss bit for bit.
#[test]
fn a_split_runs_on_gpu_buffers_only() {
    let mut rng = Rng::new(577);
    // Bindings of 120 KiB cut the wider shards' 70 rows into two chunks, so each chunk merges its own
    // rows of every shard's states; the shards are uneven, one a single class.
    let ctx = &with_binding_limit(&contexts()[0], 120 << 10);
    let (rows, vocab) = (70, 900);
    let starts = [0, 1, 450, 899];
    let ranges: Vec<std::ops::Range<usize>> = starts
        .iter()
        .enumerate()
        .map(|(k, &s)| s..starts.get(k + 1).copied().unwrap_or(vocab))
        .collect();
    let x = rng.vec(rows * vocab, -6.0, 6.0);
    let labels: Vec<i32> = (0..rows)
        .map(|n| match n % 9 {
            4 => -100,
            _ => rng.below(vocab) as i32,
        })
        .collect();
    let wide: Vec<i64> = labels.iter().map(|&l| i64::from(l)).collect();
    let gpu_labels = storage(ctx, &labels);
    for options in pairwise_options(vocab, &mut rng).into_iter().step_by(4) {
        let options = CrossEntropy {
            ignore_index: -100,
            ..options
        };
        let case = format!(
            "GPU split {:?}, smoothing {}",
            options.reduction, options.label_smoothing
        );
        let parts: Vec<wgpu::Buffer> = ranges
            .iter()
            .map(|r| storage(ctx, &columns(&x, vocab, r.clone())))
            .collect();
        let shard = |k: usize| VocabShard {
            first: ranges[k].start,
            vocab,
        };
        let input = |k: usize| xent::GpuInput::new(&parts[k], [rows, ranges[k].len()]);
        let states: Vec<xent::PreparedStates> = (0..parts.len())
            .map(|k| {
                let step = SplitStates {
                    cross_entropy: options.clone(),
                    shard: shard(k),
                };
                let labels = xent::GpuTargets::indices(&gpu_labels);
                ctx.prepare(&step, input(k), labels).unwrap()
            })
            .collect();
        let row_bytes = (4 * ShardStates::VALUES_PER_ROW) as u64;
        let gathered = ctx.device().create_buffer(&wgpu::BufferDescriptor {
            label: Some("gathered states"),
            size: row_bytes * (rows * parts.len()) as u64,
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_DST
                | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let finishes: Vec<xent::PreparedLoss> = (0..parts.len())
            .map(|k| {
                let step = SplitFinish {
                    cross_entropy: options.clone(),
                    shard: shard(k),
                };
                let targets =
                    xent::GpuSplitTargets::new(&gpu_labels, &gathered).gathered(parts.len());
                let input = input(k).with_grad(xent::GradMode::Separate);
                ctx.prepare(&step, input, targets).unwrap()
            })
            .collect();
        // One submission: states, the gather, every finish.
        let mut encoder = ctx.device().create_command_encoder(&Default::default());
        for (k, prepared) in states.iter().enumerate() {
            prepared.record(&mut encoder);
            let at = row_bytes * (k * rows) as u64;
            encoder.copy_buffer_to_buffer(
                prepared.states_buffer(),
                0,
                &gathered,
                at,
                row_bytes * rows as u64,
            );
        }
        for prepared in &finishes {
            prepared.record(&mut encoder);
        }
        ctx.queue().submit([encoder.finish()]);
        let want =
            reference::compute(&options, Input::new(&x, [rows, vocab]).with_grad(), &wide).unwrap();
        let first = finishes[0].read_loss().unwrap();
        for (k, prepared) in finishes.iter().enumerate() {
            let got = xent::Output {
                loss: prepared.read_loss().unwrap(),
                grad: prepared.read_grad().unwrap(),
                lse: None,
            };
            assert_eq!(
                got.loss, first,
                "{case}: shard {k}'s loss differs from shard 0's"
            );
            let shard_case = format!("{case} shard {k}");
            assert_shard_matches(ctx, &shard_case, &got, (&want, vocab), ranges[k].clone());
        }
    }
}
