//! One context shared by many threads: every result is checked.

use crate::common::{assert_close, contexts, Rng};
use xent::{reference, BceWithLogitsOptions, CrossEntropyOptions, Reduction};

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
                            let options = CrossEntropyOptions {
                                label_smoothing: 0.1,
                                ..Default::default()
                            };
                            let got = ctx.cross_entropy(&logits, c, &labels, &options).unwrap();
                            let want =
                                reference::cross_entropy(&logits, c, &labels, &options).unwrap();
                            assert_close(ctx, &case, got.values(), want.values());
                        }
                        1 => {
                            let got = ctx.log_softmax(&logits, c).unwrap();
                            let want = reference::log_softmax(&logits, c).unwrap();
                            assert_close(ctx, &case, &got, &want);
                        }
                        _ => {
                            let t = rng.vec(n * c, 0.0, 1.0);
                            let options = BceWithLogitsOptions {
                                reduction: Reduction::None,
                                ..Default::default()
                            };
                            let got = ctx
                                .binary_cross_entropy_with_logits_and_grad(
                                    &logits, &t, &options, None,
                                )
                                .unwrap();
                            let want = reference::binary_cross_entropy_with_logits_and_grad(
                                &logits, &t, &options, None,
                            )
                            .unwrap();
                            assert_close(ctx, &case, got.loss.values(), want.loss.values());
                            assert_close(ctx, &case, &got.grad, &want.grad);
                        }
                    }
                }
            });
        }
    });
}
