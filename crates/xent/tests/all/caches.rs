//! The host-call cache and the readback pool stay within their budgets in bytes, and
//! `clear_caches` releases them.

use xent::{CacheBudget, Context, CrossEntropy, Input};

#[test]
fn caches_stay_within_their_budget_and_clear_to_zero() {
    // A context of its own: other tests fill the shared contexts' caches at the same time.
    let ctx = Context::new().expect("GPU tests need an adapter");
    let budget = CacheBudget {
        host_calls: 24 << 20,
        readback: 32 << 20,
    };
    ctx.set_cache_budget(budget);
    let classes = 1000;
    let (mut most, mut all_calls) = (0, 0u64);
    for i in 0..10 {
        // Distinct shapes of 8 to 12 MB of logits each, read back with their gradient.
        let rows = 2000 + 200 * i;
        let logits: Vec<f32> = (0..rows * classes)
            .map(|j| (j % 97) as f32 / 10.0)
            .collect();
        let labels: Vec<u32> = (0..rows).map(|r| (r % classes) as u32).collect();
        let input = Input::new(&logits, [rows, classes]).with_grad();
        let out = ctx
            .compute(&CrossEntropy::default(), input, &labels)
            .unwrap();
        assert!(out.loss.scalar().unwrap().is_finite());
        all_calls += 2 * 4 * (rows * classes) as u64;
        let cached = ctx.cached_bytes();
        assert!(
            cached <= budget.host_calls + budget.readback,
            "after {} shapes: {cached} bytes cached",
            i + 1
        );
        most = most.max(cached);
    }
    assert!(most > 0, "nothing was kept");
    assert!(all_calls > 2 * (budget.host_calls + budget.readback));
    ctx.clear_caches();
    assert_eq!(ctx.cached_bytes(), 0);
}

#[test]
fn a_call_of_the_same_shape_reuses_its_buffers_until_cleared() {
    let ctx = Context::new().expect("GPU tests need an adapter");
    let logits = vec![0.5f32; 64 * 10];
    let labels = vec![3u32; 64];
    let run = || {
        ctx.compute(
            &CrossEntropy::default(),
            Input::new(&logits, [64, 10]),
            &labels,
        )
        .unwrap()
    };
    run();
    let created = ctx.buffers_created();
    run();
    assert_eq!(ctx.buffers_created(), created, "a kept call was not reused");
    ctx.clear_caches();
    run();
    assert!(ctx.buffers_created() > created, "a cleared call was reused");
}
