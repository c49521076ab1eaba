//! Trains a byte-level bigram language model on the GPU with fused linear cross-entropy.
//!
//! The model predicts each byte of a text from the byte before it: an embedding E (256, D)
//! gives the hidden state of each token, and a classifier W (256, D) with bias b gives its
//! logits. The caller's own WGSL kernels gather the hidden states (H = E[tokens]) and apply
//! plain SGD; xent computes the mean cross-entropy of H W^T + b and the gradients of H, W and
//! b without forming the logits, recorded into the caller's command encoder between them.
//! Only the loss is read back, every few steps. The text is generated here (sentences from a
//! small grammar), and the mean loss of the last 100 steps (read every 10) must be within 0.15
//! nats of the best any bigram model can do on it (its conditional entropy); the example exits
//! non-zero otherwise.
//!
//! `cargo run --release --example train_bigram_lm [-- STEPS]`

use xent::bytemuck;
use xent::wgpu::{self, util::DeviceExt};
use xent::{Context, CrossEntropy, GpuLinearInput, GpuTargets, GradMode, LinearCrossEntropy};

const VOCAB: usize = 256;
const DIM: usize = 32;
const TOKENS: usize = 256;
const STEPS: usize = 600;
const LEARNING_RATE: f32 = 4.0;
/// How far above the text's bigram entropy the final loss may stay.
const SLACK: f64 = 0.15;

/// The caller's kernels: gather the hidden states, and the SGD step of E, W and b.
const KERNELS: &str = r#"
struct Sizes { tokens: u32, dim: u32, vocab: u32, lr: f32 }
@group(0) @binding(0) var<uniform> sizes: Sizes;
@group(0) @binding(1) var<storage, read> tokens: array<i32>;
@group(0) @binding(2) var<storage, read_write> embed: array<f32>;
@group(0) @binding(3) var<storage, read_write> hidden: array<f32>;
@group(0) @binding(4) var<storage, read> grad_hidden: array<f32>;
@group(0) @binding(5) var<storage, read_write> classifier: array<f32>;
@group(0) @binding(6) var<storage, read> grad_classifier: array<f32>;
@group(0) @binding(7) var<storage, read_write> bias: array<f32>;
@group(0) @binding(8) var<storage, read> grad_bias: array<f32>;

@compute @workgroup_size(64)
fn gather(@builtin(global_invocation_id) id: vec3<u32>) {
    let i = id.x;
    if (i >= sizes.tokens * sizes.dim) { return; }
    let n = i / sizes.dim;
    let d = i % sizes.dim;
    hidden[i] = embed[u32(tokens[n]) * sizes.dim + d];
}

// One thread per (class, feature): W and E rows, and b for feature 0. A token's hidden
// gradient goes to the embedding row of its byte (summed in token order, no atomics).
@compute @workgroup_size(64)
fn update(@builtin(global_invocation_id) id: vec3<u32>) {
    let i = id.x;
    if (i >= sizes.vocab * sizes.dim) { return; }
    let v = i / sizes.dim;
    let d = i % sizes.dim;
    classifier[i] = classifier[i] - sizes.lr * grad_classifier[i];
    if (d == 0u) {
        bias[v] = bias[v] - sizes.lr * grad_bias[v];
    }
    var g = 0.0;
    for (var n = 0u; n < sizes.tokens; n = n + 1u) {
        if (u32(tokens[n]) == v) {
            g = g + grad_hidden[n * sizes.dim + d];
        }
    }
    embed[i] = embed[i] - sizes.lr * g;
}
"#;

/// A seeded generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn normal(&mut self) -> f32 {
        let u = (self.next() as f32 / (1u64 << 31) as f32).max(1e-7);
        let v = self.next() as f32 / (1u64 << 31) as f32;
        (-2.0 * u.ln()).sqrt() * (std::f32::consts::TAU * v).cos()
    }
}

/// A text of sentences from a small grammar: what a bigram model can partly learn.
fn text(rng: &mut Rng, bytes: usize) -> Vec<u8> {
    let subjects = [
        "the cat",
        "a dog",
        "my friend",
        "the old man",
        "her brother",
        "we",
    ];
    let verbs = ["sees", "likes", "finds", "paints", "follows", "remembers"];
    let objects = [
        "the moon",
        "a red kite",
        "the river",
        "some bread",
        "the quiet town",
    ];
    let ends = [".", "!", " again.", " at night.", " today."];
    let mut out = Vec::with_capacity(bytes + 64);
    while out.len() < bytes {
        for part in [
            subjects[rng.below(subjects.len())],
            " ",
            verbs[rng.below(verbs.len())],
            " ",
            objects[rng.below(objects.len())],
            ends[rng.below(ends.len())],
            " ",
        ] {
            out.extend_from_slice(part.as_bytes());
        }
    }
    out
}

/// The conditional entropy of the next byte given this one, in nats: the lowest mean loss a
/// bigram model can reach on `text`.
fn bigram_entropy(text: &[u8]) -> f64 {
    let mut counts = vec![0u64; VOCAB * VOCAB];
    for pair in text.windows(2) {
        counts[usize::from(pair[0]) * VOCAB + usize::from(pair[1])] += 1;
    }
    let total = (text.len() - 1) as f64;
    counts
        .chunks(VOCAB)
        .map(|row| {
            let from: u64 = row.iter().sum();
            row.iter()
                .filter(|&&c| c > 0)
                .map(|&c| -(c as f64) / total * (c as f64 / from as f64).ln())
                .sum::<f64>()
        })
        .sum()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let steps = match std::env::args().nth(1) {
        Some(s) => s.parse()?,
        None => STEPS,
    };
    let ctx = Context::new()?;
    let device = ctx.device();
    println!("adapter: {}", ctx.adapter_info().name);
    let mut rng = Rng(11);
    let corpus = text(&mut rng, 1 << 17);
    let floor = bigram_entropy(&corpus);

    let storage = |label, contents: &[u8]| {
        device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some(label),
            contents,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
        })
    };
    let mut small = |n: usize| -> Vec<f32> { (0..n).map(|_| 0.1 * rng.normal()).collect() };
    let (e0, w0) = (small(VOCAB * DIM), small(VOCAB * DIM));
    let embed = storage("embedding", bytemuck::cast_slice(&e0));
    let classifier = storage("classifier", bytemuck::cast_slice(&w0));
    let bias = storage("bias", &[0u8; VOCAB * 4]);
    let hidden = storage("hidden", &[0u8; TOKENS * DIM * 4]);
    let tokens = storage("tokens", &[0u8; TOKENS * 4]);
    let targets = storage("targets", &[0u8; TOKENS * 4]);
    let sizes: [u32; 4] = [
        TOKENS as u32,
        DIM as u32,
        VOCAB as u32,
        LEARNING_RATE.to_bits(),
    ];
    let sizes = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some("sizes"),
        contents: bytemuck::cast_slice(&sizes),
        usage: wgpu::BufferUsages::UNIFORM,
    });

    // xent: the mean loss of hidden classifier^T + bias against the next bytes, and the
    // gradients of all three into buffers it owns.
    let loss = LinearCrossEntropy {
        cross_entropy: CrossEntropy {
            z_loss: 1e-4,
            ..Default::default()
        },
        ..Default::default()
    };
    let input = GpuLinearInput::new(&hidden, &classifier, [TOKENS, DIM, VOCAB])
        .with_bias(&bias)
        .with_grad(GradMode::Separate);
    let prepared = ctx.prepare(&loss, input, GpuTargets::indices(&targets))?;
    let grads = [
        prepared.grad_hidden_buffer(),
        prepared.grad_classifier_buffer(),
        prepared.grad_bias_buffer(),
    ];
    let [Some(grad_hidden), Some(grad_classifier), Some(grad_bias)] = grads else {
        return Err("prepared with gradients, but a gradient buffer is missing".into());
    };

    let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some("bigram model"),
        source: wgpu::ShaderSource::Wgsl(KERNELS.into()),
    });
    let pipeline = |entry: &str, bindings: &[(u32, &wgpu::Buffer)]| {
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(entry),
            layout: None,
            module: &module,
            entry_point: Some(entry),
            compilation_options: Default::default(),
            cache: None,
        });
        let entries: Vec<_> = bindings
            .iter()
            .map(|&(binding, buffer)| wgpu::BindGroupEntry {
                binding,
                resource: buffer.as_entire_binding(),
            })
            .collect();
        let group = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(entry),
            layout: &pipeline.get_bind_group_layout(0),
            entries: &entries,
        });
        (pipeline, group)
    };
    let gather = pipeline(
        "gather",
        &[(0, &sizes), (1, &tokens), (2, &embed), (3, &hidden)],
    );
    let update = pipeline(
        "update",
        &[
            (0, &sizes),
            (1, &tokens),
            (2, &embed),
            (4, grad_hidden),
            (5, &classifier),
            (6, grad_classifier),
            (7, &bias),
            (8, grad_bias),
        ],
    );
    let dispatch = |encoder: &mut wgpu::CommandEncoder,
                    (p, g): &(wgpu::ComputePipeline, wgpu::BindGroup),
                    n: usize| {
        let mut pass = encoder.begin_compute_pass(&Default::default());
        pass.set_pipeline(p);
        pass.set_bind_group(0, g, &[]);
        pass.dispatch_workgroups(n.div_ceil(64) as u32, 1, 1);
    };

    let mut first = None;
    // The losses read over the last 100 steps.
    let mut tail = Vec::new();
    for step in 0..steps {
        // A window of the text: each byte's target is the byte after it.
        let start = rng.below(corpus.len() - TOKENS - 1);
        let window: Vec<i32> = corpus[start..=start + TOKENS]
            .iter()
            .map(|&b| i32::from(b))
            .collect();
        ctx.queue()
            .write_buffer(&tokens, 0, bytemuck::cast_slice(&window[..TOKENS]));
        ctx.queue()
            .write_buffer(&targets, 0, bytemuck::cast_slice(&window[1..]));
        let mut encoder = device.create_command_encoder(&Default::default());
        dispatch(&mut encoder, &gather, TOKENS * DIM);
        prepared.record(&mut encoder);
        dispatch(&mut encoder, &update, VOCAB * DIM);
        ctx.queue().submit([encoder.finish()]);
        let in_tail = step + 100 >= steps && step % 10 == 0;
        if step % 50 == 0 || in_tail || step + 1 == steps {
            let loss = f64::from(prepared.read_loss()?.scalar().unwrap_or(f32::NAN));
            first.get_or_insert(loss);
            if in_tail {
                tail.push(loss);
            }
            if step % 50 == 0 || step + 1 == steps {
                println!("step {step:>4}: loss {loss:.4}");
            }
        }
    }
    let first = first.unwrap_or(f64::NAN);
    let last = tail.iter().sum::<f64>() / tail.len() as f64;
    println!(
        "loss {first:.4} -> {last:.4} (mean of the last 100 steps); the text's bigram entropy \
         is {floor:.4} nats"
    );
    // NaN fails too.
    let converged = last
        .partial_cmp(&(floor + SLACK))
        .is_some_and(|o| o.is_le());
    if !converged {
        return Err(format!(
            "training did not converge: loss {first} -> {last}, bigram entropy {floor} (+{SLACK})"
        )
        .into());
    }
    Ok(())
}
