//! Fused linear cross-entropy in class blocks with every option and a bias.

use super::*;

/// Adds this family's cases to `out`, in a fixed order.
pub(crate) fn add(out: &mut Vec<Case>) {
    for r in REDUCTIONS {
        let mut rng = Rng(41);
        let (n, d, v) = (37, 24, 3000);
        let hidden = rng.vec(n * d, -1.0, 1.0);
        let classifier = rng.vec(v * d, -0.4, 0.4);
        let bias = rng.vec(v, -0.5, 0.5);
        let mut labels = rng.labels(n, v);
        labels.iter_mut().step_by(9).for_each(|l| *l = -100);
        let loss = LinearCrossEntropy {
            cross_entropy: CrossEntropy {
                weight: Some(rng.vec(v, 0.2, 2.0)),
                label_smoothing: 0.1,
                reduction: r,
                softcap: Some(20.0),
                z_loss: 1e-3,
                ..Default::default()
            },
            // Blocks of 384 classes: eight, the last partial.
            block_bytes: 64 << 10,
        };
        out.push(case(
            format!(
                "linear ce {n}x{d}x{v} in blocks, every option, bias {}",
                reduction_name(r)
            ),
            move |ctx| {
                Box::pin(async move {
                    let input = LinearInput::new(&hidden, &classifier, [n, d, v])
                        .with_bias(&bias)
                        .with_grad();
                    let gpu = ctx.compute_async(&loss, input, &labels).await?;
                    let cpu = reference::compute(&loss, input, &labels)?;
                    Ok((linear_as_output(gpu), linear_as_output(cpu)))
                })
            },
        ));
    }
}

/// A linear cross-entropy result as one loss output: its loss, and its three gradients side
/// by side as one (judged against the largest of them).
fn linear_as_output<T>(out: LinearOutput<T>) -> Output<T> {
    let grads = [out.grad_hidden, out.grad_classifier, out.grad_bias];
    Output {
        loss: out.loss,
        grad: Some(grads.into_iter().flatten().flatten().collect()),
        lse: None,
    }
}
