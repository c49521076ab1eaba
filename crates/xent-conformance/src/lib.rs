//! The conformance suite behind `xent check`: every loss, option and gradient against the
//! float64 reference on seeded inputs, plus the edge cases, on one adapter at a time.

use std::future::Future;
use std::pin::Pin;
use xent::reference;
use xent::VocabShard;
use xent::{
    BinaryCrossEntropy, BinaryCrossEntropyWithLogits, CrossEntropy, Descriptor, Input,
    LinearCrossEntropy, LinearInput, LinearOutput, LogSoftmax, Loss, NllLoss, Output, Reduction,
    SigmoidFocalLoss, Targets,
};
use xent::{Context, Result};

/// Loss tolerance: `|gpu - ref| <= RTOL |ref| + ATOL` per value.
pub const RTOL: f64 = 1e-5;
/// See [`RTOL`]: covers values that cancel to near zero, where f32 has no relative accuracy.
pub const ATOL: f64 = 1e-6;
/// Gradient tolerance: `|gpu - ref| <= GRAD_TOL * max |ref|` over the gradient.
pub const GRAD_TOL: f64 = 1e-5;

/// The outcome of one case on one adapter.
#[derive(Clone, Debug, PartialEq)]
pub struct CaseReport {
    /// The case's name.
    pub case: String,
    /// Whether loss, gradient and log-sum-exp (where the case asks for it) are within
    /// tolerance (and the call succeeded).
    pub passed: bool,
    /// Worst relative error of the loss values, and of the log-sum-exp values where the case
    /// returns them (`|gpu - ref| / max(|ref|, ATOL / RTOL)`).
    pub loss_error: f64,
    /// Worst gradient error relative to the gradient's largest magnitude.
    pub grad_error: f64,
    /// What failed, for a failed case.
    pub detail: Option<String>,
}

/// A seeded generator (SplitMix64), so every adapter sees the same inputs.
struct Rng(u64);

impl Rng {
    fn unit(&mut self) -> f32 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) >> 40) as f32 / (1u64 << 24) as f32
    }
    fn vec(&mut self, len: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..len).map(|_| lo + (hi - lo) * self.unit()).collect()
    }
    fn labels(&mut self, rows: usize, classes: usize) -> Vec<i64> {
        (0..rows)
            .map(|_| ((self.unit() * classes as f32) as i64).min(classes as i64 - 1))
            .collect()
    }
}

/// A case's GPU result and its float64 reference.
type Pair = (Output, Output<f64>);

/// A case's work on one context: a future, so that the same case runs natively (waited for
/// case by case) and in a browser (awaited, the browser driving the GPU).
type CaseFuture<'c> = Pin<Box<dyn Future<Output = Result<Pair>> + 'c>>;

type Run = Box<dyn for<'c> FnOnce(&'c Context) -> CaseFuture<'c>>;

/// `loss` and its gradient on the GPU and in the float64 reference, for the input `input()`
/// makes: what every case of the suite compares (with [`judge`]).
///
/// ```no_run
/// use xent_conformance as conformance;
/// use xent::{Context, CrossEntropy, Input};
///
/// # async fn one() -> xent::Result<()> {
/// let ctx = Context::new_async().await?;
/// let logits = [2.0f32, 0.5, -1.0, 0.1, 0.2, 3.0];
/// let input = || Input::new(&logits, [2, 3]).with_grad();
/// let (gpu, cpu) = conformance::both(&ctx, &CrossEntropy::default(), input, &[0u32, 2]).await?;
/// assert!(conformance::judge("ce 2x3", &gpu, &cpu).passed);
/// # Ok(())
/// # }
/// ```
pub async fn both<'a>(
    ctx: &Context,
    loss: &impl Descriptor,
    input: impl Fn() -> Input<'a>,
    targets: impl Into<Targets<'a>>,
) -> Result<Pair> {
    let targets = targets.into();
    let gpu = ctx.compute_async(loss, input(), targets).await?;
    let cpu = reference::compute(loss, input(), targets)?;
    Ok((gpu, cpu))
}

/// Drops the gradient values `range` of both results (values compared elsewhere).
fn drop_grad(pair: &mut (Output, Output<f64>), range: std::ops::Range<usize>) {
    if let Some(g) = pair.0.grad.as_mut() {
        g.drain(range.clone());
    }
    if let Some(g) = pair.1.grad.as_mut() {
        g.drain(range);
    }
}

/// One case: a name and how to compute GPU and reference results.
struct Case {
    name: String,
    run: Run,
}

fn case(name: String, run: impl for<'c> FnOnce(&'c Context) -> CaseFuture<'c> + 'static) -> Case {
    Case {
        name,
        run: Box::new(run),
    }
}

const REDUCTIONS: [Reduction; 3] = [Reduction::None, Reduction::Mean, Reduction::Sum];

fn reduction_name(r: Reduction) -> &'static str {
    match r {
        Reduction::None => "none",
        Reduction::Mean => "mean",
        Reduction::Sum => "sum",
    }
}

/// Categorical cases with class-index targets on an (n, c) batch drawn from `seed`.
fn ce_case(label: &str, n: usize, c: usize, options: CrossEntropy, seed: u64, scale: f32) -> Case {
    let mut rng = Rng(seed);
    let logits = rng.vec(n * c, -scale, scale);
    let mut targets = rng.labels(n, c);
    for (i, t) in targets.iter_mut().enumerate() {
        if i % 9 == 4 {
            *t = options.ignore_index;
        }
    }
    let name = format!("ce {label} {n}x{c} {}", reduction_name(options.reduction));
    case(name, move |ctx| {
        Box::pin(async move {
            both(
                ctx,
                &options,
                || Input::new(&logits, [n, c]).with_grad(),
                &targets,
            )
            .await
        })
    })
}

/// Every case of the suite, in a fixed order.
fn cases() -> Vec<Case> {
    let mut out = Vec::new();
    for (i, r) in REDUCTIONS.into_iter().enumerate() {
        let seed = 100 + i as u64;
        let plain = CrossEntropy {
            reduction: r,
            ..Default::default()
        };
        let mut rng = Rng(seed);
        let all = CrossEntropy {
            weight: Some(rng.vec(1000, 0.2, 2.0)),
            ignore_index: 3,
            label_smoothing: 0.1,
            reduction: r,
            softcap: None,
            z_loss: 0.0,
            return_lse: false,
        };
        let long = CrossEntropy {
            weight: Some(rng.vec(5000, 0.2, 2.0)),
            label_smoothing: 0.05,
            reduction: r,
            ..Default::default()
        };
        out.push(ce_case("indices", 200, 1000, plain.clone(), seed, 8.0));
        out.push(ce_case(
            "indices weight+ignore+smoothing",
            200,
            1000,
            all.clone(),
            seed,
            8.0,
        ));
        out.push(ce_case("indices long rows", 8, 5000, long, seed, 8.0));
        // Logits up to +-60 read through a softcap of 20, in long rows and in short ones, with
        // and without a z-loss; weights from a stream of their own leave the other cases'
        // inputs as they were.
        for (n, c, z_loss) in [(64, 1000, 0.0), (3000, 7, 1e-3)] {
            let capped = CrossEntropy {
                weight: Some(Rng(seed + 60).vec(c, 0.2, 2.0)),
                label_smoothing: 0.1,
                reduction: r,
                softcap: Some(20.0),
                z_loss,
                ..Default::default()
            };
            let label = format!("indices softcap 20 z-loss {z_loss}");
            out.push(ce_case(&label, n, c, capped, seed + 60, 60.0));
        }
        // Too few rows to fill any adapter: rows are split (see the launch plan).
        let split = CrossEntropy {
            weight: Some(rng.vec(65536, 0.2, 2.0)),
            label_smoothing: 0.05,
            reduction: r,
            ..Default::default()
        };
        out.push(ce_case("indices split rows", 2, 65536, split, seed, 8.0));
        out.push(ce_case(
            "indices short rows",
            3000,
            7,
            CrossEntropy {
                reduction: r,
                ..Default::default()
            },
            seed,
            8.0,
        ));
        // Enough short rows that a CPU adapter's threads take several each (see the launch
        // plan); weights from a stream of their own leave the other cases' inputs as they were.
        let many = CrossEntropy {
            weight: Some(Rng(seed + 50).vec(7, 0.2, 2.0)),
            label_smoothing: 0.1,
            reduction: r,
            ..Default::default()
        };
        out.push(ce_case(
            "indices many short rows",
            140_000,
            7,
            many,
            seed,
            8.0,
        ));

        let (n, c) = (200, 1000);
        let logits = rng.vec(n * c, -8.0, 8.0);
        let mut probs = rng.vec(n * c, 0.0, 1.0);
        for row in probs.chunks_mut(c) {
            let s: f32 = row.iter().sum();
            row.iter_mut().for_each(|v| *v /= s);
        }
        let options = all.clone();
        out.push(case(
            format!(
                "ce probabilities weight+smoothing {n}x{c} {}",
                reduction_name(r)
            ),
            move |ctx| {
                Box::pin(async move {
                    both(
                        ctx,
                        &options,
                        || Input::new(&logits, [logits.len() / c, c]).with_grad(),
                        &probs[..],
                    )
                    .await
                })
            },
        ));

        let len = 10_000;
        let mut p = rng.vec(len, 0.0, 1.0);
        p[0] = 0.0;
        p[1] = 1.0;
        let t = rng.vec(len, 0.0, 1.0);
        let options = BinaryCrossEntropy {
            weight: Some(rng.vec(len, 0.0, 2.0)),
            reduction: r,
        };
        let (p2, t2) = (p.clone(), t.clone());
        out.push(case(
            format!("bce weight, p in {{0, 1}} {len} {}", reduction_name(r)),
            move |ctx| {
                Box::pin(async move {
                    // Exact 0 and 1 have a clamped loss but an unbounded-by-clamp gradient; compare the
                    // gradient only away from them.
                    let input = || Input::new(&p2, [p2.len()]).with_grad();
                    let mut pair = both(ctx, &options, input, &t2[..]).await?;
                    drop_grad(&mut pair, 0..2);
                    Ok(pair)
                })
            },
        ));
        let mut x = rng.vec(len, -30.0, 30.0);
        x[0] = 1e4;
        x[1] = -1e4;
        // Both weights of the last dimension, repeated over the rows (PyTorch's broadcast).
        let options = BinaryCrossEntropyWithLogits {
            weight: Some(rng.vec(8, 0.0, 2.0)),
            pos_weight: Some(rng.vec(8, 0.5, 3.0)),
            reduction: r,
        };
        out.push(case(
            format!(
                "bce_with_logits weight+pos_weight (8,), |x| = 1e4 {len} {}",
                reduction_name(r)
            ),
            move |ctx| {
                Box::pin(async move {
                    both(
                        ctx,
                        &options,
                        || Input::new(&x, [x.len() / 8, 8]).with_grad(),
                        &t[..],
                    )
                    .await
                })
            },
        ));
    }
    // Sigmoid focal loss: torchvision's defaults, then alpha off with a fractional gamma, on
    // logits that reach where sigmoid saturates and beyond, with hard and soft targets.
    for (k, r) in [Reduction::None, Reduction::Mean, Reduction::Sum]
        .into_iter()
        .enumerate()
    {
        let mut rng = Rng(11 + k as u64);
        let len = 10_001;
        let mut x = rng.vec(len, -20.0, 20.0);
        x[0] = 1e4;
        x[1] = -1e4;
        let mut t = rng.vec(len, 0.0, 1.0);
        for i in (0..len).step_by(2) {
            t[i] = (i % 4 / 2) as f32;
        }
        let (alpha, gamma) = [(0.25, 2.0), (-1.0, 0.5), (0.75, 3.5)][k];
        let options = SigmoidFocalLoss {
            alpha,
            gamma,
            reduction: r,
        };
        out.push(case(
            format!(
                "focal alpha {alpha} gamma {gamma}, |x| = 1e4 {len} {}",
                reduction_name(r)
            ),
            move |ctx| {
                Box::pin(async move {
                    both(ctx, &options, || Input::new(&x, [len]).with_grad(), &t[..]).await
                })
            },
        ));
    }
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
    // K-dimensional (N, C, d1, d2) inputs, a row per position: class indices with every
    // option, probabilities, NLL; and an unbatched (C,) input.
    for (k, r) in REDUCTIONS.into_iter().enumerate() {
        let mut rng = Rng(31 + k as u64);
        let shape = [3usize, 21, 17, 19];
        let (c, positions) = (shape[1], shape[2] * shape[3]);
        let logits = rng.vec(shape.iter().product(), -8.0, 8.0);
        let mut labels = rng.labels(shape[0] * positions, c);
        labels.iter_mut().step_by(11).for_each(|l| *l = 0);
        let options = CrossEntropy {
            weight: Some(rng.vec(c, 0.2, 2.0)),
            ignore_index: 0,
            label_smoothing: 0.1,
            reduction: r,
            softcap: Some(5.0),
            z_loss: 1e-3,
            return_lse: true,
        };
        let name = format!(
            "ce k-dim every option and log-sum-exp {shape:?} {}",
            reduction_name(r)
        );
        let (x, t) = (logits.clone(), labels.clone());
        out.push(case(name, move |ctx| {
            Box::pin(async move {
                both(ctx, &options, || Input::new(&x, shape).with_grad(), &t[..]).await
            })
        }));
        let mut probs = rng.vec(logits.len(), 0.0, 1.0);
        for sample in probs.chunks_mut(c * positions) {
            for p in 0..positions {
                let sum: f32 = (0..c).map(|k| sample[k * positions + p]).sum();
                (0..c).for_each(|k| sample[k * positions + p] /= sum);
            }
        }
        let plain = CrossEntropy {
            reduction: r,
            ..Default::default()
        };
        let name = format!("ce k-dim probabilities {shape:?} {}", reduction_name(r));
        let x = logits.clone();
        out.push(case(name, move |ctx| {
            Box::pin(async move {
                both(
                    ctx,
                    &plain,
                    || Input::new(&x, shape).with_grad(),
                    &probs[..],
                )
                .await
            })
        }));
        let nll = NllLoss {
            reduction: r,
            ..Default::default()
        };
        let logp: Vec<f32> = logits.iter().map(|v| -v.abs()).collect();
        let name = format!("nll k-dim {shape:?} {}", reduction_name(r));
        out.push(case(name, move |ctx| {
            Box::pin(async move {
                both(
                    ctx,
                    &nll,
                    || Input::new(&logp, shape).with_grad(),
                    &labels[..],
                )
                .await
            })
        }));
    }
    let unbatched = Rng(34).vec(1000, -10.0, 10.0);
    out.push(case("ce unbatched (1000,)".into(), move |ctx| {
        Box::pin(async move {
            let options = CrossEntropy::default();
            both(
                ctx,
                &options,
                || Input::new(&unbatched, [1000]).with_grad(),
                &[7i64],
            )
            .await
        })
    }));
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
    // Edge cases.
    out.push(ce_case(
        "extreme logits |x| <= 1e4",
        64,
        257,
        CrossEntropy::default(),
        8,
        1e4,
    ));
    let c = 257;
    let mut rng = Rng(9);
    let mut masked = rng.vec(4 * c, -5.0, 5.0);
    masked
        .iter_mut()
        .skip(1)
        .step_by(2)
        .for_each(|v| *v = f32::NEG_INFINITY);
    let masked_targets = vec![0i64, 2, 4, 1]; // the last target is a -inf logit: loss +inf
    let none = CrossEntropy {
        reduction: Reduction::None,
        return_lse: true,
        ..Default::default()
    };
    out.push(case(
        "ce -inf masks (and a -inf target), with log-sum-exp".into(),
        move |ctx| {
            Box::pin(async move {
                let input = || Input::new(&masked, [4, c]).with_grad();
                let mut pair = both(ctx, &none, input, &masked_targets).await?;
                // The -inf target's row has an infinite loss; its gradient is compared on the others.
                drop_grad(&mut pair, 3 * c..4 * c);
                Ok(pair)
            })
        },
    ));
    let logits = Rng(10).vec(6, -2.0, 2.0);
    out.push(case(
        "ce all rows ignored, mean: NaN loss, zero gradient".into(),
        move |ctx| {
            Box::pin(async move {
                let targets = [-100i64, -100];
                let o = CrossEntropy::default();
                both(
                    ctx,
                    &o,
                    || Input::new(&logits, [2, 3]).with_grad(),
                    &targets,
                )
                .await
            })
        },
    ));
    for r in [Reduction::Mean, Reduction::Sum] {
        out.push(case(
            format!("ce empty batch {}", reduction_name(r)),
            move |ctx| {
                Box::pin(async move {
                    let o = CrossEntropy {
                        reduction: r,
                        ..Default::default()
                    };
                    let empty: [i64; 0] = [];
                    both(ctx, &o, || Input::new(&[], [0, 5]).with_grad(), &empty).await
                })
            },
        ));
    }
    let one_class = Rng(11).vec(50, -3.0, 3.0);
    out.push(case("ce C = 1".into(), move |ctx| {
        Box::pin(async move {
            let targets = vec![0u32; 50];
            let o = CrossEntropy {
                reduction: Reduction::None,
                ..Default::default()
            };
            both(
                ctx,
                &o,
                || Input::new(&one_class, [50, 1]).with_grad(),
                &targets,
            )
            .await
        })
    }));
    let mut nan_rows = Rng(12).vec(3 * 100, -3.0, 3.0);
    nan_rows[150] = f32::NAN;
    out.push(case(
        "ce NaN in a row gives that row NaN (log-sum-exp too)".into(),
        move |ctx| {
            Box::pin(async move {
                let o = CrossEntropy {
                    reduction: Reduction::None,
                    return_lse: true,
                    ..Default::default()
                };
                let targets = [5i64, 6, 7];
                let input = || Input::new(&nan_rows, [3, 100]).with_grad();
                let mut pair = both(ctx, &o, input, &targets).await?;
                // Compare gradients on the finite rows only: the NaN row's gradient is NaN in both.
                drop_grad(&mut pair, 100..200);
                Ok(pair)
            })
        },
    ));
    // A NaN through every other path a row takes: the softcap, the z-loss and the log-sum-exp
    // output on rows long enough to split, and log-softmax. Some WGSL implementations give a
    // number for exp(NaN) or drop a NaN from max (WGSL allows both), so each path keeps NaN
    // explicitly; the whole NaN row's gradient is compared (NaN in both).
    let (n, c) = (2, 65536);
    let mut split_nan = Rng(13).vec(n * c, -8.0, 8.0);
    split_nan[c + 40_000] = f32::NAN;
    out.push(case(
        format!("ce NaN in a split row, softcap 20, z-loss, log-sum-exp {n}x{c}"),
        move |ctx| {
            Box::pin(async move {
                let o = CrossEntropy {
                    reduction: Reduction::None,
                    softcap: Some(20.0),
                    z_loss: 1e-3,
                    return_lse: true,
                    ..Default::default()
                };
                let input = || Input::new(&split_nan, [n, c]).with_grad();
                both(ctx, &o, input, &[3i64, 70]).await
            })
        },
    ));
    let mut nan_logp = Rng(14).vec(4 * 300, -6.0, 6.0);
    nan_logp[310] = f32::NAN;
    let upstream = Rng(15).vec(4 * 300, -1.0, 1.0);
    out.push(case("log_softmax NaN in a row 4x300".into(), move |ctx| {
        Box::pin(async move {
            let input = || Input::new(&nan_logp, [4, 300]).with_upstream(&upstream);
            both(ctx, &LogSoftmax, input, Targets::None).await
        })
    }));
    for r in REDUCTIONS {
        let mut rng = Rng(40);
        let (n, v) = (37, 3000);
        let logits = rng.vec(n * v, -8.0, 8.0);
        let mut labels = rng.labels(n, v);
        labels.iter_mut().step_by(9).for_each(|l| *l = -100);
        let options = CrossEntropy {
            weight: Some(rng.vec(v, 0.2, 2.0)),
            label_smoothing: 0.1,
            reduction: r,
            softcap: Some(20.0),
            z_loss: 1e-3,
            ..Default::default()
        };
        out.push(case(
            format!(
                "ce vocabulary split in 3 shards {n}x{v} {}",
                reduction_name(r)
            ),
            move |ctx| {
                Box::pin(async move {
                    split_vocabulary(ctx, &options, (&logits, [n, v]), &labels, &[0, 1000, 1001])
                        .await
                })
            },
        ));
    }
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
                    let gpu = ctx
                        .linear_cross_entropy_async(&loss, input, &labels)
                        .await?;
                    let cpu = reference::linear_cross_entropy(&loss, input, &labels)?;
                    Ok((linear_as_output(gpu), linear_as_output(cpu)))
                })
            },
        ));
    }
    out
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

/// Cross-entropy with the vocabulary's classes split into shards starting at `starts`, all on
/// `ctx`: the states of every shard merged, then each shard finished; the loss of the first
/// shard and the gradients of all side by side, against the unsplit reference.
async fn split_vocabulary(
    ctx: &Context,
    options: &CrossEntropy,
    (logits, [n, v]): (&[f32], [usize; 2]),
    labels: &[i64],
    starts: &[usize],
) -> Result<(Output, Output<f64>)> {
    let ranges: Vec<std::ops::Range<usize>> = starts
        .iter()
        .enumerate()
        .map(|(k, &s)| s..starts.get(k + 1).copied().unwrap_or(v))
        .collect();
    let parts: Vec<Vec<f32>> = ranges
        .iter()
        .map(|r| {
            logits
                .chunks(v)
                .flat_map(|row| row[r.clone()].to_vec())
                .collect()
        })
        .collect();
    let shard = |k: usize| VocabShard {
        first: ranges[k].start,
        vocab: v,
    };
    let states = |k: usize| {
        let input = Input::new(&parts[k], [n, ranges[k].len()]);
        ctx.shard_states_async(options, shard(k), input, labels)
    };
    let mut merged = states(0).await?;
    for k in 1..parts.len() {
        merged = states(k).await?.merge(&merged)?;
    }
    let finish = |k: usize| {
        let input = Input::new(&parts[k], [n, ranges[k].len()]).with_grad();
        ctx.shard_finish_async(options, shard(k), input, labels, &merged)
    };
    let mut gpu = finish(0).await?;
    let mut grad = vec![0.0; n * v];
    for (k, range) in ranges.iter().enumerate() {
        let out = if k == 0 {
            gpu.grad.take()
        } else {
            finish(k).await?.grad
        };
        for (row, values) in out.unwrap_or_default().chunks(range.len()).enumerate() {
            grad[row * v + range.start..row * v + range.end].copy_from_slice(values);
        }
    }
    gpu.grad = Some(grad);
    let cpu = reference::compute(options, Input::new(logits, [n, v]).with_grad(), labels)?;
    Ok((gpu, cpu))
}

/// Names of every case, in order.
pub fn case_names() -> Vec<String> {
    cases().into_iter().map(|c| c.name).collect()
}

/// How a GPU result agrees with its reference (see [`compare`]).
struct Agreement {
    ok: bool,
    /// The worst `|g - w| / scale(w)` (infinite for a mismatched NaN or infinity).
    worst: f64,
    /// The first value out of tolerance: its index, the GPU's value and the reference's.
    first_bad: Option<(usize, f32, f64)>,
    /// The lengths, when they differ.
    lengths: Option<(usize, usize)>,
}

impl Agreement {
    /// Where it fails, for a report: ` at [i]: g (float64 w)`, or the lengths.
    fn place(&self) -> String {
        match (self.lengths, self.first_bad) {
            (Some((g, w)), _) => format!(" ({g} values, float64 {w})"),
            (None, Some((i, g, w))) => format!(" at [{i}]: {g:e} (float64 {w:e})"),
            (None, None) => String::new(),
        }
    }
}

/// Compares values under `|g - w| <= allowed(w)`; NaN must match NaN and infinities must match
/// exactly.
fn compare(
    got: &[f32],
    want: &[f64],
    allowed: impl Fn(f64) -> f64,
    scale: impl Fn(f64) -> f64,
) -> Agreement {
    if got.len() != want.len() {
        return Agreement {
            ok: false,
            worst: f64::INFINITY,
            first_bad: None,
            lengths: Some((got.len(), want.len())),
        };
    }
    let mut worst: f64 = 0.0;
    let mut first_bad = None;
    for (i, (&g32, &w)) in got.iter().zip(want).enumerate() {
        let g = f64::from(g32);
        let (fine, err) = if g.is_nan() || w.is_nan() || g.is_infinite() || w.is_infinite() {
            let same = (g.is_nan() && w.is_nan()) || g == w;
            (same, if same { 0.0 } else { f64::INFINITY })
        } else {
            let d = (g - w).abs();
            (d <= allowed(w), d / scale(w))
        };
        if !fine && first_bad.is_none() {
            first_bad = Some((i, g32, w));
        }
        worst = worst.max(err);
    }
    Agreement {
        ok: first_bad.is_none(),
        worst,
        first_bad,
        lengths: None,
    }
}

/// Judges one GPU result against its float64 reference under the suite's tolerances ([`RTOL`],
/// [`ATOL`] per loss and log-sum-exp value, [`GRAD_TOL`] of the largest gradient magnitude; NaN
/// must meet NaN and an infinity the same infinity), as every case of [`run`] is judged.
///
/// ```
/// use xent_conformance as conformance;
/// use xent::{Context, CrossEntropy, Input};
///
/// let ctx = Context::new()?;
/// let logits = [2.0f32, 0.5, -1.0, 0.1, 0.2, 3.0];
/// let input = || Input::new(&logits, [2, 3]).with_grad();
/// let gpu = ctx.compute(&CrossEntropy::default(), input(), &[0u32, 2])?;
/// let cpu = xent::reference::compute(&CrossEntropy::default(), input(), &[0u32, 2])?;
/// let report = conformance::judge("ce 2x3", &gpu, &cpu);
/// assert!(report.passed, "{:?}", report.detail);
/// # Ok::<(), xent::Error>(())
/// ```
pub fn judge(name: &str, gpu: &Output, cpu: &Output<f64>) -> CaseReport {
    let same_kind = matches!(
        (&gpu.loss, &cpu.loss),
        (Loss::Reduced(_), Loss::Reduced(_)) | (Loss::Unreduced(_), Loss::Unreduced(_))
    );
    let values = |got: &[f32], want: &[f64]| {
        compare(
            got,
            want,
            |w| RTOL * w.abs() + ATOL,
            |w| w.abs().max(ATOL / RTOL),
        )
    };
    let loss = values(gpu.loss.values(), cpu.loss.values());
    let (gpu_lse, cpu_lse) = (gpu.lse.as_deref(), cpu.lse.as_deref());
    let lse = values(gpu_lse.unwrap_or_default(), cpu_lse.unwrap_or_default());
    let lse_ok = lse.ok && gpu_lse.is_some() == cpu_lse.is_some();
    let (gpu_grad, cpu_grad) = (gpu.grad.as_deref(), cpu.grad.as_deref());
    let max_grad = cpu_grad
        .unwrap_or_default()
        .iter()
        .filter(|v| v.is_finite())
        .fold(0.0f64, |m, v| m.max(v.abs()));
    let grad = compare(
        gpu_grad.unwrap_or_default(),
        cpu_grad.unwrap_or_default(),
        |_| GRAD_TOL * max_grad,
        |_| max_grad.max(f64::MIN_POSITIVE),
    );
    let grad_ok = grad.ok && gpu_grad.is_some() == cpu_grad.is_some();
    let passed = same_kind && loss.ok && grad_ok && lse_ok;
    let detail = (!passed).then(|| {
        let verdict = |ok: bool, a: &Agreement| {
            if ok {
                "ok".to_string()
            } else {
                format!("differs{}", a.place())
            }
        };
        let mut detail = format!(
            "loss {} (worst rel {:.2e}), gradient {} (worst {:.2e} of max |grad|)",
            if same_kind {
                verdict(loss.ok, &loss)
            } else {
                "differs (reduced on one side only)".to_string()
            },
            loss.worst,
            if gpu_grad.is_some() == cpu_grad.is_some() {
                verdict(grad.ok, &grad)
            } else {
                "differs (present on one side only)".to_string()
            },
            grad.worst,
        );
        if cpu_lse.is_some() || gpu_lse.is_some() {
            detail.push_str(&format!(
                ", log-sum-exp {} (worst rel {:.2e})",
                if gpu_lse.is_some() == cpu_lse.is_some() {
                    verdict(lse.ok, &lse)
                } else {
                    "differs (present on one side only)".to_string()
                },
                lse.worst
            ));
        }
        detail
    });
    CaseReport {
        case: name.to_string(),
        passed,
        loss_error: loss.worst.max(lse.worst),
        grad_error: grad.worst,
        detail,
    }
}

/// Told of each case of [`run`]: `(index, total, case, None)` before it runs and
/// `(index, total, case, Some(report))` after.
pub type Progress<'a> = dyn FnMut(usize, usize, &str, Option<&CaseReport>) + 'a;

/// Runs every case on `ctx`, telling `progress` of each before and after it runs; each case's
/// work is waited for on its own (a slow adapter's wait bound is per case, not for the suite).
#[cfg(not(target_arch = "wasm32"))]
pub fn run(ctx: &Context, progress: &mut Progress) -> Vec<CaseReport> {
    let all = cases();
    let total = all.len();
    all.into_iter()
        .enumerate()
        .map(|(i, c)| {
            progress(i, total, &c.name, None);
            let report = judged(&c.name, ctx.block_on((c.run)(ctx)));
            progress(i, total, &c.name, Some(&report));
            report
        })
        .collect()
}

/// [`run`] without blocking, for a browser (or any async program): the same cases, awaited
/// one after another.
///
/// ```no_run
/// use xent_conformance as conformance;
///
/// # async fn suite() -> xent::Result<()> {
/// let ctx = xent::Context::new_async().await?;
/// let mut finished = 0;
/// let reports = conformance::run_async(&ctx, &mut |_, _, _, report| {
///     finished += usize::from(report.is_some());
/// })
/// .await;
/// let failed: Vec<_> = reports.iter().filter(|r| !r.passed).collect();
/// println!("{finished} cases, {} failed", failed.len());
/// # Ok(())
/// # }
/// ```
pub async fn run_async(ctx: &Context, progress: &mut Progress<'_>) -> Vec<CaseReport> {
    let all = cases();
    let total = all.len();
    let mut reports = Vec::with_capacity(total);
    for (i, c) in all.into_iter().enumerate() {
        progress(i, total, &c.name, None);
        let report = judged(&c.name, (c.run)(ctx).await);
        progress(i, total, &c.name, Some(&report));
        reports.push(report);
    }
    reports
}

/// The report of case `name` from its results, or from the error that stopped it.
fn judged(name: &str, result: Result<Pair>) -> CaseReport {
    match result {
        Ok((gpu, cpu)) => judge(name, &gpu, &cpu),
        Err(e) => CaseReport {
            case: name.to_string(),
            passed: false,
            loss_error: f64::INFINITY,
            grad_error: f64::INFINITY,
            detail: Some(format!("error: {e}")),
        },
    }
}
