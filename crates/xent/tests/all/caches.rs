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

/// Fused linear cross-entropy and the vocabulary split keep their host calls like every other
/// loss: a second call of the same shape and options creates no buffer and gives, bit for bit,
/// what a fresh context gives for its inputs; other options (a bias, another block budget,
/// another shard) are prepared anew.
#[test]
fn linear_and_split_host_calls_reuse_their_buffers_and_give_fresh_results() {
    use xent::{
        LinearCrossEntropy, LinearInput, ShardStates, SplitFinish, SplitStates, VocabShard,
    };
    let mut rng = crate::common::Rng::new(4242);
    let ctx = Context::new().expect("GPU tests need an adapter");
    let fresh = || Context::new().expect("GPU tests need an adapter");
    let (n, d, v) = (40, 8, 300);
    let loss = LinearCrossEntropy {
        block_bytes: 16 << 10,
        ..LinearCrossEntropy::default()
    };
    // Hidden, classifier, bias and labels, twice.
    type Draw = (Vec<f32>, Vec<f32>, Vec<f32>, Vec<u32>);
    let draws: Vec<Draw> = (0..2)
        .map(|_| {
            let labels = (0..n).map(|_| rng.below(v) as u32).collect();
            (
                rng.vec(n * d, -1.0, 1.0),
                rng.vec(v * d, -1.0, 1.0),
                rng.vec(v, -0.5, 0.5),
                labels,
            )
        })
        .collect();
    let linear = |ctx: &Context, k: usize, loss: &LinearCrossEntropy, bias: bool| {
        let (h, w, b, t) = &draws[k];
        let mut input = LinearInput::new(h, w, [n, d, v]).with_grad();
        if bias {
            input = input.with_bias(b);
        }
        ctx.compute(loss, input, t).unwrap()
    };
    linear(&ctx, 0, &loss, false);
    let created = ctx.buffers_created();
    let second = linear(&ctx, 1, &loss, false);
    assert_eq!(
        ctx.buffers_created(),
        created,
        "a kept linear call was not reused"
    );
    assert_eq!(second, linear(&fresh(), 1, &loss, false));
    // A bias and another budget are other prepared work, with their own results.
    for (other, bias) in [(&loss, true), (&LinearCrossEntropy::default(), false)] {
        let before = ctx.buffers_created();
        let got = linear(&ctx, 0, other, bias);
        assert!(
            ctx.buffers_created() > before,
            "{other:?} reused another call"
        );
        assert_eq!(got, linear(&fresh(), 0, other, bias));
    }

    // The split: the states and the finish of two shards' logits, twice.
    let vocab = 300;
    let shard = |first: usize| VocabShard { first, vocab };
    let logits: Vec<Vec<f32>> = (0..2).map(|_| rng.vec(n * 100, -4.0, 4.0)).collect();
    let labels: Vec<u32> = (0..n).map(|_| rng.below(vocab) as u32).collect();
    let cross_entropy = CrossEntropy::default();
    let states = |ctx: &Context, k: usize, first: usize| {
        let step = SplitStates {
            cross_entropy: cross_entropy.clone(),
            shard: shard(first),
        };
        ctx.compute(&step, Input::new(&logits[k], [n, 100]), &labels)
            .unwrap()
    };
    let merged = states(&ctx, 0, 0)
        .merge(&states(&ctx, 1, 100))
        .unwrap()
        .merge(&states(&ctx, 0, 200))
        .unwrap();
    let finish = |ctx: &Context, k: usize, merged: &ShardStates| {
        let step = SplitFinish {
            cross_entropy: cross_entropy.clone(),
            shard: shard(100),
        };
        let input = Input::new(&logits[k], [n, 100]).with_grad();
        ctx.compute(&step, input, (&labels[..], merged)).unwrap()
    };
    finish(&ctx, 1, &merged);
    let created = ctx.buffers_created();
    let again = states(&ctx, 1, 100);
    let got = finish(&ctx, 0, &merged);
    assert_eq!(
        ctx.buffers_created(),
        created,
        "kept split calls were not reused"
    );
    assert_eq!(again, states(&fresh(), 1, 100));
    assert_eq!(got, finish(&fresh(), 0, &merged));
}
