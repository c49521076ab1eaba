//! A prepared loss re-bound to other buffers and offsets: the same results as a fresh prepare,
//! bit for bit, with no buffer created; outputs in the caller's buffers; and the errors.

use crate::common::{contexts, pairwise_options, Rng};
use xent::wgpu;
use xent::{
    Context, CrossEntropy, Error, GpuInput, GpuTargets, GpuTensor, GradMode, PreparedLoss,
    Reduction,
};

/// A buffer of `bytes` bytes a caller's allocator might hand out: storage, written by
/// copies and the queue, read back.
fn pool_buffer(ctx: &Context, bytes: u64) -> wgpu::Buffer {
    ctx.device().create_buffer(&wgpu::BufferDescriptor {
        label: Some("pool"),
        size: bytes,
        usage: wgpu::BufferUsages::STORAGE
            | wgpu::BufferUsages::COPY_DST
            | wgpu::BufferUsages::COPY_SRC,
        mapped_at_creation: false,
    })
}

/// The loss and gradient of the last run, as read back.
fn results(prepared: &PreparedLoss) -> (xent::Loss, Option<Vec<f32>>) {
    (prepared.read_loss().unwrap(), prepared.read_grad().unwrap())
}

#[test]
fn a_rebound_loss_matches_a_fresh_prepare_for_100_steps_and_creates_no_buffer() {
    // A context of its own, so the buffer count is this test's alone.
    let ctx = &Context::new().expect("GPU tests need an adapter");
    let mut rng = Rng::new(2026);
    let (n, c) = (37, 300);
    let align = u64::from(ctx.limits().min_storage_buffer_offset_alignment.max(4));
    let logit_bytes = (4 * n * c) as u64;
    let label_bytes = (4 * n) as u64;
    // Four slots: two buffers, two offsets each (a multiple of the alignment apart), each
    // holding its own logits and labels.
    let span = logit_bytes.next_multiple_of(align);
    let buffers = [pool_buffer(ctx, 3 * span), pool_buffer(ctx, 3 * span)];
    let labels = [
        pool_buffer(ctx, 3 * align.max(label_bytes)),
        pool_buffer(ctx, label_bytes),
    ];
    let slots: Vec<(usize, u64, u64)> =
        vec![(0, 0, 0), (1, span, 0), (0, 2 * span, align), (1, 0, 0)];
    for (k, &(b, at, label_at)) in slots.iter().enumerate() {
        let x = rng.vec(n * c, -5.0, 5.0);
        let t: Vec<i32> = (0..n).map(|i| ((i * 7 + k * 13) % c) as i32).collect();
        ctx.queue()
            .write_buffer(&buffers[b], at, xent::bytemuck::cast_slice(&x));
        ctx.queue()
            .write_buffer(&labels[b], label_at, xent::bytemuck::cast_slice(&t));
    }
    let input = |k: usize| {
        let (b, at, _) = slots[k];
        GpuInput::new(GpuTensor::new(&buffers[b]).at(at), [n, c]).with_grad(GradMode::Separate)
    };
    let targets = |k: usize| {
        let (b, _, label_at) = slots[k];
        GpuTargets::indices(GpuTensor::new(&labels[b]).at(label_at))
    };
    for options in pairwise_options(c, &mut rng).into_iter().step_by(5) {
        let options = CrossEntropy {
            return_lse: false,
            ..options
        };
        // A fresh prepare on each slot: what every re-bound step must give.
        let fresh: Vec<_> = (0..slots.len())
            .map(|k| {
                let prepared = ctx.prepare(&options, input(k), targets(k)).unwrap();
                prepared.run().unwrap();
                results(&prepared)
            })
            .collect();
        let mut prepared = ctx.prepare(&options, input(0), targets(0)).unwrap();
        let mut created = None;
        for step in 0..100 {
            let k = step % slots.len();
            prepared.bind(input(k), targets(k)).unwrap();
            let mut encoder = ctx.device().create_command_encoder(&Default::default());
            prepared.record(&mut encoder);
            ctx.queue().submit([encoder.finish()]);
            let got = results(&prepared);
            assert_eq!(got, fresh[k], "{options:?}: step {step} on slot {k}");
            match created {
                None => created = Some(ctx.buffers_created()),
                Some(before) => assert_eq!(
                    ctx.buffers_created(),
                    before,
                    "step {step} created a buffer"
                ),
            }
        }
    }
}

#[test]
fn the_caller_supplies_the_gradient_and_loss_buffers() {
    let ctx = &contexts()[0];
    let mut rng = Rng::new(44);
    let (n, c) = (5, 70);
    let align = u64::from(ctx.limits().min_storage_buffer_offset_alignment.max(4));
    let x = crate::common::storage(ctx, &rng.vec(n * c, -3.0, 3.0));
    let t = crate::common::storage(ctx, &(0..n as i32).collect::<Vec<i32>>());
    for reduction in [Reduction::None, Reduction::Mean] {
        let options = CrossEntropy {
            reduction,
            label_smoothing: 0.1,
            ..Default::default()
        };
        let input = GpuInput::new(&x, [n, c]).with_grad(GradMode::Separate);
        let fresh = ctx
            .prepare(&options, input.clone(), GpuTargets::indices(&t))
            .unwrap();
        fresh.run().unwrap();
        let want = results(&fresh);
        let mut prepared = ctx
            .prepare(&options, input, GpuTargets::indices(&t))
            .unwrap();
        let grads = pool_buffer(ctx, align + (4 * n * c) as u64);
        let losses = pool_buffer(ctx, align + (4 * n) as u64);
        prepared
            .bind_grad(GpuTensor::new(&grads).at(align))
            .unwrap();
        prepared
            .bind_loss(GpuTensor::new(&losses).at(align))
            .unwrap();
        prepared.run().unwrap();
        assert_eq!(prepared.grad_buffer(), Some(&grads));
        assert_eq!(prepared.loss_buffer(), &losses);
        assert_eq!(results(&prepared), want, "{reduction:?}");
        // The values lie in the caller's buffers, at the offsets given.
        let grad = crate::common::read_buffer(ctx, &grads)[(align / 4) as usize..].to_vec();
        assert_eq!(
            Some(grad),
            want.1,
            "{reduction:?}: the gradient in the caller's buffer"
        );
    }
}

#[test]
fn rebinding_to_another_layout_is_an_error() {
    let ctx = &contexts()[0];
    let align = u64::from(ctx.limits().min_storage_buffer_offset_alignment.max(4));
    let (n, c) = (4, 8);
    let x = pool_buffer(ctx, 4096);
    let t = pool_buffer(ctx, 4096);
    let small = pool_buffer(ctx, 64);
    fn input(tensor: GpuTensor<'_>, [n, c]: [usize; 2]) -> GpuInput<'_> {
        GpuInput::new(tensor, [n, c]).with_grad(GradMode::Separate)
    }
    let loss = CrossEntropy::default();
    let mut prepared = ctx
        .prepare(
            &loss,
            input(GpuTensor::new(&x), [n, c]),
            GpuTargets::indices(&t),
        )
        .unwrap();
    let labels = || GpuTargets::indices(&t);
    let shifted = prepared.bind(input(GpuTensor::new(&x).at(align / 2), [n, c]), labels());
    assert!(
        align <= 4 || matches!(shifted, Err(Error::InvalidLayout { what: "input", .. })),
        "{shifted:?}"
    );
    let shape = prepared.bind(
        GpuInput::new(&x, [n, c + 1]).with_grad(GradMode::Separate),
        labels(),
    );
    assert!(
        matches!(shape, Err(Error::Misuse { what: "bind", .. })),
        "{shape:?}"
    );
    let mode = prepared.bind(GpuInput::new(&x, [n, c]), labels());
    assert!(
        matches!(mode, Err(Error::Misuse { what: "bind", .. })),
        "{mode:?}"
    );
    let short = prepared.bind(input(GpuTensor::new(&small), [n, c]), labels());
    assert!(
        matches!(short, Err(Error::BufferTooSmall { .. })),
        "{short:?}"
    );
    let typed = prepared.bind(
        input(GpuTensor::new(&x).with_dtype(xent::Dtype::F16), [n, c]),
        labels(),
    );
    assert!(
        matches!(typed, Err(Error::InvalidLayout { .. })),
        "{typed:?}"
    );
    let none = prepared.bind(input(GpuTensor::new(&x), [n, c]), GpuTargets::None);
    assert!(matches!(none, Err(Error::Misuse { .. })), "{none:?}");
    // After the errors the loss still runs on what it was bound to.
    prepared
        .bind(input(GpuTensor::new(&x), [n, c]), labels())
        .unwrap();
    prepared.run().unwrap();
    assert!(prepared.read_loss().is_ok());
}
