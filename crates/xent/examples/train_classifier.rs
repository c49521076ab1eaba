//! Trains a softmax-regression classifier on synthetic data entirely on the GPU.
//!
//! The caller's own WGSL kernels compute the logits (X W) and apply the update
//! (W -= lr X^T G); xent computes the mean cross-entropy and writes its gradient G over the
//! logits buffer, recorded into the caller's command encoder. Only the scalar loss is read back,
//! every few steps (and W once at the end, for the accuracy). Exits non-zero if training does
//! not converge.
//!
//! `cargo run --release --example train_classifier`

use xent::bytemuck;
use xent::wgpu::{self, util::DeviceExt};
use xent::{Context, CrossEntropy, GpuInput, GpuTargets, GradMode};

const SAMPLES: usize = 4096;
const FEATURES: usize = 17; // 16 features and a constant 1 for the bias
const CLASSES: usize = 4;
const STEPS: usize = 300;
const LEARNING_RATE: f32 = 0.5;

/// The caller's kernels: logits = X W, and the gradient step on W.
const KERNELS: &str = r#"
struct Sizes { samples: u32, features: u32, classes: u32, lr: f32 }
@group(0) @binding(0) var<uniform> sizes: Sizes;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> w: array<f32>;
@group(0) @binding(3) var<storage, read_write> logits: array<f32>;

@compute @workgroup_size(64)
fn forward(@builtin(global_invocation_id) id: vec3<u32>) {
    let i = id.x;
    if (i >= sizes.samples * sizes.classes) { return; }
    let n = i / sizes.classes;
    let c = i % sizes.classes;
    var acc = 0.0;
    for (var d = 0u; d < sizes.features; d = d + 1u) {
        acc = acc + x[n * sizes.features + d] * w[d * sizes.classes + c];
    }
    logits[i] = acc;
}

// `logits` holds xent's gradient of the mean loss here.
@compute @workgroup_size(64)
fn update(@builtin(global_invocation_id) id: vec3<u32>) {
    let i = id.x;
    if (i >= sizes.features * sizes.classes) { return; }
    let d = i / sizes.classes;
    let c = i % sizes.classes;
    var acc = 0.0;
    for (var n = 0u; n < sizes.samples; n = n + 1u) {
        acc = acc + x[n * sizes.features + d] * logits[n * sizes.classes + c];
    }
    w[i] = w[i] - sizes.lr * acc;
}
"#;

/// A seeded generator.
struct Rng(u64);

impl Rng {
    fn unit(&mut self) -> f32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 40) as f32 / (1u64 << 24) as f32
    }
    fn normal(&mut self) -> f32 {
        let (u, v) = (self.unit().max(1e-7), self.unit());
        (-2.0 * u.ln()).sqrt() * (std::f32::consts::TAU * v).cos()
    }
}

/// Synthetic data: each class is a Gaussian blob around its own random centre.
fn dataset(rng: &mut Rng) -> (Vec<f32>, Vec<i32>) {
    let centres: Vec<f32> = (0..CLASSES * (FEATURES - 1))
        .map(|_| 0.8 * rng.normal())
        .collect();
    let mut x = Vec::with_capacity(SAMPLES * FEATURES);
    let mut y = Vec::with_capacity(SAMPLES);
    for n in 0..SAMPLES {
        let class = n % CLASSES;
        for d in 0..FEATURES - 1 {
            x.push(centres[class * (FEATURES - 1) + d] + rng.normal());
        }
        x.push(1.0);
        y.push(class as i32);
    }
    (x, y)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let ctx = Context::new()?;
    let device = ctx.device();
    println!("adapter: {}", ctx.adapter_info().name);
    let (x, y) = dataset(&mut Rng(7));

    let storage = |label, contents: &[u8], extra| {
        device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some(label),
            contents,
            usage: wgpu::BufferUsages::STORAGE | extra,
        })
    };
    let x_buf = storage("x", bytemuck::cast_slice(&x), wgpu::BufferUsages::empty());
    let y_buf = storage(
        "labels",
        bytemuck::cast_slice(&y),
        wgpu::BufferUsages::empty(),
    );
    let w_buf = storage(
        "w",
        &vec![0u8; FEATURES * CLASSES * 4],
        wgpu::BufferUsages::COPY_SRC,
    );
    let logits_buf = storage(
        "logits",
        &vec![0u8; SAMPLES * CLASSES * 4],
        wgpu::BufferUsages::empty(),
    );
    let sizes: [u32; 4] = [
        SAMPLES as u32,
        FEATURES as u32,
        CLASSES as u32,
        LEARNING_RATE.to_bits(),
    ];
    let sizes_buf = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some("sizes"),
        contents: bytemuck::cast_slice(&sizes),
        usage: wgpu::BufferUsages::UNIFORM,
    });

    let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some("classifier"),
        source: wgpu::ShaderSource::Wgsl(KERNELS.into()),
    });
    let pipeline = |entry: &str| {
        device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(entry),
            layout: None,
            module: &module,
            entry_point: Some(entry),
            compilation_options: Default::default(),
            cache: None,
        })
    };
    let (forward, update) = (pipeline("forward"), pipeline("update"));
    let bind = |p: &wgpu::ComputePipeline| {
        device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &p.get_bind_group_layout(0),
            entries: &[&sizes_buf, &x_buf, &w_buf, &logits_buf]
                .iter()
                .enumerate()
                .map(|(i, b)| wgpu::BindGroupEntry {
                    binding: i as u32,
                    resource: b.as_entire_binding(),
                })
                .collect::<Vec<_>>(),
        })
    };
    let (forward_bg, update_bg) = (bind(&forward), bind(&update));

    // xent: mean cross-entropy of the logits, its gradient written over them.
    let input = GpuInput::new(&logits_buf, [SAMPLES, CLASSES]).with_grad(GradMode::InPlace);
    let targets = GpuTargets::indices(&y_buf);
    let loss = ctx.prepare(&CrossEntropy::default(), input, targets)?;

    let mut first = None;
    let mut last = f32::NAN;
    for step in 0..STEPS {
        let mut encoder = device.create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            pass.set_pipeline(&forward);
            pass.set_bind_group(0, &forward_bg, &[]);
            pass.dispatch_workgroups((SAMPLES * CLASSES).div_ceil(64) as u32, 1, 1);
        }
        loss.record(&mut encoder);
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            pass.set_pipeline(&update);
            pass.set_bind_group(0, &update_bg, &[]);
            pass.dispatch_workgroups((FEATURES * CLASSES).div_ceil(64) as u32, 1, 1);
        }
        ctx.queue().submit([encoder.finish()]);
        if step % 25 == 0 || step == STEPS - 1 {
            last = loss.read_loss()?.scalar().unwrap_or(f32::NAN);
            first.get_or_insert(last);
            println!("step {step:>4}: loss {last:.4}");
        }
    }

    // Accuracy from the trained weights (read back once).
    let staging = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("w readback"),
        size: (FEATURES * CLASSES * 4) as u64,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let mut encoder = device.create_command_encoder(&Default::default());
    encoder.copy_buffer_to_buffer(&w_buf, 0, &staging, 0, staging.size());
    ctx.queue().submit([encoder.finish()]);
    staging.map_async(wgpu::MapMode::Read, .., |r| r.expect("mapping the weights"));
    device.poll(wgpu::PollType::wait_indefinitely())?;
    let w: Vec<f32> = bytemuck::cast_slice(&staging.get_mapped_range(..)?).to_vec();
    let correct = (0..SAMPLES)
        .filter(|&n| {
            let score = |c: usize| {
                (0..FEATURES)
                    .map(|d| x[n * FEATURES + d] * w[d * CLASSES + c])
                    .sum::<f32>()
            };
            let best = (0..CLASSES)
                .max_by(|&a, &b| score(a).total_cmp(&score(b)))
                .unwrap_or(0);
            best as i32 == y[n]
        })
        .count();
    let accuracy = correct as f32 / SAMPLES as f32;
    let first = first.unwrap_or(f32::NAN);
    println!(
        "loss {first:.4} -> {last:.4}, accuracy {:.1}%",
        100.0 * accuracy
    );
    if !(last < 0.25 * first && accuracy > 0.9) {
        return Err(format!(
            "training did not converge: loss {first} -> {last}, accuracy {accuracy}"
        )
        .into());
    }
    Ok(())
}
