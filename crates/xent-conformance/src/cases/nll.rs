//! The NLL loss of log-probabilities: weights, an ignore_index that is a valid class.

use super::*;

/// Adds this family's cases to `out`, in a fixed order.
pub(crate) fn add(out: &mut Vec<Case>) {
    // NLL of log-probabilities: weights, an ignore_index that is a valid class (2).
    for (k, r) in [Reduction::None, Reduction::Mean, Reduction::Sum]
        .into_iter()
        .enumerate()
    {
        let mut rng = Rng(21 + k as u64);
        let (n, c) = (301, 257);
        let logp = rng.vec(n * c, -12.0, 0.0);
        let labels: Vec<i64> = (0..n)
            .map(|i| if i % 6 == 5 { 2 } else { (i * 37 % c) as i64 })
            .collect();
        let options = NllLoss {
            weight: Some(rng.vec(c, 0.2, 3.0)),
            ignore_index: 2,
            reduction: r,
        };
        out.push(case(
            format!("nll weight, ignore_index 2 {n}x{c} {}", reduction_name(r)),
            move |ctx| {
                Box::pin(async move {
                    both(
                        ctx,
                        &options,
                        || Input::new(&logp, [n, c]).with_grad(),
                        &labels[..],
                    )
                    .await
                })
            },
        ));
    }
}
