//! Fused linear cross-entropy over a vocabulary past 2^22 classes, with the default budget, on
//! each kind of adapter (Vulkan, GL), against the float64 reference: the vocabulary is cut into
//! class blocks that one workgroup's row pass takes, and the class-deep hidden-gradient product
//! into dispatches that stay within llvmpipe's loop limit (plan.rs, `MAX_LOOP_TRIPS`).
//!
//! Its own test binary: a block's products run for seconds on llvmpipe's GL, which holds the GL
//! context meanwhile, and wgpu's GL backend gives up (panics) after waiting 6 s for it, so in
//! the main test binary this test would make GL tests running beside it fail.

#[allow(dead_code, unused_imports)]
#[path = "all/common.rs"]
mod common;

use common::{assert_linear_matches, contexts, Rng};
use xent::{reference, LinearCrossEntropy, LinearInput};

#[test]
fn a_vocabulary_past_2_pow_22_matches_the_reference() {
    let mut rng = Rng::new(1809);
    let (n, d, v) = (3, 2, 4_194_247);
    let hidden = rng.vec(n * d, -1.0, 1.0);
    let classifier = rng.vec(v * d, -1.0, 1.0);
    let bias = rng.vec(v, -0.5, 0.5);
    let labels: Vec<i64> = (0..n).map(|_| rng.below(v) as i64).collect();
    let input = || {
        LinearInput::new(&hidden, &classifier, [n, d, v])
            .with_bias(&bias)
            .with_grad()
    };
    let loss = LinearCrossEntropy::default();
    let want = reference::compute(&loss, input(), &labels).unwrap();
    let all = contexts();
    for ctx in [&all[0], &all[all.len() - 1]] {
        let got = ctx.compute(&loss, input(), &labels).unwrap();
        assert_linear_matches(ctx, &format!("[{n}, {d}, {v}]"), &got, &want);
    }
}
