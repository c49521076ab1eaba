//! The GPU-resident path: losses prepared on the caller's buffers, recorded into the caller's
//! encoder, read back only when asked.

use crate::common::{assert_close, assert_grad_close, contexts, Rng};
use wgpu::util::DeviceExt;
use xent::{reference, CrossEntropyOptions, Error, GradMode, Reduction};

fn storage<T: bytemuck::Pod>(ctx: &xent::Context, data: &[T]) -> wgpu::Buffer {
    ctx.device()
        .create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("test input"),
            contents: bytemuck::cast_slice(data),
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
        })
}

#[test]
fn prepared_loss_records_into_the_callers_encoder_again_and_again() {
    let mut rng = Rng::new(31);
    let (n, c) = (500, 300);
    let logits = rng.vec(n * c, -6.0, 6.0);
    let labels: Vec<i32> = (0..n).map(|_| rng.below(c) as i32).collect();
    let options = CrossEntropyOptions {
        label_smoothing: 0.1,
        ..Default::default()
    };
    for ctx in contexts() {
        let logits_buf = storage(ctx, &logits);
        let labels_buf = storage(ctx, &labels);
        let prepared = ctx
            .prepare_cross_entropy(&logits_buf, &labels_buf, n, c, &options, GradMode::Separate)
            .unwrap();
        prepared.set_upstream(&[0.5]).unwrap();
        let mut encoder = ctx.device().create_command_encoder(&Default::default());
        for _ in 0..3 {
            prepared.record(&mut encoder);
        }
        ctx.queue().submit([encoder.finish()]);
        let loss = prepared.read_loss().unwrap();
        let grad = prepared.read_grad().unwrap().unwrap();
        let want =
            reference::cross_entropy_and_grad(&logits, c, &labels, &options, Some(&[0.5])).unwrap();
        assert_close(ctx, "prepared loss", loss.values(), want.loss.values());
        assert_grad_close(ctx, "prepared gradient", &grad, &want.grad);
    }
}

#[test]
fn labels_that_never_saw_the_host_give_nan_not_a_value() {
    for ctx in contexts() {
        let logits = [0.1f32, 0.2, 0.3, 0.4, 0.5, 0.6];
        let logits_buf = storage(ctx, &logits);
        let labels_buf = storage(ctx, &[1i32, 7]); // 7 is outside [0, 3)
        for reduction in [Reduction::None, Reduction::Mean] {
            let options = CrossEntropyOptions {
                reduction,
                ..Default::default()
            };
            let prepared = ctx
                .prepare_cross_entropy(&logits_buf, &labels_buf, 2, 3, &options, GradMode::Separate)
                .unwrap();
            prepared.run().unwrap();
            let loss = prepared.read_loss().unwrap();
            let grad = prepared.read_grad().unwrap().unwrap();
            assert!(
                loss.values().last().unwrap().is_nan(),
                "{reduction:?}: {loss:?}"
            );
            assert!(
                grad[3..].iter().all(|g| g.is_nan()),
                "{reduction:?}: {grad:?}"
            );
        }
    }
}

#[test]
fn callers_buffers_are_checked() {
    let ctx = &contexts()[0];
    let small = storage(ctx, &[0.0f32; 5]);
    let labels = storage(ctx, &[0i32; 2]);
    let options = CrossEntropyOptions::default();
    assert_eq!(
        ctx.prepare_cross_entropy(&small, &labels, 2, 3, &options, GradMode::Off)
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
        ctx.prepare_cross_entropy(&not_storage, &labels, 2, 3, &options, GradMode::Off),
        Err(Error::BufferUsage { what: "logits", .. })
    ));
    let prepared = ctx
        .prepare_cross_entropy(
            &storage(ctx, &[0.0f32; 6]),
            &labels,
            2,
            3,
            &options,
            GradMode::Off,
        )
        .unwrap();
    assert!(matches!(
        prepared.set_upstream(&[1.0]),
        Err(Error::InvalidOption {
            name: "upstream",
            ..
        })
    ));
    assert!(prepared.grad_buffer().is_none());
}
