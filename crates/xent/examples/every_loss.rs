//! Computes every loss on a generated batch on the best adapter and compares each with the
//! float64 reference. Exits non-zero if any differs by more than the stated tolerance.
//!
//! `cargo run --release --example every_loss [ROWS] [CLASSES]`

use xent::{
    reference, BinaryCrossEntropy, BinaryCrossEntropyWithLogits, Context, CrossEntropy, Input,
    LogSoftmax, Loss, NllLoss, Reduction, SigmoidFocalLoss, Targets,
};

/// |gpu - ref| <= RTOL |ref| + ATOL, the tolerance xent's tests state.
const RTOL: f64 = 1e-5;
const ATOL: f64 = 1e-6;

/// A seeded generator so every run computes the same batch.
struct Rng(u64);

impl Rng {
    fn unit(&mut self) -> f32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 40) as f32 / (1u64 << 24) as f32
    }
    fn vec(&mut self, len: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..len).map(|_| lo + (hi - lo) * self.unit()).collect()
    }
}

/// Worst error of `got` against `want` relative to the tolerance (<= 1 passes).
fn worst(got: &[f32], want: &[f64]) -> (f64, f64) {
    let mut worst_ratio: f64 = 0.0;
    let mut worst_rel: f64 = 0.0;
    for (&g, &w) in got.iter().zip(want) {
        let g = f64::from(g);
        let (ratio, rel) = if w.is_nan() && g.is_nan() || g == w {
            (0.0, 0.0)
        } else if !w.is_finite() || !g.is_finite() {
            (f64::INFINITY, f64::INFINITY)
        } else {
            let err = (g - w).abs();
            (
                err / (RTOL * w.abs() + ATOL),
                err / w.abs().max(ATOL / RTOL),
            )
        };
        worst_ratio = worst_ratio.max(ratio);
        worst_rel = worst_rel.max(rel);
    }
    (worst_ratio, worst_rel)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse())
        .collect::<Result<_, _>>()?;
    let rows = args.first().copied().unwrap_or(4096);
    let classes = args.get(1).copied().unwrap_or(1000);

    let ctx = Context::new()?;
    let info = ctx.adapter_info();
    println!(
        "adapter: {} ({:?}, {:?}, driver {})",
        info.name, info.backend, info.device_type, info.driver_info
    );
    println!("batch: {rows} rows x {classes} classes\n");

    let mut rng = Rng(0x5eed);
    let logits = rng.vec(rows * classes, -8.0, 8.0);
    let labels: Vec<i64> = (0..rows)
        .map(|i| {
            if i % 10 == 9 {
                -100
            } else {
                (rng.unit() * classes as f32) as i64 % classes as i64
            }
        })
        .collect();
    let mut probs = rng.vec(rows * classes, 0.0, 1.0);
    for row in probs.chunks_mut(classes) {
        let s: f32 = row.iter().sum();
        row.iter_mut().for_each(|v| *v /= s);
    }
    let weight = rng.vec(classes, 0.5, 2.0);
    let p = rng.vec(rows * classes, 0.0, 1.0);
    let t = rng.vec(rows * classes, 0.0, 1.0);
    let pos_weight = rng.vec(classes, 0.5, 3.0);

    let shape = [rows, classes];
    let logp = ctx
        .compute(&LogSoftmax, Input::new(&logits, shape), Targets::None)?
        .loss
        .into_values();
    let logp_ref = reference::compute(&LogSoftmax, Input::new(&logits, shape), Targets::None)?
        .loss
        .into_values();
    let mut results: Vec<(String, Loss, Loss<f64>)> = Vec::new();
    for reduction in [Reduction::Mean, Reduction::Sum, Reduction::None] {
        let ce = CrossEntropy {
            weight: Some(weight.clone()),
            label_smoothing: 0.1,
            reduction,
            ..Default::default()
        };
        results.push((
            format!("cross_entropy (indices, weight, smoothing 0.1) {reduction:?}"),
            ctx.compute(&ce, Input::new(&logits, shape), &labels)?.loss,
            reference::compute(&ce, Input::new(&logits, shape), &labels)?.loss,
        ));
        results.push((
            format!("cross_entropy (probabilities, weight, smoothing 0.1) {reduction:?}"),
            ctx.compute(&ce, Input::new(&logits, shape), &probs)?.loss,
            reference::compute(&ce, Input::new(&logits, shape), &probs)?.loss,
        ));
        // Gemma 2's logit softcap and PaLM's z-loss, with each row's log-sum-exp returned.
        let capped = CrossEntropy {
            softcap: Some(30.0),
            z_loss: 1e-4,
            return_lse: true,
            reduction,
            ..Default::default()
        };
        let got = ctx.compute(&capped, Input::new(&logits, shape), &labels)?;
        let want = reference::compute(&capped, Input::new(&logits, shape), &labels)?;
        results.push((
            format!("cross_entropy (softcap 30, z-loss 1e-4) {reduction:?}"),
            got.loss,
            want.loss,
        ));
        if reduction == Reduction::None {
            results.push((
                "  its log-sum-exp per row (return_lse)".into(),
                Loss::Unreduced(got.lse.unwrap_or_default()),
                Loss::Unreduced(want.lse.unwrap_or_default()),
            ));
        }
        // The same values read as one K-dimensional sample: (1, C, N), a position per row.
        let kdim = [1, classes, rows];
        results.push((
            format!("cross_entropy K-dimensional (1, C, N) {reduction:?}"),
            ctx.compute(&ce, Input::new(&logits, kdim), &labels)?.loss,
            reference::compute(&ce, Input::new(&logits, kdim), &labels)?.loss,
        ));
        // The NLL loss of log-probabilities (the log-softmax of the logits, computed once).
        let nll = NllLoss {
            weight: Some(weight.clone()),
            reduction,
            ..Default::default()
        };
        results.push((
            format!("nll_loss (log-probabilities, weight) {reduction:?}"),
            ctx.compute(&nll, Input::new(&logp, shape), &labels)?.loss,
            reference::compute(&nll, Input::new(&logp, shape), &labels)?.loss,
        ));
        let bce = BinaryCrossEntropy {
            weight: None,
            reduction,
        };
        results.push((
            format!("binary_cross_entropy {reduction:?}"),
            ctx.compute(&bce, Input::new(&p, shape), &t)?.loss,
            reference::compute(&bce, Input::new(&p, shape), &t)?.loss,
        ));
        let bce_logits = BinaryCrossEntropyWithLogits {
            pos_weight: Some(pos_weight.clone()),
            reduction,
            ..Default::default()
        };
        results.push((
            format!("binary_cross_entropy_with_logits (pos_weight) {reduction:?}"),
            ctx.compute(&bce_logits, Input::new(&logits, shape), &t)?
                .loss,
            reference::compute(&bce_logits, Input::new(&logits, shape), &t)?.loss,
        ));
        let focal = SigmoidFocalLoss {
            reduction,
            ..Default::default()
        };
        results.push((
            format!("sigmoid_focal_loss (alpha 0.25, gamma 2) {reduction:?}"),
            ctx.compute(&focal, Input::new(&logits, shape), &t)?.loss,
            reference::compute(&focal, Input::new(&logits, shape), &t)?.loss,
        ));
    }

    println!(
        "{:<62} {:>14} {:>14} {:>10}",
        "loss", "gpu", "reference", "worst rel"
    );
    let mut failed = 0;
    let mut report =
        |name: &str, shown_gpu: String, shown_ref: String, got: &[f32], want: &[f64]| {
            let (ratio, rel) = worst(got, want);
            let verdict = if ratio <= 1.0 { "" } else { "  FAIL" };
            if ratio > 1.0 {
                failed += 1;
            }
            println!("{name:<62} {shown_gpu:>14} {shown_ref:>14} {rel:>10.2e}{verdict}");
        };
    for (name, got, want) in &results {
        let (g, w) = match (got, want) {
            (Loss::Reduced(g), Loss::Reduced(w)) => (format!("{g:.6}"), format!("{w:.6}")),
            _ => (
                format!("{} values", got.values().len()),
                format!("{} values", want.values().len()),
            ),
        };
        report(name, g, w, got.values(), want.values());
    }
    report(
        "log_softmax",
        format!("{} values", logp.len()),
        format!("{} values", logp_ref.len()),
        &logp,
        &logp_ref,
    );
    println!("\ntolerance: |gpu - ref| <= {RTOL:e} |ref| + {ATOL:e}");
    if failed > 0 {
        return Err(format!("{failed} losses differ from the float64 reference").into());
    }
    println!("every loss matches the float64 reference");
    Ok(())
}
