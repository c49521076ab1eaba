//! Loss kernels next to the adapter's read ceiling, measured in the same run.
//!
//! `cargo bench --bench losses` on the best adapter. `XENT_BENCH_SET=gpu`, `cpu-software` or
//! `quick` picks the shapes (default: `cpu-software` on a software adapter, `gpu` otherwise;
//! see `xent::tools::bench`). Each kernel is timed on data already on the GPU, several recordings per
//! submit and one wait, so the submit-and-wait round trip is amortised. After criterion, a
//! table gives each median as GB/s of minimal traffic and as a ratio to the read ceiling's
//! median from this run, and the forward+gradient over forward time.

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput};
use xent::tools::bench::{self, Case};
use xent::tools::ReadCeiling;
use xent::{Context, Input};

/// The target directory criterion writes under: `CARGO_TARGET_DIR`, or the one this bench
/// was built into (`<target>/<profile>/deps/losses-...`; cargo runs benches from the
/// package's own directory, not the workspace's).
fn target_dir() -> Option<std::path::PathBuf> {
    if let Ok(dir) = std::env::var("CARGO_TARGET_DIR") {
        return Some(dir.into());
    }
    let exe = std::env::current_exe().ok()?;
    Some(exe.parent()?.parent()?.parent()?.to_path_buf())
}

/// Criterion's median for `group/id` (nanoseconds), from its saved estimates.
fn median_ns(id: &str) -> Option<f64> {
    let text =
        std::fs::read_to_string(target_dir()?.join(format!("criterion/{id}/new/estimates.json")))
            .ok()?;
    let median = &text[text.find("\"median\"")?..];
    let key = "\"point_estimate\":";
    let value = &median[median.find(key)? + key.len()..];
    value[..value.find([',', '}'])?].trim().parse().ok()
}

/// Prints each case that ran: its median, GB/s, and ratio to this run's read ceiling.
fn print_ratios(adapter: &str, ceiling_bytes: u64, ran: &[Case]) {
    let Some(ceiling_ns) = median_ns("xent/read_ceiling") else {
        return;
    };
    let ceiling_gbps = ceiling_bytes as f64 / ceiling_ns;
    println!("\nadapter: {adapter}");
    println!(
        "read ceiling: {ceiling_gbps:.1} GB/s (median {:.3} ms)",
        ceiling_ns / 1e6
    );
    println!(
        "{:<34} {:>12} {:>10} {:>8}",
        "case", "median ms", "GB/s", "ratio"
    );
    let mut forward_ns = None;
    for case in ran {
        let Some(ns) = median_ns(&format!("xent/{}", case.name())) else {
            continue;
        };
        let gbps = case.bytes() as f64 / ns;
        let extra = match (case.grad, forward_ns) {
            (true, Some(f)) => format!("   fwd+grad / fwd time {:.2}", ns / f),
            _ => String::new(),
        };
        if !case.grad {
            forward_ns = Some(ns);
        }
        println!(
            "{:<34} {:>12.3} {:>10.1} {:>8.3}{extra}",
            case.name(),
            ns / 1e6,
            gbps,
            gbps / ceiling_gbps
        );
    }
}

fn main() {
    let ctx = Context::new().expect("no GPU adapter (scripts/setup-gpu-driver.sh installs one)");
    let info = ctx.adapter_info();
    let preset = std::env::var("XENT_BENCH_SET")
        .unwrap_or_else(|_| bench::default_preset(info.device_type).to_string());
    let cases = bench::cases(&preset).expect("XENT_BENCH_SET");
    eprintln!(
        "adapter: {} ({:?}), shape set: {preset}",
        info.name, info.backend
    );

    let mut criterion = Criterion::default()
        .configure_from_args()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));

    let gpu = preset == "gpu";
    let ceiling = ReadCeiling::new(&ctx, if gpu { 1 << 30 } else { 128 << 20 }).expect("ceiling");
    let time = |iters, record: &dyn Fn(&mut wgpu::CommandEncoder)| {
        bench::time_gpu(&ctx, iters, record).expect("the GPU stopped answering")
    };
    // Leave idle clocks before anything is timed.
    let warm = std::time::Instant::now();
    while warm.elapsed().as_secs_f64() < if gpu { 3.0 } else { 0.5 } {
        time(bench::RECORDS_PER_SUBMIT, &|e| ceiling.record(e));
    }

    let mut group = criterion.benchmark_group("xent");
    group.throughput(Throughput::Bytes(ceiling.bytes()));
    group.bench_function("read_ceiling", |b| {
        b.iter_custom(|iters| time(iters, &|e| ceiling.record(e)))
    });
    let mut ran = Vec::new();
    for case in cases {
        let prepared = match case.prepare(&ctx) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("skipping {}: {e}", case.name());
                continue;
            }
        };
        ran.push(case);
        group.throughput(Throughput::Bytes(case.bytes()));
        group.bench_function(BenchmarkId::new(case.kernel(), case.shape_name()), |b| {
            b.iter_custom(|iters| time(iters, &|e| prepared.record(e)))
        });
    }
    group.finish();
    latency(&mut criterion, &ctx);
    rebind(&mut criterion, &ctx);
    criterion.final_summary();
    print_ratios(&info.name, ceiling.bytes(), &ran);
    if let (Some(call), Some(floor)) = (
        median_ns("latency/host_ce_64x1000"),
        median_ns("latency/floor"),
    ) {
        println!(
            "host call 64x1000 -> loss: {:.1} us, floor (empty submit + 1 KB readback): {:.1} us, ratio {:.2}",
            call / 1e3,
            floor / 1e3,
            call / floor
        );
    }
}

/// What a framework pays per step to move a prepared loss onto new buffers: a re-bind next to
/// a fresh prepare and to the kernels' own time, on cross-entropy of (256, 4096) with its
/// gradient.
fn rebind(criterion: &mut Criterion, ctx: &Context) {
    use wgpu::util::DeviceExt;
    use xent::{CrossEntropy, GpuInput, GpuTargets, GradMode};
    let (rows, classes) = (256, 4096);
    let logits: Vec<f32> = (0..rows * classes)
        .map(|i| (i % 23) as f32 * 0.2 - 2.0)
        .collect();
    let labels: Vec<i32> = (0..rows as i32).map(|r| r * 13 % classes as i32).collect();
    let buffer = |contents: &[u8]| {
        ctx.device()
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("rebind bench"),
                contents,
                usage: wgpu::BufferUsages::STORAGE,
            })
    };
    let xs = [
        buffer(bytemuck::cast_slice(&logits)),
        buffer(bytemuck::cast_slice(&logits)),
    ];
    let t = buffer(bytemuck::cast_slice(&labels));
    let input = |k: usize| GpuInput::new(&xs[k], [rows, classes]).with_grad(GradMode::Separate);
    let loss = CrossEntropy::default();
    let mut group = criterion.benchmark_group("rebind");
    group.bench_function("prepare_256x4096", |b| {
        b.iter(|| {
            ctx.prepare(&loss, input(0), GpuTargets::indices(&t))
                .expect("prepare")
        })
    });
    let mut prepared = ctx
        .prepare(&loss, input(0), GpuTargets::indices(&t))
        .expect("prepare");
    let mut step = 0;
    group.bench_function("bind_256x4096", |b| {
        b.iter(|| {
            step += 1;
            prepared
                .bind(input(step % 2), GpuTargets::indices(&t))
                .expect("bind")
        })
    });
    group.bench_function("kernels_256x4096", |b| {
        b.iter_custom(|iters| {
            bench::time_gpu(ctx, iters, &|e| prepared.record(e)).expect("the GPU stopped answering")
        })
    });
    group.finish();
    if let (Some(prepare), Some(bind), Some(kernels)) = (
        median_ns("rebind/prepare_256x4096"),
        median_ns("rebind/bind_256x4096"),
        median_ns("rebind/kernels_256x4096"),
    ) {
        println!(
            "cross-entropy 256x4096 with gradient: prepare {:.1} us, re-bind {:.1} us, kernels {:.1} us; re-bind / prepare {:.3}, re-bind / kernels {:.3}",
            prepare / 1e3,
            bind / 1e3,
            kernels / 1e3,
            bind / prepare,
            bind / kernels
        );
    }
}

/// A host call's latency (64 x 1000 logits from a slice to a loss on the host) next to the
/// floor of any GPU round trip: an empty submit plus a 1 KB readback.
fn latency(criterion: &mut Criterion, ctx: &Context) {
    let (rows, classes) = (64, 1000);
    let logits: Vec<f32> = (0..rows * classes)
        .map(|i| (i % 17) as f32 * 0.3 - 2.0)
        .collect();
    let labels: Vec<u32> = (0..rows as u32).map(|r| r * 7 % classes as u32).collect();
    let options = xent::CrossEntropy::default();
    let device = ctx.device();
    let source = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("floor source"),
        size: 1024,
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
        mapped_at_creation: false,
    });
    let staging = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("floor staging"),
        size: 1024,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let mut group = criterion.benchmark_group("latency");
    group.bench_function("floor", |b| {
        b.iter(|| {
            let mut encoder = device.create_command_encoder(&Default::default());
            encoder.copy_buffer_to_buffer(&source, 0, &staging, 0, 1024);
            ctx.queue().submit([encoder.finish()]);
            staging.map_async(wgpu::MapMode::Read, .., |r| r.expect("map"));
            device
                .poll(wgpu::PollType::wait_indefinitely())
                .expect("poll");
            let sum: f32 =
                bytemuck::cast_slice::<u8, f32>(&staging.get_mapped_range(..).expect("mapped"))
                    .iter()
                    .sum();
            staging.unmap();
            sum
        })
    });
    group.bench_function("host_ce_64x1000", |b| {
        b.iter(|| {
            let input = Input::new(&logits, [logits.len() / classes, classes]);
            ctx.compute(&options, input, &labels).expect("loss")
        })
    });
    group.finish();
}
