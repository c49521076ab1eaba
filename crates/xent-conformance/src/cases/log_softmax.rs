//! Log-softmax of short and long rows.

use super::*;

/// Adds this family's cases to `out`, in a fixed order.
pub(crate) fn add(out: &mut Vec<Case>) {
    for (n, c) in [(100, 1000), (4, 5000)] {
        let mut rng = Rng(7);
        let logits = rng.vec(n * c, -10.0, 10.0);
        let g = rng.vec(n * c, -1.0, 1.0);
        out.push(case(format!("log_softmax {n}x{c}"), move |ctx| {
            Box::pin(async move {
                both(
                    ctx,
                    &LogSoftmax,
                    || Input::new(&logits, [logits.len() / c, c]).with_upstream(&g),
                    Targets::None,
                )
                .await
            })
        }));
    }
}
