//! One context shared by many threads: every result is checked.

#[allow(unused_imports)]
use crate::common::api::*;
use crate::common::{assert_close, contexts, Rng};
use xent::{reference, BinaryCrossEntropyWithLogits, CrossEntropy, Reduction};

fn assert_send_sync<T: Send + Sync>() {}

#[test]
fn eight_threads_share_one_context() {
    assert_send_sync::<xent::Context>();
    assert_send_sync::<xent::PreparedLoss>();
    let ctx = &contexts()[0];
    std::thread::scope(|scope| {
        for thread in 0..8u64 {
            scope.spawn(move || {
                let mut rng = Rng::new(100 + thread);
                for call in 0..50 {
                    let n = 1 + rng.below(64);
                    let c = 1 + rng.below(300);
                    let logits = rng.vec(n * c, -5.0, 5.0);
                    let case = format!("thread {thread} call {call} ({n}x{c})");
                    match call % 3 {
                        0 => {
                            let labels: Vec<u32> = (0..n).map(|_| rng.below(c) as u32).collect();
                            let options = CrossEntropy {
                                label_smoothing: 0.1,
                                ..Default::default()
                            };
                            let got = ctx
                                .compute(&options, Input::new(&logits, nc(&logits, c)), &labels)
                                .map(|o| o.loss)
                                .unwrap();
                            let want = reference::compute(
                                &options,
                                Input::new(&logits, nc(&logits, c)),
                                &labels,
                            )
                            .map(|o| o.loss)
                            .unwrap();
                            assert_close(ctx, &case, got.values(), want.values());
                        }
                        1 => {
                            let got = ctx
                                .compute(
                                    &LogSoftmax,
                                    Input::new(&logits, nc(&logits, c)),
                                    Targets::None,
                                )
                                .map(|o| o.loss.into_values())
                                .unwrap();
                            let want = reference::compute(
                                &LogSoftmax,
                                Input::new(&logits, nc(&logits, c)),
                                Targets::None,
                            )
                            .map(|o| o.loss.into_values())
                            .unwrap();
                            assert_close(ctx, &case, &got, &want);
                        }
                        _ => {
                            let t = rng.vec(n * c, 0.0, 1.0);
                            let options = BinaryCrossEntropyWithLogits {
                                reduction: Reduction::None,
                                ..Default::default()
                            };
                            let got = ctx
                                .compute(
                                    &options,
                                    grad_input(&logits, bce_shape(&logits, &options), None),
                                    &t,
                                )
                                .unwrap();
                            let want = reference::compute(
                                &options,
                                grad_input(&logits, bce_shape(&logits, &options), None),
                                &t,
                            )
                            .unwrap();
                            assert_close(ctx, &case, got.loss.values(), want.loss.values());
                            assert_close(
                                ctx,
                                &case,
                                got.grad.as_deref().unwrap(),
                                want.grad.as_deref().unwrap(),
                            );
                        }
                    }
                }
            });
        }
    });
}
