//! Loss kernels next to the adapter's read ceiling, measured in the same run.
//!
//! `cargo bench --bench losses` on the best adapter. `XENT_BENCH_SET=gpu` or `cpu-software`
//! picks the shapes (default: `cpu-software` on a software adapter, `gpu` otherwise). Each
//! kernel is timed on data already on the GPU: many recordings per submit, one wait, so the
//! submit-and-wait round trip is amortised. Bytes are the minimal traffic: logits read once
//! for a forward; read once and the gradient written once for forward+gradient; for BCE with
//! logits, input and target read (and the gradient written). After criterion, a table gives
//! each median as GB/s and as a ratio to the read ceiling's median from this run.

mod shapes;

use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use wgpu::util::DeviceExt;
use xent::{
    BceWithLogitsOptions, Context, CrossEntropyOptions, GradMode, PreparedLoss, ReadCeiling,
};

use shapes::{Case, Shape};

/// Recordings per submit, so that one submit carries enough work to hide its overhead.
const RECORDS_PER_SUBMIT: u64 = 8;

fn storage<T: bytemuck::Pod>(ctx: &Context, data: &[T]) -> wgpu::Buffer {
    ctx.device()
        .create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("bench input"),
            contents: bytemuck::cast_slice(data),
            usage: wgpu::BufferUsages::STORAGE,
        })
}

/// Runs `record` `iters` times on the GPU and returns the wall time until all of it is done.
fn time_gpu(ctx: &Context, iters: u64, record: &dyn Fn(&mut wgpu::CommandEncoder)) -> Duration {
    let start = Instant::now();
    let mut left = iters;
    while left > 0 {
        let n = left.min(RECORDS_PER_SUBMIT);
        let mut encoder = ctx.device().create_command_encoder(&Default::default());
        for _ in 0..n {
            record(&mut encoder);
        }
        ctx.queue().submit([encoder.finish()]);
        left -= n;
    }
    ctx.device()
        .poll(wgpu::PollType::wait_indefinitely())
        .expect("the GPU stopped answering");
    start.elapsed()
}

/// Keeps the GPU busy for `seconds` so it leaves its idle clocks before anything is timed.
fn warm_up(ctx: &Context, ceiling: &ReadCeiling, seconds: f64) {
    let start = Instant::now();
    while start.elapsed().as_secs_f64() < seconds {
        time_gpu(ctx, RECORDS_PER_SUBMIT, &|e| ceiling.record(e));
    }
}

/// Prepares one benchmark case on GPU-resident data; `None` when it does not fit the adapter.
fn prepare(ctx: &Context, case: &Case) -> Option<PreparedLoss> {
    let mode = if case.grad {
        GradMode::Separate
    } else {
        GradMode::Off
    };
    let result = match case.shape {
        Shape::CrossEntropy { rows, classes } => {
            let logits: Vec<f32> = (0..rows * classes)
                .map(|i| ((i * 7919) % 1000) as f32 / 100.0 - 5.0)
                .collect();
            let labels: Vec<i32> = (0..rows).map(|r| ((r * 31) % classes) as i32).collect();
            let (l, t) = (storage(ctx, &logits), storage(ctx, &labels));
            ctx.prepare_cross_entropy(&l, &t, rows, classes, &CrossEntropyOptions::default(), mode)
        }
        Shape::BceWithLogits { len } => {
            let x: Vec<f32> = (0..len)
                .map(|i| ((i * 7919) % 1000) as f32 / 50.0 - 10.0)
                .collect();
            let t: Vec<f32> = (0..len).map(|i| (i % 2) as f32).collect();
            let (x, t) = (storage(ctx, &x), storage(ctx, &t));
            ctx.prepare_binary_cross_entropy_with_logits(
                &x,
                &t,
                len,
                &BceWithLogitsOptions::default(),
                mode,
            )
        }
    };
    match result {
        Ok(p) => Some(p),
        Err(e) => {
            eprintln!("skipping {}: {e}", case.name());
            None
        }
    }
}

fn main() {
    let ctx = Context::new().expect("no GPU adapter (scripts/setup-gpu-driver.sh installs one)");
    let info = ctx.adapter_info();
    let set = shapes::chosen_set(info.device_type);
    eprintln!(
        "adapter: {} ({:?}), shape set: {set}",
        info.name, info.backend
    );

    let mut criterion = Criterion::default()
        .configure_from_args()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));

    let ceiling_bytes = if set == "gpu" { 1 << 30 } else { 128 << 20 };
    let ceiling = ReadCeiling::new(&ctx, ceiling_bytes).expect("read-ceiling buffer");
    warm_up(&ctx, &ceiling, if set == "gpu" { 3.0 } else { 0.5 });

    let mut group = criterion.benchmark_group("xent");
    group.throughput(Throughput::Bytes(ceiling.bytes()));
    group.bench_function("read_ceiling", |b| {
        b.iter_custom(|iters| time_gpu(&ctx, iters, &|e| ceiling.record(e)))
    });
    let mut ran = Vec::new();
    for case in shapes::cases(set) {
        let Some(prepared) = prepare(&ctx, &case) else {
            continue;
        };
        ran.push(case);
        group.throughput(Throughput::Bytes(case.bytes()));
        group.bench_function(BenchmarkId::new(case.kernel(), case.shape_name()), |b| {
            b.iter_custom(|iters| time_gpu(&ctx, iters, &|e| prepared.record(e)))
        });
    }
    group.finish();
    criterion.final_summary();
    shapes::print_ratios(&info.name, ceiling.bytes(), &ran);
}
