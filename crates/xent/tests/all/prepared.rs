//! The GPU-resident path: losses prepared on the caller's buffers, recorded into the caller's
//! encoder, read back only when asked.

#[allow(unused_imports)]
use crate::common::api::*;
use crate::common::{
    assert_close, assert_grad_close, contexts, read_buffer, storage, with_binding_limit, Rng,
};
use wgpu::util::DeviceExt;
use xent::{reference, CrossEntropy, Error, GradMode, Reduction};

#[test]
fn prepared_loss_records_into_the_callers_encoder_again_and_again() {
    let mut rng = Rng::new(31);
    let (n, c) = (500, 300);
    let logits = rng.vec(n * c, -6.0, 6.0);
    let labels: Vec<i32> = (0..n).map(|_| rng.below(c) as i32).collect();
    let options = CrossEntropy {
        label_smoothing: 0.1,
        ..Default::default()
    };
    for ctx in contexts() {
        let logits_buf = storage(ctx, &logits);
        let labels_buf = storage(ctx, &labels);
        let prepared = ctx
            .prepare(
                &options,
                GpuInput::new(&logits_buf, [n, c]).with_grad(GradMode::Separate),
                GpuTargets::indices(&labels_buf),
            )
            .unwrap();
        prepared.set_upstream(&[0.5]).unwrap();
        let mut encoder = ctx.device().create_command_encoder(&Default::default());
        for _ in 0..3 {
            prepared.record(&mut encoder);
        }
        ctx.queue().submit([encoder.finish()]);
        let loss = prepared.read_loss().unwrap();
        let grad = prepared.read_grad().unwrap().unwrap();
        // The async reads give the same as the blocking ones.
        assert_eq!(
            pollster::block_on(prepared.read_loss_async()).unwrap(),
            loss
        );
        let grad_async = pollster::block_on(prepared.read_grad_async()).unwrap();
        assert_eq!(grad_async.as_ref(), Some(&grad));
        let want = reference::compute(
            &options,
            grad_input(&logits, nc(&logits, c), Some(&[0.5])),
            &labels,
        )
        .unwrap();
        assert_close(ctx, "prepared loss", loss.values(), want.loss.values());
        assert_grad_close(
            ctx,
            "prepared gradient",
            &grad,
            want.grad.as_deref().unwrap(),
        );
    }
}

#[test]
fn labels_that_never_saw_the_host_give_nan_and_an_error_not_a_value() {
    for ctx in contexts() {
        let logits = [0.1f32, 0.2, 0.3, 0.4, 0.5, 0.6];
        let logits_buf = storage(ctx, &logits);
        let labels_buf = ctx
            .device()
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("labels"),
                contents: bytemuck::cast_slice(&[1i32, 7]), // 7 is outside [0, 3)
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
            });
        for reduction in [Reduction::None, Reduction::Mean] {
            ctx.queue()
                .write_buffer(&labels_buf, 0, bytemuck::cast_slice(&[1i32, 7]));
            let options = CrossEntropy {
                reduction,
                ..Default::default()
            };
            let prepared = ctx
                .prepare(
                    &options,
                    GpuInput::new(&logits_buf, [2, 3]).with_grad(GradMode::Separate),
                    GpuTargets::indices(&labels_buf),
                )
                .unwrap();
            prepared.run().unwrap();
            let want = Error::LabelOutOfRange {
                row: 1,
                label: 7,
                count: 1,
                classes: 3,
                ignore_index: -100,
            };
            // Every read reports it; none hands back a loss.
            assert_eq!(prepared.read_loss(), Err(want.clone()), "{reduction:?}");
            assert_eq!(prepared.read_grad(), Err(want.clone()));
            assert_eq!(prepared.check_targets(), Err(want.clone()));
            assert_eq!(
                pollster::block_on(prepared.read_loss_async()),
                Err(want.clone())
            );
            assert_eq!(pollster::block_on(prepared.read_grad_async()), Err(want));
            // A pipeline that reads the buffers itself sees NaN, never a plausible value.
            let loss = read_buffer(ctx, prepared.loss_buffer());
            assert!(loss.last().unwrap().is_nan(), "{reduction:?}: {loss:?}");
            let grad = read_buffer(ctx, prepared.grad_buffer().unwrap());
            assert!(
                grad[3..].iter().all(|g| g.is_nan()),
                "{reduction:?}: {grad:?}"
            );
            // Each record starts a new status: with the target fixed, the next run is clean.
            ctx.queue()
                .write_buffer(&labels_buf, 0, bytemuck::cast_slice(&[1i32, 2]));
            prepared.run().unwrap();
            assert_eq!(prepared.check_targets(), Ok(()));
            assert!(prepared
                .read_loss()
                .unwrap()
                .values()
                .iter()
                .all(|v| v.is_finite()));
        }
    }
}

#[test]
fn gpu_label_status_counts_every_bad_row_and_names_the_first() {
    // Many workgroups (and, with the capped context, a 2-D grid) race to record; the status
    // must still give the exact count and the first row, whatever the order they ran in.
    let (n, c) = (70_000, 5);
    let mut labels: Vec<i32> = (0..n).map(|r| (r % c) as i32).collect();
    labels[3] = -100; // ignored, not bad
    labels[40_000] = -1;
    labels[50_000] = 5;
    labels[69_999] = i32::MAX;
    labels[41_234] = -100_000;
    let logits = vec![0.5f32; n * c];
    for ctx in contexts() {
        let logits_buf = storage(ctx, &logits);
        let labels_buf = storage(ctx, &labels);
        for grad in [GradMode::Off, GradMode::Separate] {
            let options = CrossEntropy::default();
            let prepared = ctx
                .prepare(
                    &options,
                    GpuInput::new(&logits_buf, [n, c]).with_grad(grad),
                    GpuTargets::indices(&labels_buf),
                )
                .unwrap();
            prepared.run().unwrap();
            assert_eq!(
                prepared.check_targets(),
                Err(Error::LabelOutOfRange {
                    row: 40_000,
                    label: -1,
                    count: 4,
                    classes: c,
                    ignore_index: -100,
                }),
                "{grad:?}"
            );
        }
    }
}

#[test]
fn callers_buffers_are_checked() {
    let ctx = &contexts()[0];
    let small = storage(ctx, &[0.0f32; 5]);
    let labels = storage(ctx, &[0i32; 2]);
    let options = CrossEntropy::default();
    assert_eq!(
        ctx.prepare(
            &options,
            GpuInput::new(&small, [2, 3]).with_grad(GradMode::Off),
            GpuTargets::indices(&labels)
        )
        .err(),
        Some(Error::BufferTooSmall {
            what: "logits",
            needed: 24,
            size: 20
        })
    );
    let not_storage = ctx.device().create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size: 24,
        usage: wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    assert!(matches!(
        ctx.prepare(
            &options,
            GpuInput::new(&not_storage, [2, 3]).with_grad(GradMode::Off),
            GpuTargets::indices(&labels)
        ),
        Err(Error::BufferUsage {
            what: "logits",
            needed: "STORAGE",
            ..
        })
    ));
    // An in-place gradient is read by copying it out of the caller's logits: without
    // COPY_SRC that is a typed error naming the flag, before any copy is recorded, and the
    // loss still reads.
    let storage_only = ctx
        .device()
        .create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: None,
            contents: bytemuck::cast_slice(&[0.5f32, -1.0, 2.0, 0.0, 1.0, -0.5]),
            usage: wgpu::BufferUsages::STORAGE,
        });
    let in_place = ctx
        .prepare(
            &options,
            GpuInput::new(&storage_only, [2, 3]).with_grad(GradMode::InPlace),
            GpuTargets::indices(&labels),
        )
        .unwrap();
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    in_place.record(&mut encoder);
    ctx.queue().submit([encoder.finish()]);
    assert!(in_place.read_loss().unwrap().scalar().unwrap().is_finite());
    let missing = in_place.read_grad().unwrap_err();
    assert!(
        matches!(
            missing,
            Error::BufferUsage {
                what: "logits",
                needed: "COPY_SRC",
                ..
            }
        ),
        "{missing}"
    );
    assert!(missing.to_string().contains("wgpu::BufferUsages::COPY_SRC"));
    let prepared = ctx
        .prepare(
            &options,
            GpuInput::new(&storage(ctx, &[0.0f32; 6]), [2, 3]).with_grad(GradMode::Off),
            GpuTargets::indices(&labels),
        )
        .unwrap();
    assert!(matches!(
        prepared.set_upstream(&[1.0]),
        Err(Error::Misuse {
            what: "set_upstream",
            ..
        })
    ));
    assert!(prepared.grad_buffer().is_none());
}

#[test]
fn tensors_at_offsets_and_with_row_strides() {
    let mut rng = Rng::new(32);
    let (n, c, stride) = (37, 300, 307);
    let lead = 65; // 260 bytes: not a multiple of the 256-byte binding alignment
    let logits = rng.vec(n * c, -6.0, 6.0);
    let labels: Vec<i32> = (0..n).map(|_| rng.below(c) as i32).collect();
    let probs = rng.distributions(n, c);
    // Embed the (n, c) matrices in wider rows after `lead` values of padding.
    let embed = |m: &[f32], pad: f32| {
        let mut out = vec![pad; lead + n * stride];
        for (r, row) in m.chunks(c).enumerate() {
            out[lead + r * stride..lead + r * stride + c].copy_from_slice(row);
        }
        out
    };
    let mut label_words = vec![-7i32; 2];
    label_words.extend(&labels);
    let options = CrossEntropy {
        label_smoothing: 0.1,
        ..Default::default()
    };
    for ctx in contexts() {
        let wide_logits = storage(ctx, &embed(&logits, 1e30));
        let wide_probs = storage(ctx, &embed(&probs, 1e30));
        let labels_buf = storage(ctx, &label_words);
        let x = xent::GpuTensor::new(&wide_logits)
            .at(4 * lead as u64)
            .with_row_stride(stride);
        let y = xent::GpuTensor::new(&labels_buf).at(8);
        let t = xent::GpuTensor::new(&wide_probs)
            .at(4 * lead as u64)
            .with_row_stride(stride);

        let prepared = ctx
            .prepare(
                &options,
                GpuInput::new(x, [n, c]).with_grad(GradMode::Separate),
                GpuTargets::indices(y),
            )
            .unwrap();
        prepared.run().unwrap();
        let want = reference::compute(&options, grad_input(&logits, nc(&logits, c), None), &labels)
            .unwrap();
        assert_close(
            ctx,
            "strided ce",
            prepared.read_loss().unwrap().values(),
            want.loss.values(),
        );
        assert_grad_close(
            ctx,
            "strided ce",
            &prepared.read_grad().unwrap().unwrap(),
            want.grad.as_deref().unwrap(),
        );

        let prepared = ctx
            .prepare(
                &options,
                GpuInput::new(x, [n, c]).with_grad(GradMode::Separate),
                GpuTargets::values(t),
            )
            .unwrap();
        prepared.run().unwrap();
        let want = reference::compute(&options, grad_input(&logits, nc(&logits, c), None), &probs)
            .unwrap();
        assert_close(
            ctx,
            "strided probs",
            prepared.read_loss().unwrap().values(),
            want.loss.values(),
        );
        assert_grad_close(
            ctx,
            "strided probs",
            &prepared.read_grad().unwrap().unwrap(),
            want.grad.as_deref().unwrap(),
        );

        let prepared = ctx
            .prepare(
                &LogSoftmax,
                GpuInput::new(x, [n, c]).with_grad(GradMode::Off),
                GpuTargets::None,
            )
            .unwrap();
        prepared.run().unwrap();
        let want = reference::compute(
            &LogSoftmax,
            Input::new(&logits, nc(&logits, c)),
            Targets::None,
        )
        .map(|o| o.loss.into_values())
        .unwrap();
        assert_close(
            ctx,
            "strided log_softmax",
            prepared.read_loss().unwrap().values(),
            &want,
        );

        let flat = &logits[..n * c / 2];
        let target = &probs[..n * c / 2];
        let bce_in = storage(ctx, &[&[0.0f32; 3][..], flat].concat());
        let bce_t = storage(ctx, &[&[0.0f32; 5][..], target].concat());
        let options_bce = xent::BinaryCrossEntropyWithLogits::default();
        let prepared = ctx
            .prepare(
                &options_bce,
                GpuInput::new(
                    xent::GpuTensor::new(&bce_in).at(12),
                    bce_gpu_shape(flat.len(), &options_bce),
                )
                .with_grad(GradMode::Off),
                GpuTargets::values(xent::GpuTensor::new(&bce_t).at(20)),
            )
            .unwrap();
        prepared.run().unwrap();
        let want = reference::compute(
            &options_bce,
            Input::new(flat, bce_shape(flat, &options_bce)),
            target,
        )
        .map(|o| o.loss)
        .unwrap();
        assert_close(
            ctx,
            "offset bce",
            prepared.read_loss().unwrap().values(),
            want.values(),
        );

        // In place: the gradient lands in the logits' layout and the padding is untouched.
        let prepared = ctx
            .prepare(
                &options,
                GpuInput::new(x, [n, c]).with_grad(GradMode::InPlace),
                GpuTargets::indices(y),
            )
            .unwrap();
        prepared.run().unwrap();
        let want = reference::compute(&options, grad_input(&logits, nc(&logits, c), None), &labels)
            .unwrap();
        let after = read_buffer(ctx, &wide_logits);
        let embedded_want = embed(
            &want
                .grad
                .as_deref()
                .unwrap()
                .iter()
                .map(|&g| g as f32)
                .collect::<Vec<_>>(),
            1e30,
        );
        let pad_untouched = after
            .iter()
            .zip(&embedded_want)
            .filter(|(_, w)| **w == 1e30)
            .all(|(a, _)| *a == 1e30);
        assert!(pad_untouched, "in-place gradient wrote outside the logits");
        let got: Vec<f32> = (0..n)
            .flat_map(|r| after[lead + r * stride..lead + r * stride + c].to_vec())
            .collect();
        assert_grad_close(
            ctx,
            "strided in-place ce",
            &got,
            want.grad.as_deref().unwrap(),
        );
    }
}

#[test]
fn bad_tensor_layouts_are_errors() {
    let ctx = &contexts()[0];
    let buf = storage(ctx, &[0.0f32; 64]);
    let labels = storage(ctx, &[0i32; 4]);
    let options = CrossEntropy::default();
    let odd = xent::GpuTensor::new(&buf).at(6);
    assert!(matches!(
        ctx.prepare(
            &options,
            GpuInput::new(odd, [2, 3]).with_grad(GradMode::Off),
            GpuTargets::indices(&labels)
        ),
        Err(Error::InvalidLayout { what: "logits", .. })
    ));
    let narrow = xent::GpuTensor::new(&buf).with_row_stride(2);
    assert!(matches!(
        ctx.prepare(
            &options,
            GpuInput::new(narrow, [2, 3]).with_grad(GradMode::Off),
            GpuTargets::indices(&labels)
        ),
        Err(Error::InvalidShape { .. })
    ));
    // Row 1 ends at 240 + 4 * (10 + 3) = 292 bytes, past the 256-byte buffer.
    let past_end = xent::GpuTensor::new(&buf).at(240).with_row_stride(10);
    assert_eq!(
        ctx.prepare(
            &options,
            GpuInput::new(past_end, [2, 3]).with_grad(GradMode::Off),
            GpuTargets::indices(&labels)
        )
        .err(),
        Some(Error::BufferTooSmall {
            what: "logits",
            needed: 292,
            size: 256
        })
    );
}

/// A loop of same-shaped host calls, and of records of one prepared loss, creates no buffer
/// after its first iteration; every result is still right (the data changes each time).
#[test]
fn loops_allocate_nothing_after_the_first_iteration() {
    // A context of its own: other tests create buffers on the shared one concurrently.
    let adapter = xent::adapters().into_iter().next().expect("an adapter");
    let ctx = &xent::Context::from_adapter(adapter).unwrap();
    let mut rng = Rng::new(33);
    let (n, c) = (300, 50);
    let options = CrossEntropy {
        weight: Some(rng.vec(c, 0.5, 2.0)),
        label_smoothing: 0.1,
        ..Default::default()
    };
    let mut created_after_first = None;
    for step in 0..6 {
        let logits = rng.vec(n * c, -5.0, 5.0);
        let labels: Vec<u32> = (0..n).map(|_| rng.below(c) as u32).collect();
        let got = ctx
            .compute(&options, grad_input(&logits, nc(&logits, c), None), &labels)
            .unwrap();
        let bce = ctx
            .compute(
                &xent::BinaryCrossEntropyWithLogits::default(),
                Input::new(&logits, [n, c]),
                &rng.vec(n * c, 0.0, 1.0),
            )
            .map(|o| o.loss)
            .unwrap();
        assert!(bce.scalar().unwrap().is_finite());
        let want = reference::compute(&options, grad_input(&logits, nc(&logits, c), None), &labels)
            .unwrap();
        assert_close(
            ctx,
            &format!("loop step {step}"),
            got.loss.values(),
            want.loss.values(),
        );
        assert_grad_close(
            ctx,
            &format!("loop step {step}"),
            got.grad.as_deref().unwrap(),
            want.grad.as_deref().unwrap(),
        );
        match created_after_first {
            None => created_after_first = Some(ctx.buffers_created()),
            Some(count) => assert_eq!(ctx.buffers_created(), count, "step {step} created buffers"),
        }
    }
    // Other weights are another call: never served with the first call's weights.
    let logits = rng.vec(n * c, -5.0, 5.0);
    let labels: Vec<u32> = (0..n).map(|_| rng.below(c) as u32).collect();
    let other = CrossEntropy {
        weight: Some(rng.vec(c, 0.5, 2.0)),
        ..options.clone()
    };
    let got = ctx
        .compute(&other, Input::new(&logits, nc(&logits, c)), &labels)
        .map(|o| o.loss)
        .unwrap();
    let want = reference::compute(&other, Input::new(&logits, nc(&logits, c)), &labels)
        .map(|o| o.loss)
        .unwrap();
    assert_close(ctx, "other weights", got.values(), want.values());

    let logits_buf = storage(ctx, &logits);
    let labels_buf = storage(ctx, &labels.iter().map(|&l| l as i32).collect::<Vec<_>>());
    let prepared = ctx
        .prepare(
            &options,
            GpuInput::new(&logits_buf, [n, c]).with_grad(GradMode::Separate),
            GpuTargets::indices(&labels_buf),
        )
        .unwrap();
    let before = ctx.buffers_created();
    for _ in 0..10 {
        let mut encoder = ctx.device().create_command_encoder(&Default::default());
        prepared.record(&mut encoder);
        ctx.queue().submit([encoder.finish()]);
    }
    assert_eq!(
        ctx.buffers_created(),
        before,
        "recording a prepared loss allocates nothing"
    );
}

#[test]
fn an_ignore_index_beyond_i32_ignores_no_gpu_label() {
    let ctx = &contexts()[0];
    for ignore_index in [1i64 << 40, i64::MIN] {
        let options = CrossEntropy {
            ignore_index,
            reduction: Reduction::Sum,
            ..Default::default()
        };
        // On the GPU, labels are i32: none equals this ignore_index, so a label of i32::MIN is
        // out of range, not ignored.
        let logits = storage(ctx, &[0.5f32; 6]);
        let labels = storage(ctx, &[0i32, i32::MIN]);
        let input = GpuInput::new(&logits, [2, 3]);
        let prepared = ctx
            .prepare(&options, input, GpuTargets::indices(&labels))
            .unwrap();
        prepared.run().unwrap();
        let got = prepared.read_loss();
        assert!(
            matches!(
                got,
                Err(Error::LabelOutOfRange { row: 1, label, .. }) if label == i64::from(i32::MIN)
            ),
            "ignore_index {ignore_index}: {got:?}"
        );
        // On the host, labels are i64: the row equal to it is ignored, as in the reference.
        let x = [0.5f32, 1.0, -1.0, 2.0, 0.0, 1.0, 0.3, 0.2, 0.1];
        let labels = [0i64, ignore_index, 2];
        let got = ctx
            .compute(&options, Input::new(&x, [3, 3]), &labels)
            .unwrap();
        let want = reference::compute(&options, Input::new(&x, [3, 3]), &labels).unwrap();
        crate::common::assert_loss(ctx, "ignore_index beyond i32", &got.loss, &want.loss);
    }
}

/// A read gives the last recorded run's results or an error, never an older run's values:
/// before anything is recorded, after work recorded but never submitted, and after a
/// submission that was rejected (a destroyed target buffer).
#[test]
fn a_read_never_returns_an_older_runs_values() {
    let (n, c) = (4, 5);
    let logits: Vec<f32> = (0..n * c).map(|i| (i % 7) as f32).collect();
    let labels = vec![1i32, 0, 4, 2];
    let options = CrossEntropy::default();
    let ctx = &contexts()[0];
    let logits_buf = storage(ctx, &logits);
    let labels_buf = storage(ctx, &labels);
    let prepared = ctx
        .prepare(
            &options,
            GpuInput::new(&logits_buf, [n, c]).with_grad(GradMode::Separate),
            GpuTargets::indices(&labels_buf),
        )
        .unwrap();
    let not_run = |what: &str, result: Result<(), Error>| {
        assert!(
            matches!(result, Err(Error::NotRun { .. })),
            "{what}: {result:?}"
        );
    };
    not_run("read before any run", prepared.read_loss().map(drop));
    not_run("grad before any run", prepared.read_grad().map(drop));
    prepared.run().unwrap();
    let first = prepared.read_loss().unwrap();
    let want = reference::compute(&options, Input::new(&logits, nc(&logits, c)), &labels).unwrap();
    assert_close(ctx, "first run", first.values(), want.loss.values());
    // Recorded, never submitted.
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    prepared.record(&mut encoder);
    drop(encoder);
    not_run(
        "read after an unsubmitted record",
        prepared.read_loss().map(drop),
    );
    // Submitted now: the results are current again.
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    prepared.record(&mut encoder);
    ctx.queue().submit([encoder.finish()]);
    assert_eq!(prepared.read_loss().unwrap(), first);
    // A submission the device rejects: run says so, and reads refuse the older values.
    labels_buf.destroy();
    assert!(prepared.run().is_err());
    not_run("read after a rejected run", prepared.read_loss().map(drop));
    not_run("grad after a rejected run", prepared.read_grad().map(drop));
    not_run("labels after a rejected run", prepared.check_targets());
}

/// On a device passed with `Context::from_device`, the caller's own errors stay the caller's:
/// they reach the caller's handler, and no later xent call returns them.
#[test]
fn the_callers_errors_stay_the_callers() {
    use std::sync::{Arc, Mutex};
    let adapter = xent::adapters().into_iter().next().unwrap();
    let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
        required_limits: adapter.limits(),
        ..Default::default()
    }))
    .unwrap();
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let sink = Arc::clone(&seen);
    device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
        sink.lock().unwrap().push(e.to_string());
    }));
    let ctx = xent::Context::from_device(device, queue).unwrap();
    let logits = [0.5f32; 10];
    let labels = [3i32; 2];
    let logits_buf = storage(&ctx, &logits);
    let labels_buf = storage(&ctx, &labels);
    let prepared = ctx
        .prepare(
            &CrossEntropy::default(),
            GpuInput::new(&logits_buf, [2, 5]),
            GpuTargets::indices(&labels_buf),
        )
        .unwrap();
    // The caller's mistake: a write into a buffer without COPY_DST.
    ctx.queue().write_buffer(&logits_buf, 0, &[0u8; 4]);
    assert_eq!(
        seen.lock().unwrap().len(),
        1,
        "the caller's handler sees it"
    );
    prepared.run().unwrap();
    let loss = prepared.read_loss().unwrap();
    assert_close(
        &ctx,
        "after the caller's error",
        loss.values(),
        &[5f64.ln()],
    );
    let host = ctx
        .compute(
            &CrossEntropy::default(),
            Input::new(&logits, [2, 5]),
            &[3u32, 3],
        )
        .unwrap();
    assert_close(&ctx, "host call", host.loss.values(), &[5f64.ln()]);
}

/// Binary targets (and BCE probabilities) outside [0, 1] that never saw the host, and targets of
/// BCE with logits that are not finite, make their elements' loss and gradient NaN, and every
/// read reports the first one of the whole input and how many there are, whichever chunk holds
/// it (the context cuts the input into parts). BCE with logits takes the finite ones.
#[test]
fn binary_values_that_never_saw_the_host_give_nan_and_an_error_not_a_value() {
    let n = 300_000;
    let input: Vec<f32> = (0..n).map(|i| 0.1 + 0.8 * (i % 7) as f32 / 7.0).collect();
    let mut targets: Vec<f32> = (0..n).map(|i| (i % 3) as f32 / 2.0).collect();
    targets[123_457] = 2.0;
    targets[200_002] = f32::INFINITY;
    targets[250_001] = f32::NAN;
    targets[299_999] = -1.0;
    let mut bad_input = input.clone();
    bad_input[200_000] = 1.5;
    for whole in contexts() {
        let ctx = &with_binding_limit(whole, 1 << 20);
        let t_buf = storage(ctx, &targets);
        let good_t = storage(ctx, &vec![0.5f32; n]);
        let x_buf = storage(ctx, &input);
        let bad_x = storage(ctx, &bad_input);
        let target_error = Error::ProbabilityOutOfRange {
            what: "target",
            index: 123_457,
            value: None,
            count: 4,
        };
        let non_finite = Error::NonFiniteTarget {
            index: 200_002,
            value: None,
            count: 2,
        };
        let input_error = Error::ProbabilityOutOfRange {
            what: "input probability",
            index: 200_000,
            value: None,
            count: 1,
        };
        let probs = xent::BinaryCrossEntropy::default();
        let logits = xent::BinaryCrossEntropyWithLogits {
            reduction: Reduction::None,
            ..Default::default()
        };
        let bce = [123_457, 200_002, 250_001, 299_999];
        check_binary_status(ctx, "bce", &probs, (&x_buf, &t_buf, n), target_error, &bce);
        check_binary_status(
            ctx,
            "bce with logits",
            &logits,
            (&x_buf, &t_buf, n),
            non_finite,
            &[200_002, 250_001],
        );
        check_binary_status(
            ctx,
            "bce, bad input",
            &probs,
            (&bad_x, &good_t, n),
            input_error,
            &[200_000],
        );
    }
}

/// Runs `loss` on GPU (input, targets, length) once: every read gives `want`, and exactly the
/// elements `nan` have a NaN gradient.
fn check_binary_status<D>(
    ctx: &xent::Context,
    what: &str,
    loss: &D,
    (x, t, n): (&wgpu::Buffer, &wgpu::Buffer, usize),
    want: Error,
    nan: &[usize],
) where
    D: for<'a> xent::Descriptor<
        GpuInput<'a> = GpuInput<'a>,
        GpuTargets<'a> = GpuTargets<'a>,
        Prepared = xent::PreparedLoss,
    >,
{
    let prepared = ctx
        .prepare(
            loss,
            GpuInput::new(x, [n]).with_grad(GradMode::Separate),
            GpuTargets::values(t),
        )
        .unwrap();
    prepared.run().unwrap();
    assert_eq!(prepared.read_loss().map(drop), Err(want.clone()), "{what}");
    assert_eq!(prepared.read_grad().map(drop), Err(want.clone()), "{what}");
    assert_eq!(prepared.check_targets(), Err(want), "{what}");
    let loss = read_buffer(ctx, prepared.loss_buffer());
    assert!(
        loss.iter().any(|v| v.is_nan()),
        "{what}: the loss is not NaN"
    );
    let grad = read_buffer(ctx, prepared.grad_buffer().unwrap());
    let bad: Vec<usize> = (0..grad.len()).filter(|&i| grad[i].is_nan()).collect();
    assert_eq!(bad, nan, "{what}: NaN gradients");
}

/// Logits and class labels in one caller buffer: read-only inputs may share it (the result is
/// the reference's), but an in-place gradient, which writes the logits' buffer, is refused at
/// prepare time with a typed error instead of a submission that fails later.
#[test]
fn logits_and_labels_in_one_buffer() {
    let (n, c) = (6, 5);
    let mut rng = Rng::new(77);
    let logits = rng.vec(n * c, -4.0, 4.0);
    let labels: Vec<i32> = (0..n).map(|_| rng.below(c) as i32).collect();
    // Logits first, then the labels, from a 256-byte aligned offset.
    let mut words: Vec<u32> = logits.iter().map(|v| v.to_bits()).collect();
    words.resize(64, 0);
    words.extend(labels.iter().map(|&l| l as u32));
    let options = CrossEntropy::default();
    for ctx in contexts() {
        let shared = storage(ctx, &words);
        let x = xent::GpuTensor::new(&shared);
        let y = xent::GpuTensor::new(&shared).at(256);
        let prepared = ctx
            .prepare(
                &options,
                GpuInput::new(x, [n, c]).with_grad(GradMode::Separate),
                GpuTargets::indices(y),
            )
            .unwrap();
        prepared.run().unwrap();
        let want = reference::compute(&options, grad_input(&logits, nc(&logits, c), None), &labels)
            .unwrap();
        assert_close(
            ctx,
            "shared buffer",
            prepared.read_loss().unwrap().values(),
            want.loss.values(),
        );
        let in_place = ctx.prepare(
            &options,
            GpuInput::new(x, [n, c]).with_grad(GradMode::InPlace),
            GpuTargets::indices(y),
        );
        assert!(
            matches!(
                in_place,
                Err(Error::InvalidLayout {
                    what: "targets",
                    ..
                })
            ),
            "{:?}",
            in_place.map(drop)
        );
    }
}
