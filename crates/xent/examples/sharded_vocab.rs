//! Cross-entropy over a vocabulary split across two devices: each adapter holds half of the
//! classes, computes its per-row states, the states are merged (here on the host; across
//! machines, by whatever carries them: an all-gather of 4 f32 per row), and each adapter gets
//! the full loss and the gradient of its own classes. Compares both with the unsplit run and
//! exits non-zero if they differ by more than the tests' tolerance.
//!
//! Uses the first two adapters (lavapipe's Vulkan and GL adapters on a machine without a GPU),
//! or one adapter twice where there is only one.
//!
//! `cargo run --release --example sharded_vocab [ROWS] [VOCAB]`

use xent::{Context, CrossEntropy, Input, Reduction, SplitFinish, SplitStates, VocabShard};

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
}

/// The columns `cols` of (rows, width) row-major values.
fn columns(values: &[f32], width: usize, cols: std::ops::Range<usize>) -> Vec<f32> {
    values
        .chunks(width)
        .flat_map(|row| row[cols.clone()].to_vec())
        .collect()
}

/// The largest |a - b| relative to the largest |b|.
fn worst(a: &[f32], b: &[f32]) -> f32 {
    let scale = b.iter().fold(f32::MIN_POSITIVE, |m, v| m.max(v.abs()));
    a.iter()
        .zip(b)
        .fold(0.0f32, |m, (x, y)| m.max((x - y).abs() / scale))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse())
        .collect::<Result<_, _>>()?;
    let rows = args.first().copied().unwrap_or(256);
    let vocab = args.get(1).copied().unwrap_or(32_000);
    if vocab < 2 {
        return Err("a vocabulary to split has at least 2 classes".into());
    }

    let mut devices = Context::all()?;
    devices.truncate(2);
    if devices.len() == 1 {
        devices.push(devices[0].clone());
    }
    let mut rng = Rng(0x5eed);
    let logits: Vec<f32> = (0..rows * vocab).map(|_| rng.unit() * 16.0 - 8.0).collect();
    let labels: Vec<i64> = (0..rows)
        .map(|n| match n % 10 {
            9 => -100,
            _ => (rng.unit() * vocab as f32) as i64 % vocab as i64,
        })
        .collect();
    let loss = CrossEntropy {
        label_smoothing: 0.1,
        softcap: Some(30.0),
        z_loss: 1e-4,
        reduction: Reduction::Mean,
        ..Default::default()
    };

    let half = vocab / 2;
    let ranges = [0..half, half..vocab];
    let parts: Vec<Vec<f32>> = ranges
        .iter()
        .map(|r| columns(&logits, vocab, r.clone()))
        .collect();
    let shard = |k: usize| VocabShard {
        first: ranges[k].start,
        vocab,
    };
    // 1. Each device: the states of its classes, 4 f32 per row.
    let mut states = Vec::new();
    for (k, ctx) in devices.iter().enumerate() {
        let input = Input::new(&parts[k], [rows, ranges[k].len()]);
        let step = SplitStates {
            cross_entropy: loss.clone(),
            shard: shard(k),
        };
        states.push(ctx.compute(&step, input, &labels)?);
        println!(
            "shard {k}: classes {:?} on {} ({:?})",
            ranges[k],
            ctx.adapter_info().name,
            ctx.adapter_info().backend
        );
    }
    // 2. Merge (an all-gather of the states, then this fold, on every machine).
    let merged = states[0].merge(&states[1])?;
    // 3. Each device: the whole loss and its classes' gradient.
    let whole = devices[0].compute(
        &loss,
        Input::new(&logits, [rows, vocab]).with_grad(),
        &labels,
    )?;
    let (want_loss, want_grad) = (whole.loss.values(), whole.grad.unwrap_or_default());
    let mut failed = false;
    for (k, ctx) in devices.iter().enumerate() {
        let input = Input::new(&parts[k], [rows, ranges[k].len()]).with_grad();
        let step = SplitFinish {
            cross_entropy: loss.clone(),
            shard: shard(k),
        };
        let out = ctx.compute(&step, input, (&labels, &merged))?;
        let loss_err = worst(out.loss.values(), want_loss);
        let grad_err = worst(
            &out.grad.unwrap_or_default(),
            &columns(&want_grad, vocab, ranges[k].clone()),
        );
        println!(
            "shard {k}: loss {:.6} (unsplit {:.6}), worst rel {loss_err:.2e}; gradient worst \
             {grad_err:.2e} of max |grad|",
            out.loss.values()[0],
            want_loss[0]
        );
        failed |= loss_err > 1e-5 || grad_err > 1e-5;
    }
    if failed {
        return Err("the split vocabulary differs from the unsplit run".into());
    }
    println!("{rows} rows x {vocab} classes: the split vocabulary matches the unsplit run");
    Ok(())
}
