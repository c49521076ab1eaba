//! The GPU form, whole: xent's loss and gradient recorded into your command encoder, on your
//! buffers, between your own kernels; results read back only when asked. Exits non-zero if
//! the GPU's loss or gradient differs from the float64 reference.
//!
//! `cargo run --release --example pipeline`

use xent::wgpu::{self, util::DeviceExt};
use xent::{reference, Context, CrossEntropy, GpuInput, GpuTargets, GradMode, Input};

fn main() -> Result<(), xent::Error> {
    // A program with a device of its own wraps it: Context::from_device(device, queue).
    let ctx = Context::new()?;
    let (device, queue) = (ctx.device(), ctx.queue());
    let logits = [2.0f32, 0.5, -1.0, 0.1, 0.2, 3.0]; // (N = 2, C = 3), row-major
    let buffer = |contents: &[u8], usage| {
        let desc = wgpu::util::BufferInitDescriptor {
            label: None,
            contents,
            usage,
        };
        device.create_buffer_init(&desc)
    };
    // STORAGE for the kernel; COPY_SRC so read_grad can copy the in-place gradient out.
    let usage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC;
    let logits_buf = buffer(xent::bytemuck::cast_slice(&logits), usage);
    let labels_buf = buffer(
        xent::bytemuck::cast_slice(&[0i32, 2]),
        wgpu::BufferUsages::STORAGE,
    );

    // Once: pipelines, bind groups and xent's own outputs.
    let loss = CrossEntropy {
        label_smoothing: 0.1,
        ..Default::default()
    };
    let input = GpuInput::new(&logits_buf, [2, 3]).with_grad(GradMode::InPlace);
    let prepared = ctx.prepare(&loss, input, GpuTargets::indices(&labels_buf))?;

    // Every step: your kernels, xent's, your kernels, in one encoder; nothing is read back.
    let mut encoder = device.create_command_encoder(&Default::default());
    // ... your passes that write logits_buf ...
    // xent's: the loss, and dL/dx written over logits_buf.
    prepared.record(&mut encoder);
    // ... your passes that read the gradient from logits_buf ...
    queue.submit([encoder.finish()]);

    // Only when you want the numbers.
    let got = prepared.read_loss()?;
    let grad = prepared.read_grad()?.unwrap_or_default();
    let want = reference::compute(&loss, Input::new(&logits, [2, 3]).with_grad(), &[0i64, 2])?;
    let loss_error = (f64::from(got.scalar().unwrap_or(f32::NAN)) - want.loss.values()[0]).abs();
    let grad_error = grad
        .iter()
        .zip(want.grad.unwrap_or_default())
        .map(|(g, w)| (f64::from(*g) - w).abs())
        .fold(0.0, f64::max);
    println!("loss {got:?}, gradient {grad:?}");
    println!("worst error vs float64: loss {loss_error:.1e}, gradient {grad_error:.1e}");
    if loss_error > 1e-6 || grad_error > 1e-6 || grad.len() != 6 {
        std::process::exit(1);
    }
    Ok(())
}
