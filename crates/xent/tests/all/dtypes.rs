//! f16 and bf16 inputs on the GPU (accumulated in f32) against the float64 reference applied
//! to the rounded inputs, with gradients in f32 or in the input's type.

#[allow(unused_imports)]
use crate::common::api::*;
use crate::common::{
    assert_close, assert_grad_close, contexts, encode, typed_buffer as buffer, Rng,
};
use xent::{
    reference, BinaryCrossEntropyWithLogits, CrossEntropy, Dtype, Error, GpuTensor, GradMode,
    Reduction,
};

/// Gradients stored in f16 or bf16 are the f32 gradient rounded: allow the rounding (2^-11 or
/// 2^-8 relative to each value, and f16's subnormal spacing 2^-24 below 2^-14) on top of the
/// stated gradient tolerance.
fn rounding(dtype: Dtype) -> f64 {
    match dtype {
        Dtype::F32 => 0.0,
        Dtype::F16 => 2f64.powi(-11),
        Dtype::Bf16 => 2f64.powi(-8),
    }
}

fn assert_typed_grad(ctx: &xent::Context, case: &str, got: &[f32], want: &[f64], dtype: Dtype) {
    if dtype == Dtype::F32 {
        return assert_grad_close(ctx, case, got, want);
    }
    let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    if std::env::var_os("XENT_REPORT_ERRORS").is_some() {
        let worst = got
            .iter()
            .zip(want)
            .map(|(&g, &w)| (f64::from(g) - w).abs() / scale)
            .fold(0.0f64, f64::max);
        eprintln!("worst-grad {worst:.3e} {case}");
    }
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let subnormal = if dtype == Dtype::F16 {
            2f64.powi(-24)
        } else {
            0.0
        };
        let allowed = 1e-5 * scale + rounding(dtype) * w.abs() + subnormal;
        assert!(
            (f64::from(g) - w).abs() <= allowed,
            "{case}: gradient [{i}] got {g}, want {w} (allowed {allowed:.3e})"
        );
    }
}

#[test]
fn half_precision_logits_match_the_reference_on_rounded_inputs() {
    let mut rng = Rng::new(51);
    let (n, c) = (40, 300);
    let raw = rng.vec(n * c, -8.0, 8.0);
    let labels: Vec<i32> = (0..n).map(|_| rng.below(c) as i32).collect();
    let probs = rng.distributions(n, c);
    let options = CrossEntropy {
        label_smoothing: 0.1,
        ..Default::default()
    };
    for ctx in contexts() {
        if !ctx.device().features().contains(wgpu::Features::SHADER_F16) {
            continue; // f16 needs the feature; bf16 does not
        }
        for dtype in [Dtype::F16, Dtype::Bf16] {
            let (rounded, bytes) = encode(&raw, dtype);
            let logits_buf = buffer(ctx, &bytes);
            let labels_buf = buffer(ctx, bytemuck::cast_slice(&labels));
            let probs_buf = buffer(ctx, bytemuck::cast_slice(&probs));
            let x = GpuTensor::new(&logits_buf).with_dtype(dtype);
            for mode in [GradMode::Separate, GradMode::SeparateAsInput] {
                let grad_type = if mode == GradMode::Separate {
                    Dtype::F32
                } else {
                    dtype
                };
                let case = format!("{dtype:?} logits, {mode:?}");
                let p = ctx
                    .prepare(
                        &options,
                        GpuInput::new(x, [n, c]).with_grad(mode),
                        GpuTargets::indices(&labels_buf),
                    )
                    .unwrap();
                p.run().unwrap();
                let want = reference::compute(
                    &options,
                    grad_input(&rounded, nc(&rounded, c), None),
                    &labels,
                )
                .unwrap();
                assert_close(
                    ctx,
                    &case,
                    p.read_loss().unwrap().values(),
                    want.loss.values(),
                );
                assert_typed_grad(
                    ctx,
                    &case,
                    &p.read_grad().unwrap().unwrap(),
                    want.grad.as_deref().unwrap(),
                    grad_type,
                );

                let p = ctx
                    .prepare(
                        &options,
                        GpuInput::new(x, [n, c]).with_grad(mode),
                        GpuTargets::values(&probs_buf),
                    )
                    .unwrap();
                p.run().unwrap();
                let want = reference::compute(
                    &options,
                    grad_input(&rounded, nc(&rounded, c), None),
                    &probs,
                )
                .unwrap();
                assert_close(
                    ctx,
                    &case,
                    p.read_loss().unwrap().values(),
                    want.loss.values(),
                );
                assert_typed_grad(
                    ctx,
                    &case,
                    &p.read_grad().unwrap().unwrap(),
                    want.grad.as_deref().unwrap(),
                    grad_type,
                );

                let p = ctx
                    .prepare(
                        &LogSoftmax,
                        GpuInput::new(x, [n, c]).with_grad(mode),
                        GpuTargets::None,
                    )
                    .unwrap();
                let g = rng.vec(n * c, -1.0, 1.0);
                p.set_upstream(&g).unwrap();
                p.run().unwrap();
                let want = reference::compute(
                    &LogSoftmax,
                    Input::new(&rounded, nc(&rounded, c)).with_upstream(&g),
                    Targets::None,
                )
                .unwrap();
                assert_close(
                    ctx,
                    &case,
                    p.read_loss().unwrap().values(),
                    want.loss.values(),
                );
                assert_typed_grad(
                    ctx,
                    &case,
                    &p.read_grad().unwrap().unwrap(),
                    want.grad.as_deref().unwrap(),
                    grad_type,
                );

                let t = rng.vec(n * c, 0.0, 1.0);
                let t_buf = buffer(ctx, bytemuck::cast_slice(&t));
                let bce = BinaryCrossEntropyWithLogits {
                    reduction: Reduction::None,
                    ..Default::default()
                };
                let p = ctx
                    .prepare(
                        &bce,
                        GpuInput::new(x, bce_gpu_shape(n * c, &bce)).with_grad(mode),
                        GpuTargets::values(&t_buf),
                    )
                    .unwrap();
                p.run().unwrap();
                let want = reference::compute(
                    &bce,
                    grad_input(&rounded, bce_shape(&rounded, &bce), None),
                    &t,
                )
                .unwrap();
                assert_close(
                    ctx,
                    &case,
                    p.read_loss().unwrap().values(),
                    want.loss.values(),
                );
                assert_typed_grad(
                    ctx,
                    &case,
                    &p.read_grad().unwrap().unwrap(),
                    want.grad.as_deref().unwrap(),
                    grad_type,
                );
            }
        }
        // In place over f16 logits writes an f16 gradient into them; over bf16 it is refused.
        let (rounded, bytes) = encode(&raw, Dtype::F16);
        let logits_buf = buffer(ctx, &bytes);
        let labels_buf = buffer(ctx, bytemuck::cast_slice(&labels));
        let x = GpuTensor::new(&logits_buf).with_dtype(Dtype::F16);
        let p = ctx
            .prepare(
                &options,
                GpuInput::new(x, [n, c]).with_grad(GradMode::InPlace),
                GpuTargets::indices(&labels_buf),
            )
            .unwrap();
        p.run().unwrap();
        let want = reference::compute(
            &options,
            grad_input(&rounded, nc(&rounded, c), None),
            &labels,
        )
        .unwrap();
        assert_typed_grad(
            ctx,
            "f16 in place",
            &p.read_grad().unwrap().unwrap(),
            want.grad.as_deref().unwrap(),
            Dtype::F16,
        );
        let x = GpuTensor::new(&logits_buf).with_dtype(Dtype::Bf16);
        assert!(matches!(
            ctx.prepare(
                &options,
                GpuInput::new(x, [n, c]).with_grad(GradMode::InPlace),
                GpuTargets::indices(&labels_buf)
            ),
            Err(Error::UnsupportedDtype {
                dtype: Dtype::Bf16,
                ..
            })
        ));
        let f32_logits = buffer(ctx, bytemuck::cast_slice(&raw));
        let half_targets = GpuTensor::new(&labels_buf).with_dtype(Dtype::F16);
        assert!(matches!(
            ctx.prepare(
                &options,
                GpuInput::new(&f32_logits, [n, c]).with_grad(GradMode::Off),
                GpuTargets::indices(half_targets)
            ),
            Err(Error::UnsupportedDtype {
                what: "targets",
                dtype: Dtype::F16,
                ..
            })
        ));
    }
}
