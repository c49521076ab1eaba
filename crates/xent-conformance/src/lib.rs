//! The conformance suite behind `xent check`: every loss, option and gradient against the
//! float64 reference on seeded inputs, plus the edge cases, on one adapter at a time.

use std::future::Future;
use std::pin::Pin;
use xent::reference;
use xent::{
    BinaryCrossEntropy, BinaryCrossEntropyWithLogits, CrossEntropy, Descriptor, Input,
    LinearCrossEntropy, LinearInput, LinearOutput, LogSoftmax, Loss, NllLoss, Output, Reduction,
    SigmoidFocalLoss, Targets,
};
use xent::{Context, Result};
use xent::{SplitFinish, SplitStates, VocabShard};

mod cases;

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

/// A loss of the categorical and binary families: computed on an [`Input`] with [`Targets`],
/// giving an [`Output`] on the GPU and an `Output<f64>` in the reference (every descriptor
/// but fused linear cross-entropy and the vocabulary split's steps).
///
/// ```
/// fn takes(_: &impl xent_conformance::HostLoss) {}
/// takes(&xent::CrossEntropy::default());
/// takes(&xent::LogSoftmax);
/// ```
pub trait HostLoss:
    reference::Exact<Exact = Output<f64>>
    + for<'a> Descriptor<Input<'a> = Input<'a>, Targets<'a> = Targets<'a>, Output = Output>
{
}

impl<L> HostLoss for L where
    L: reference::Exact<Exact = Output<f64>>
        + for<'a> Descriptor<Input<'a> = Input<'a>, Targets<'a> = Targets<'a>, Output = Output>
{
}

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
    loss: &impl HostLoss,
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

/// Names of every case, in order.
pub fn case_names() -> Vec<String> {
    cases::all().into_iter().map(|c| c.name).collect()
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
    let all = cases::all();
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
    let all = cases::all();
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
