//! Load: 8 threads x 200 host calls of mixed losses and sizes on one context. Every result is
//! checked against the float64 reference, and the process's memory (which, on a software
//! adapter, holds the GPU buffers too) must not grow between the first 50 calls of every
//! thread and the last 50, beyond what xent's bounded caches took on meanwhile
//! (`Context::cached_bytes`: they keep filling while threads happen to collide on a shape).
//!
//! Its own test binary, so that the process's memory is this test's alone.

use std::sync::Barrier;

use xent::{
    reference, BinaryCrossEntropyWithLogits, Context, CrossEntropy, Input, LogSoftmax, Reduction,
    Targets,
};

const THREADS: usize = 8;
const CALLS: usize = 200;
/// Growth of resident memory allowed between call 50 and call 200 of every thread, besides
/// the growth of xent's caches: the allocator's own slack.
const ALLOWED_GROWTH_MIB: f64 = 16.0;

/// The losses calls draw from: class-index CE with gradient, log-softmax, BCE with logits and
/// gradient, unreduced class-index CE.
const LOSSES: usize = 4;

/// The shapes calls draw from, (rows, classes): some kept by the host-call cache, all reused.
const SHAPES: [(usize, usize); 8] = [
    (1, 1),
    (7, 3),
    (64, 10),
    (33, 257),
    (128, 1000),
    (500, 64),
    (2, 4096),
    (1024, 2),
];

/// Bytes xent keeps for reuse, in MiB.
fn cached_mib(ctx: &Context) -> f64 {
    ctx.cached_bytes() as f64 / (1 << 20) as f64
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
extern "C" {
    /// glibc: returns free heap memory of every arena to the system.
    fn malloc_trim(pad: usize) -> i32;
}

/// Resident memory of this process in MiB (Linux), from /proc/self/statm, after returning
/// freed heap memory to the system: so it counts what is live, not the highest point the heap
/// reached while threads happened to overlap.
fn resident_mib() -> f64 {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory; it takes and returns plain integers.
    unsafe {
        malloc_trim(0);
    }
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm");
    let pages: f64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .expect("resident pages");
    pages * 4096.0 / (1 << 20) as f64
}

/// A small seeded generator (SplitMix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn vec(&mut self, len: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..len)
            .map(|_| lo + (hi - lo) * (self.next() >> 40) as f32 / (1u64 << 24) as f32)
            .collect()
    }
}

/// Asserts every GPU value is within the foundation's tolerance of the reference.
fn check(case: &str, got: &[f32], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{case}: lengths");
    let scale = want.iter().fold(0.0f64, |m, w| m.max(w.abs()));
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let tolerance = 1e-5 * w.abs().max(scale * 1e-1) + 1e-6;
        assert!(
            (f64::from(g) - w).abs() <= tolerance,
            "{case}: [{i}] got {g}, want {w}"
        );
    }
}

/// One call of a drawn loss and shape, checked.
fn call(ctx: &Context, rng: &mut Rng, kind: usize, case: &str) {
    let (n, c) = SHAPES[kind / LOSSES];
    let logits = rng.vec(n * c, -8.0, 8.0);
    match kind % LOSSES {
        0 => {
            let labels: Vec<i64> = (0..n).map(|_| rng.below(c) as i64).collect();
            let options = CrossEntropy {
                label_smoothing: 0.05,
                ..Default::default()
            };
            let got = ctx
                .compute(&options, Input::new(&logits, [n, c]).with_grad(), &labels)
                .unwrap();
            let want =
                reference::compute(&options, Input::new(&logits, [n, c]).with_grad(), &labels)
                    .unwrap();
            check(case, got.loss.values(), want.loss.values());
            check(
                case,
                got.grad.as_deref().unwrap(),
                want.grad.as_deref().unwrap(),
            );
        }
        1 => {
            let got = ctx
                .compute(&LogSoftmax, Input::new(&logits, [n, c]), Targets::None)
                .map(|o| o.loss.into_values())
                .unwrap();
            check(
                case,
                &got,
                &reference::compute(&LogSoftmax, Input::new(&logits, [n, c]), Targets::None)
                    .map(|o| o.loss.into_values())
                    .unwrap(),
            );
        }
        2 => {
            let t = rng.vec(n * c, 0.0, 1.0);
            let options = BinaryCrossEntropyWithLogits {
                reduction: Reduction::Sum,
                ..Default::default()
            };
            let got = ctx
                .compute(&options, Input::new(&logits, [n, c]).with_grad(), &t)
                .unwrap();
            let want =
                reference::compute(&options, Input::new(&logits, [n, c]).with_grad(), &t).unwrap();
            check(case, got.loss.values(), want.loss.values());
            check(
                case,
                got.grad.as_deref().unwrap(),
                want.grad.as_deref().unwrap(),
            );
        }
        _ => {
            let labels: Vec<u32> = (0..n).map(|_| rng.below(c) as u32).collect();
            let options = CrossEntropy {
                reduction: Reduction::None,
                ..Default::default()
            };
            let got = ctx
                .compute(&options, Input::new(&logits, [n, c]), &labels)
                .map(|o| o.loss)
                .unwrap();
            let want = reference::compute(&options, Input::new(&logits, [n, c]), &labels)
                .map(|o| o.loss)
                .unwrap();
            check(case, got.values(), want.values());
        }
    }
}

#[test]
fn eight_threads_of_two_hundred_mixed_calls_keep_memory_flat() {
    let ctx = Context::new().expect("the load test needs an adapter");
    let after_first = Barrier::new(THREADS + 1);
    let resume = Barrier::new(THREADS + 1);
    let (early_mib, early_cached) = std::thread::scope(|scope| {
        for thread in 0..THREADS {
            let (ctx, after_first, resume) = (&ctx, &after_first, &resume);
            scope.spawn(move || {
                let mut rng = Rng(1000 + thread as u64);
                for i in 0..CALLS {
                    if i == 50 {
                        after_first.wait();
                        resume.wait();
                    }
                    // Every (shape, loss) pair once first, so that every pipeline is
                    // compiled before memory is first measured; then drawn ones.
                    let kinds = SHAPES.len() * LOSSES;
                    let kind = if i < kinds {
                        (i + thread * 5) % kinds
                    } else {
                        rng.below(kinds)
                    };
                    call(ctx, &mut rng, kind, &format!("thread {thread} call {i}"));
                }
            });
        }
        // Every thread has made its first 50 calls.
        after_first.wait();
        let early = (resident_mib(), cached_mib(&ctx));
        resume.wait();
        early
    });
    let (late_mib, late_cached) = (resident_mib(), cached_mib(&ctx));
    eprintln!(
        "load: resident {early_mib:.1} MiB after the first 50 calls of each thread, \
         {late_mib:.1} MiB after all {CALLS}; xent's caches {early_cached:.1} then \
         {late_cached:.1} MiB"
    );
    let growth = (late_mib - early_mib) - (late_cached - early_cached).max(0.0);
    assert!(
        growth <= ALLOWED_GROWTH_MIB,
        "resident memory grew from {early_mib:.1} MiB to {late_mib:.1} MiB over the last 150 \
         calls of each thread, {growth:.1} MiB of it outside xent's caches"
    );
}
