//! Failures from below the API: requests larger than the adapter can hold, and a device that is
//! gone. Each gives a typed error in bounded time; nothing panics or hangs.

use std::time::{Duration, Instant};

#[allow(unused_imports)]
use crate::common::api::*;
use crate::common::contexts;
use xent::tools::bench::{Case, Shape};
use xent::{BinaryCrossEntropyWithLogits, Context, CrossEntropy, Error, GradMode};

#[test]
fn requests_past_the_adapters_memory_are_errors() {
    let ctx = &contexts()[0];
    // 2^40 bytes of logits: refused before any host or GPU memory is taken.
    let case = Case {
        shape: Shape::CrossEntropy {
            rows: 1 << 22,
            classes: 1 << 16,
        },
        grad: true,
    };
    let err = case
        .prepare(ctx)
        .err()
        .expect("2^40 bytes cannot be prepared");
    assert!(
        matches!(err, Error::TooLarge { needed, .. } if needed == 1 << 40),
        "{err}"
    );
    let case = Case {
        shape: Shape::BceWithLogits { len: 1 << 38 },
        grad: false,
    };
    assert!(matches!(case.prepare(ctx), Err(Error::TooLarge { .. })));
}

/// Every kind of call on `ctx` after its device is destroyed: each must return an error within
/// seconds; with `own_device` (a context that created its device) it must be `DeviceLost`.
fn calls_after_destroy(ctx: &Context, own_device: bool) {
    let logits = vec![0.5f32; 64 * 10];
    let labels = vec![3u32; 64];
    let options = CrossEntropy::default();
    // Work prepared before the loss of the device.
    let buffer = |data: &[u8]| {
        use wgpu::util::DeviceExt;
        ctx.device()
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: None,
                contents: data,
                usage: wgpu::BufferUsages::STORAGE,
            })
    };
    let (lb, tb) = (
        buffer(bytemuck::cast_slice(&logits)),
        buffer(bytemuck::cast_slice(&labels)),
    );
    let prepared = ctx
        .prepare(
            &options,
            GpuInput::new(&lb, [64, 10]).with_grad(GradMode::Separate),
            GpuTargets::indices(&tb),
        )
        .unwrap();
    assert!(ctx
        .compute(&options, Input::new(&logits, nc(&logits, 10)), &labels)
        .map(|o| o.loss)
        .is_ok());

    ctx.device().destroy();
    let start = Instant::now();
    let results: Vec<(&str, Result<(), Error>)> = vec![
        (
            "host call",
            ctx.compute(&options, Input::new(&logits, nc(&logits, 10)), &labels)
                .map(|o| o.loss)
                .map(drop),
        ),
        (
            "host call of a new shape",
            ctx.compute(
                &BinaryCrossEntropyWithLogits::default(),
                Input::new(
                    &[0.5; 7],
                    bce_shape(&[0.5; 7], &BinaryCrossEntropyWithLogits::default()),
                ),
                &[1.0; 7],
            )
            .map(|o| o.loss)
            .map(drop),
        ),
        ("run", prepared.run()),
        ("read_loss", prepared.read_loss().map(drop)),
        ("read_grad", prepared.read_grad().map(drop)),
        (
            "read_loss_async",
            pollster::block_on(prepared.read_loss_async()).map(drop),
        ),
        ("check_targets", prepared.check_targets()),
        (
            "prepare",
            ctx.prepare(
                &options,
                GpuInput::new(&lb, [64, 10]).with_grad(GradMode::Off),
                GpuTargets::indices(&tb),
            )
            .map(drop),
        ),
    ];
    for (what, result) in results {
        eprintln!("own device {own_device}, {what}: {result:?}");
        match result {
            Err(Error::DeviceLost(_)) => {}
            Err(_) if !own_device => {}
            other => panic!("{what} on a destroyed device gave {other:?}"),
        }
    }
    assert!(start.elapsed() < Duration::from_secs(60));
}

#[test]
fn a_destroyed_device_gives_errors_not_panics_or_hangs() {
    calls_after_destroy(&Context::new().unwrap(), true);
    // A caller's device: xent leaves its lost callback alone, and still returns errors.
    let adapter = xent::adapters().into_iter().next().unwrap();
    let (device, queue) =
        pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor::default())).unwrap();
    calls_after_destroy(&Context::from_device(device, queue).unwrap(), false);
}

/// (3, 10) logits of 0.5 and their labels (1), in buffers a caller made (`STORAGE` only).
fn caller_buffers(ctx: &Context) -> (wgpu::Buffer, wgpu::Buffer) {
    use wgpu::util::DeviceExt;
    let buffer = |data: &[u8]| {
        ctx.device()
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: None,
                contents: data,
                usage: wgpu::BufferUsages::STORAGE,
            })
    };
    (
        buffer(bytemuck::cast_slice(&[0.5f32; 30])),
        buffer(bytemuck::cast_slice(&[1i32; 3])),
    )
}

#[test]
fn a_destroyed_caller_buffer_is_an_error_not_a_panic() {
    let ctx = &contexts()[0];
    let (logits, labels) = caller_buffers(ctx);
    logits.destroy();
    let options = CrossEntropy::default();
    let result = ctx.prepare(
        &options,
        GpuInput::new(&logits, [3, 10]).with_grad(GradMode::Off),
        GpuTargets::indices(&labels),
    );
    assert!(
        matches!(
            result,
            Err(Error::Gpu {
                operation: xent::Operation::Prepare,
                ..
            })
        ),
        "{:?}",
        result.map(drop)
    );
    // The context is still usable for other work.
    assert!(ctx
        .compute(
            &options,
            Input::new(&[0.5; 30], nc(&[0.5; 30], 10)),
            &[1u32; 3]
        )
        .map(|o| o.loss)
        .is_ok());
}

#[test]
fn a_buffer_smaller_than_its_shape_is_refused_before_anything_is_allocated() {
    // A context of its own, so the buffer count is this test's alone.
    let ctx = Context::new().expect("GPU tests need an adapter");
    let small = ctx.device().create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size: 48,
        usage: wgpu::BufferUsages::STORAGE,
        mapped_at_creation: false,
    });
    let created = ctx.buffers_created();
    let start = Instant::now();
    let huge = 400_000_000;
    let results = [
        ctx.prepare(
            &xent::BinaryCrossEntropy::default(),
            GpuInput::new(&small, [huge]).with_grad(GradMode::Separate),
            GpuTargets::values(&small),
        ),
        ctx.prepare(
            &BinaryCrossEntropyWithLogits::default(),
            GpuInput::new(&small, [huge / 4, 4]),
            GpuTargets::values(&small),
        ),
        ctx.prepare(
            &CrossEntropy::default(),
            GpuInput::new(&small, [huge / 4, 4]).with_grad(GradMode::Separate),
            GpuTargets::indices(&small),
        ),
        ctx.prepare(
            &LogSoftmax,
            GpuInput::new(&small, [huge / 4, 4]),
            GpuTargets::None,
        ),
    ];
    for got in results {
        assert!(
            matches!(got, Err(Error::BufferTooSmall { size: 48, .. })),
            "{:?}",
            got.map(drop)
        );
    }
    assert_eq!(ctx.buffers_created(), created, "buffers were allocated");
    assert!(start.elapsed() < Duration::from_secs(5));
}

#[test]
fn sizes_from_the_caller_never_overflow() {
    // Tests run with overflow checks on (Cargo.toml), so an unchecked product would panic here.
    let ctx = &contexts()[0];
    let buffer = ctx.device().create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size: 64,
        usage: wgpu::BufferUsages::STORAGE,
        mapped_at_creation: false,
    });
    let options = CrossEntropy::default();
    let far = xent::GpuTensor::new(&buffer).at(u64::MAX - 3);
    let wide = xent::GpuTensor::new(&buffer).with_row_stride(usize::MAX);
    for (logits, shape) in [(far, [2, 3]), (wide, [2, 3]), (far, [usize::MAX, 3])] {
        let got = ctx.prepare(
            &options,
            GpuInput::new(logits, shape),
            GpuTargets::indices(&buffer),
        );
        assert!(
            matches!(
                got,
                Err(Error::BufferTooSmall { .. } | Error::InvalidShape { .. })
            ),
            "{shape:?}: {:?}",
            got.map(drop)
        );
    }
    // Host shapes whose element count overflows, and a class count of usize::MAX.
    let got = ctx.compute(&options, Input::new(&[], [2, usize::MAX]), &[0u32; 2]);
    assert!(matches!(got, Err(Error::InvalidShape { .. })), "{got:?}");
    let got = ctx.compute(&options, Input::new(&[], [0, usize::MAX]), &[0u32; 0]);
    assert!(
        matches!(&got, Ok(o) if o.loss.scalar().is_some_and(f32::is_nan))
            || matches!(
                got,
                Err(Error::TooLarge { .. } | Error::InvalidShape { .. })
            ),
        "{got:?}"
    );
    // Tuning knobs at their extremes.
    let extreme = ctx.with_tuning(xent::Tuning {
        row_elements_per_thread: usize::MAX,
        fill_workgroups: usize::MAX,
        rows_per_thread: usize::MAX,
        ..ctx.tuning()
    });
    let out = extreme
        .compute(&options, Input::new(&[0.5; 6], [2, 3]), &[0u32, 2])
        .unwrap();
    assert!(out.loss.scalar().unwrap().is_finite());
}

#[test]
fn a_device_below_xents_limits_is_refused_naming_the_limit() {
    let adapter = xent::adapters().into_iter().next().expect("an adapter");
    // Downlevel limits: 4 storage buffers per stage, where the kernels bind 8.
    let desc = wgpu::DeviceDescriptor {
        required_limits: wgpu::Limits::downlevel_defaults(),
        ..Default::default()
    };
    let (device, queue) = pollster::block_on(adapter.request_device(&desc)).unwrap();
    let got = Context::from_device(device, queue);
    assert!(
        matches!(&got, Err(Error::UnsupportedAdapter { reason, .. })
            if reason.contains("max_storage_buffers_per_shader_stage")),
        "{:?}",
        got.map(drop)
    );
}

/// A buffer made on one device and handed to a context of another (a second context on the same
/// adapter, or another backend's adapter) is an error at prepare time, never a panic and never
/// the numbers of some other buffer.
#[test]
fn a_buffer_of_another_device_is_an_error() {
    use wgpu::util::DeviceExt;
    let buffer = |ctx: &Context, data: &[u8]| {
        ctx.device()
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: None,
                contents: data,
                usage: wgpu::BufferUsages::STORAGE,
            })
    };
    let options = CrossEntropy::default();
    let own = &contexts()[0];
    // The context's own buffers exist too, so a lookup by a shared id would find one of them.
    let _own_logits = buffer(own, bytemuck::cast_slice(&[0.5f32; 30]));
    let _own_labels = buffer(own, bytemuck::cast_slice(&[1i32; 3]));
    let second = Context::new().unwrap();
    let mut others: Vec<(&str, &Context)> = vec![("a second context", &second)];
    let own_backend = own.adapter_info().backend;
    if let Some(other_backend) = contexts()
        .iter()
        .find(|c| c.adapter_info().backend != own_backend)
    {
        others.push(("another backend's adapter", other_backend));
    }
    for (what, other) in others {
        let logits = buffer(other, bytemuck::cast_slice(&[2.0f32; 30]));
        let labels = buffer(other, bytemuck::cast_slice(&[1i32; 3]));
        let result = own.prepare(
            &options,
            GpuInput::new(&logits, [3, 10]).with_grad(GradMode::Off),
            GpuTargets::indices(&labels),
        );
        assert!(
            matches!(result, Err(Error::Gpu { .. }) | Err(Error::Misuse { .. })),
            "{what}: {:?}",
            result.map(|p| p.run().and_then(|_| p.read_loss()))
        );
    }
}

/// On a device xent created, work that the caller records and submits after destroying one
/// of its buffers fails inside wgpu: no panic (wgpu's default handler would panic), and xent's
/// next call reports it as an error, once; the context then works again.
#[test]
fn a_failed_caller_submission_is_reported_by_the_next_call_not_a_panic() {
    let ctx = Context::new().unwrap();
    let (logits, labels) = caller_buffers(&ctx);
    let options = CrossEntropy::default();
    let prepared = ctx
        .prepare(
            &options,
            GpuInput::new(&logits, [3, 10]).with_grad(GradMode::Off),
            GpuTargets::indices(&labels),
        )
        .unwrap();
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    prepared.record(&mut encoder);
    logits.destroy();
    ctx.queue().submit([encoder.finish()]);
    let next = prepared.read_loss();
    assert!(
        matches!(&next, Err(Error::Gpu { message, .. }) if message.contains("outside xent")),
        "{next:?}"
    );
    let input = Input::new(&[0.5; 30], nc(&[0.5; 30], 10));
    assert!(ctx.compute(&options, input, &[1u32; 3]).is_ok());
}
