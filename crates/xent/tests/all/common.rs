//! Shared test helpers: the contexts, seeded inputs, and comparison with the reference.

use std::sync::OnceLock;

use api::*;
use xent::{bytemuck, wgpu, Context, Loss};

/// One context per adapter on the machine, plus the best adapter again with the launch plan
/// of the other kind of device (GPU plan on a CPU adapter, CPU plan on a GPU), so every kernel
/// path (rows kept in registers or read twice) runs on every machine. A machine without an
/// adapter fails the tests: CI installs lavapipe, so a missing adapter is a broken set-up,
/// never a reason to skip.
pub fn contexts() -> &'static [Context] {
    static CONTEXTS: OnceLock<Vec<Context>> = OnceLock::new();
    CONTEXTS.get_or_init(|| {
        let mut all = match Context::all() {
            Ok(all) => all,
            Err(e) => panic!("GPU tests need an adapter: {e}"),
        };
        let other = match all[0].adapter_info().device_type {
            wgpu::DeviceType::Cpu => wgpu::DeviceType::DiscreteGpu,
            _ => wgpu::DeviceType::Cpu,
        };
        let alternate = all[0].with_tuning(xent::Tuning::for_device(other));
        all.insert(1, alternate);
        all
    })
}

/// `ctx` told its storage bindings hold at most `bytes`, so that larger problems are cut into
/// chunks as on a smaller adapter.
pub fn with_binding_limit(ctx: &Context, bytes: u64) -> Context {
    ctx.with_tuning(xent::Tuning {
        max_storage_binding_bytes: Some(bytes),
        ..ctx.tuning()
    })
}

/// A GPU buffer holding `data`, as a caller's tensor: `STORAGE`, and `COPY_SRC` so that an
/// in-place gradient can be read back from it.
pub fn storage<T: bytemuck::Pod>(ctx: &Context, data: &[T]) -> wgpu::Buffer {
    use wgpu::util::DeviceExt;
    ctx.device()
        .create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("test input"),
            contents: bytemuck::cast_slice(data),
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
        })
}

/// Reads a whole f32 buffer back through a staging copy.
pub fn read_buffer(ctx: &xent::Context, buffer: &wgpu::Buffer) -> Vec<f32> {
    let staging = ctx.device().create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size: buffer.size(),
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    encoder.copy_buffer_to_buffer(buffer, 0, &staging, 0, buffer.size());
    ctx.queue().submit([encoder.finish()]);
    staging.map_async(wgpu::MapMode::Read, .., |r| r.unwrap());
    ctx.device()
        .poll(wgpu::PollType::wait_indefinitely())
        .unwrap();
    let values = bytemuck::cast_slice(&staging.get_mapped_range(..).unwrap()).to_vec();
    values
}

/// The values as stored in `dtype` (rounded to nearest even) and back in f32, and their bytes.
pub fn encode(values: &[f32], dtype: xent::Dtype) -> (Vec<f32>, Vec<u8>) {
    match dtype {
        xent::Dtype::F32 => (values.to_vec(), bytemuck::cast_slice(values).to_vec()),
        xent::Dtype::F16 => {
            let h: Vec<half::f16> = values.iter().map(|&v| half::f16::from_f32(v)).collect();
            let bytes = h.iter().flat_map(|x| x.to_bits().to_le_bytes()).collect();
            (h.iter().map(|x| x.to_f32()).collect(), bytes)
        }
        xent::Dtype::Bf16 => {
            let h: Vec<half::bf16> = values.iter().map(|&v| half::bf16::from_f32(v)).collect();
            let bytes = h.iter().flat_map(|x| x.to_bits().to_le_bytes()).collect();
            (h.iter().map(|x| x.to_f32()).collect(), bytes)
        }
    }
}

pub fn typed_buffer(ctx: &Context, bytes: &[u8]) -> wgpu::Buffer {
    let mut padded = bytes.to_vec();
    padded.resize(bytes.len().next_multiple_of(4).max(4), 0);
    wgpu::util::DeviceExt::create_buffer_init(
        ctx.device(),
        &wgpu::util::BufferInitDescriptor {
            label: Some("typed input"),
            contents: &padded,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
        },
    )
}

/// The adapter's name and plan, for failure messages.
pub fn name(ctx: &Context) -> String {
    let info = ctx.adapter_info();
    format!(
        "{} ({:?}, {} logits per row thread)",
        info.name,
        info.backend,
        ctx.tuning().row_elements_per_thread
    )
}

/// A small seeded generator (SplitMix64), so every run sees the same inputs.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }

    /// Uniform in [lo, hi).
    pub fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.unit()
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    pub fn vec(&mut self, len: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..len).map(|_| self.uniform(lo, hi)).collect()
    }

    /// Rows of probabilities that sum to one.
    pub fn distributions(&mut self, rows: usize, classes: usize) -> Vec<f32> {
        let mut t = self.vec(rows * classes, 0.0, 1.0);
        for row in t.chunks_mut(classes) {
            let s: f32 = row.iter().sum();
            row.iter_mut().for_each(|v| *v /= s.max(f32::MIN_POSITIVE));
        }
        t
    }
}

/// The stated tolerance for losses: |gpu - ref| <= RTOL * |ref| + ATOL.
/// RTOL is the relative accuracy of an f32 row reduction against float64; ATOL covers values
/// that cancel to near zero (a per-element BCE loss of 1e-9, say), where f32 has no relative
/// accuracy left.
pub const RTOL: f64 = 1e-5;
pub const ATOL: f64 = 1e-6;

/// The worst error of a comparison: how many values failed, and the worst one.
#[derive(Debug, Default)]
pub struct Report {
    pub failures: usize,
    pub worst_rel: f64,
    pub worst_index: usize,
    pub worst_got: f64,
    pub worst_want: f64,
}

/// Compares GPU values with reference values under the stated tolerance; NaN must match NaN
/// and infinities must match exactly.
pub fn compare(got: &[f32], want: &[f64], rtol: f64, atol: f64) -> Report {
    assert_eq!(got.len(), want.len(), "lengths differ");
    let mut report = Report::default();
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let g = f64::from(g);
        let ok = if w.is_nan() || g.is_nan() {
            w.is_nan() && g.is_nan()
        } else if w.is_infinite() || g.is_infinite() {
            g == w
        } else {
            (g - w).abs() <= rtol * w.abs() + atol
        };
        let rel = if w.is_finite() && g.is_finite() {
            (g - w).abs() / w.abs().max(atol / rtol)
        } else if ok {
            0.0
        } else {
            f64::INFINITY
        };
        if !ok {
            report.failures += 1;
        }
        if rel > report.worst_rel || (!ok && report.failures == 1) {
            report.worst_rel = rel;
            report.worst_index = i;
            report.worst_got = g;
            report.worst_want = w;
        }
    }
    report
}

/// Asserts a GPU loss equals the reference's within the stated tolerance.
pub fn assert_loss(ctx: &Context, case: &str, got: &Loss, want: &Loss<f64>) {
    match (got, want) {
        (Loss::Reduced(_), Loss::Reduced(_)) | (Loss::Unreduced(_), Loss::Unreduced(_)) => {}
        _ => panic!(
            "{case} on {}: reduced vs unreduced: {got:?} vs {want:?}",
            name(ctx)
        ),
    }
    assert_close(ctx, case, got.values(), want.values());
}

/// Asserts a GPU result's log-sum-exp output is there exactly when the reference's is
/// (`CrossEntropy::return_lse`), and equals it within the stated tolerance.
pub fn assert_lse(ctx: &Context, case: &str, got: &xent::Output, want: &xent::Output<f64>) {
    match (&got.lse, &want.lse) {
        (Some(got), Some(want)) => assert_close(ctx, &format!("{case} lse"), got, want),
        (None, None) => {}
        (got, want) => panic!(
            "{case} on {}: lse {:?} vs {:?} values",
            name(ctx),
            got.as_ref().map(Vec::len),
            want.as_ref().map(Vec::len)
        ),
    }
}

/// Asserts GPU values equal reference values within the stated tolerance.
pub fn assert_close(ctx: &Context, case: &str, got: &[f32], want: &[f64]) {
    let r = compare(got, want, RTOL, ATOL);
    assert!(
        r.failures == 0,
        "{case} on {}: {} of {} values differ; worst at [{}]: got {}, want {} (rel {:.3e})",
        name(ctx),
        r.failures,
        got.len(),
        r.worst_index,
        r.worst_got,
        r.worst_want,
        r.worst_rel
    );
    record_worst(case, r.worst_rel);
}

/// Prints the worst relative error of each case when XENT_REPORT_ERRORS is set (for notes).
fn record_worst(case: &str, rel: f64) {
    if std::env::var_os("XENT_REPORT_ERRORS").is_some() {
        eprintln!("worst-rel {rel:.3e} {case}");
    }
}

/// Asserts a fused linear cross-entropy result's loss and every gradient equal the
/// reference's (a gradient on one side only is a failure).
pub fn assert_linear_matches(
    ctx: &Context,
    case: &str,
    got: &xent::LinearOutput,
    want: &xent::LinearOutput<f64>,
) {
    assert_loss(ctx, case, &got.loss, &want.loss);
    let pairs = [
        ("hidden", &got.grad_hidden, &want.grad_hidden),
        ("classifier", &got.grad_classifier, &want.grad_classifier),
        ("bias", &got.grad_bias, &want.grad_bias),
    ];
    for (what, got, want) in pairs {
        match (got, want) {
            (Some(g), Some(w)) => assert_grad_close(ctx, &format!("{case} d{what}"), g, w),
            (None, None) => {}
            _ => panic!("{case}: d{what} present on one side only"),
        }
    }
}

/// The stated tolerance for gradients: |gpu - ref| <= GRAD_TOL * max |ref| over the tensor
/// (a gradient's small entries are differences of O(max) terms in f32).
pub const GRAD_TOL: f64 = 1e-5;

/// Asserts a GPU gradient equals the reference's within [`GRAD_TOL`]; NaN must match NaN.
pub fn assert_grad_close(ctx: &Context, case: &str, got: &[f32], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{case}: gradient lengths differ");
    let scale = want
        .iter()
        .filter(|v| v.is_finite())
        .fold(0.0f64, |m, v| m.max(v.abs()));
    // WGSL lets GPUs flush subnormal results to zero: differences below the smallest normal
    // f32 are within what every conforming GPU may return.
    let atol = (GRAD_TOL * scale).max(f64::from(f32::MIN_POSITIVE));
    let r = compare(got, want, 0.0, atol);
    assert!(
        r.failures == 0,
        "{case} gradient on {}: {} of {} values differ (tolerance {atol:.3e}); worst at [{}]: \
         got {}, want {}",
        name(ctx),
        r.failures,
        got.len(),
        r.worst_index,
        r.worst_got,
        r.worst_want
    );
    if std::env::var_os("XENT_REPORT_ERRORS").is_some() && scale > 0.0 {
        let worst = got
            .iter()
            .zip(want)
            .filter(|(_, w)| w.is_finite())
            .map(|(&g, &w)| (f64::from(g) - w).abs() / scale)
            .fold(0.0f64, f64::max);
        eprintln!("worst-grad {worst:.3e} {case}");
    }
}

/// The proptest configuration of the property tests and fuzzing: `cases` cases unless
/// `XENT_PROPTEST_CASES` (or `XENT_FUZZ_CASES`, named by `cases_var`) says otherwise, from a
/// fixed seed (`XENT_PROPTEST_SEED` picks another), so CI runs the same cases every time;
/// no regression files are written, a failure prints its minimal case.
pub fn proptest_config(cases_var: &str, cases: u32) -> proptest::test_runner::Config {
    let number = |var: &str| std::env::var(var).ok().and_then(|v| v.parse().ok());
    proptest::test_runner::Config {
        cases: number(cases_var).map_or(cases, |n: u64| n as u32),
        rng_seed: proptest::test_runner::RngSeed::Fixed(
            number("XENT_PROPTEST_SEED").unwrap_or(0x7865_6e74),
        ),
        failure_persistence: None,
        ..proptest::test_runner::Config::default()
    }
}

/// Class-index cross-entropy (with its gradient) of `rows` x `classes` logits of 0.25 against
/// `labels` uploaded as GPU buffers, so the kernel checks them: what `check_targets` says after
/// one run.
pub fn gpu_label_status(
    ctx: &Context,
    rows: usize,
    classes: usize,
    labels: &[i32],
) -> Result<(), xent::Error> {
    let logits = storage(ctx, &vec![0.25f32; rows * classes]);
    let labels = storage(ctx, labels);
    let prepared = ctx
        .prepare(
            &xent::CrossEntropy::default(),
            GpuInput::new(&logits, [rows, classes]).with_grad(xent::GradMode::Separate),
            GpuTargets::indices(&labels),
        )
        .unwrap();
    prepared.run().unwrap();
    prepared.check_targets()
}

/// Cross-entropy option sets in which every pair of (weight, ignore_index, smoothing,
/// softcap, z-loss, reduction) values occurs, for `classes` classes (class weights drawn from
/// `rng`; ignore_index -100 or the valid class 0).
pub fn pairwise_options(classes: usize, rng: &mut Rng) -> Vec<xent::CrossEntropy> {
    let weight = Some(rng.vec(classes, 0.2, 3.0));
    let set = |w: bool, ignore: i64, e: f32, cap: Option<f32>, z: f32, r: xent::Reduction| {
        xent::CrossEntropy {
            weight: if w { weight.clone() } else { None },
            ignore_index: ignore,
            label_smoothing: e,
            reduction: r,
            softcap: cap,
            z_loss: z,
            return_lse: false,
        }
    };
    vec![
        set(false, -100, 0.0, None, 0.0, xent::Reduction::Mean),
        set(true, 0, 0.1, Some(4.0), 0.0, xent::Reduction::None),
        set(true, -100, 0.0, Some(2.5), 1e-2, xent::Reduction::Sum),
        set(false, 0, 0.2, None, 1e-2, xent::Reduction::Mean),
        set(true, -100, 0.3, None, 1e-3, xent::Reduction::None),
        set(false, -100, 0.1, Some(3.0), 1e-2, xent::Reduction::Mean),
        set(false, 0, 0.0, Some(5.0), 0.0, xent::Reduction::Sum),
    ]
}

/// Asserts class-index cross-entropy on `ctx` equals the reference every way it runs: the
/// forward loss, the loss with its gradient, and the gradient written over the logits.
pub fn assert_cross_entropy_every_way(
    ctx: &Context,
    case: &str,
    x: &[f32],
    classes: usize,
    labels: &[i64],
    options: &xent::CrossEntropy,
) {
    let want =
        xent::reference::compute(options, grad_input(x, nc(x, classes), None), labels).unwrap();
    let got = ctx
        .compute(options, Input::new(x, nc(x, classes)), labels)
        .unwrap();
    assert_loss(ctx, case, &got.loss, &want.loss);
    assert_lse(ctx, case, &got, &want);
    let got = ctx
        .compute(options, grad_input(x, nc(x, classes), None), labels)
        .unwrap();
    assert_loss(ctx, case, &got.loss, &want.loss);
    assert_lse(ctx, case, &got, &want);
    assert_grad_close(
        ctx,
        case,
        got.grad.as_deref().unwrap(),
        want.grad.as_deref().unwrap(),
    );
    let mut in_place = x.to_vec();
    let got = ctx
        .compute(options, overwritten(&mut in_place, classes, None), labels)
        .unwrap();
    assert_loss(ctx, case, &got.loss, &want.loss);
    assert_lse(ctx, case, &got, &want);
    assert_grad_close(ctx, case, &in_place, want.grad.as_deref().unwrap());
}

/// Asserts cross-entropy with probability targets `t` on `ctx` equals the reference with its
/// gradient, both into a buffer of its own and over the logits.
pub fn assert_cross_entropy_probs_with_grad(
    ctx: &Context,
    case: &str,
    x: &[f32],
    classes: usize,
    t: &[f32],
    options: &xent::CrossEntropy,
) {
    let want = xent::reference::compute(options, grad_input(x, nc(x, classes), None), t).unwrap();
    let got = ctx
        .compute(options, grad_input(x, nc(x, classes), None), t)
        .unwrap();
    assert_loss(ctx, case, &got.loss, &want.loss);
    assert_lse(ctx, case, &got, &want);
    assert_grad_close(
        ctx,
        case,
        got.grad.as_deref().unwrap(),
        want.grad.as_deref().unwrap(),
    );
    let mut in_place = x.to_vec();
    let got = ctx
        .compute(options, overwritten(&mut in_place, classes, None), t)
        .unwrap();
    assert_loss(ctx, case, &got.loss, &want.loss);
    assert_lse(ctx, case, &got, &want);
    assert_grad_close(ctx, case, &in_place, want.grad.as_deref().unwrap());
}

/// The names every test file calls losses with: the API's input and target types, and the
/// shapes of the tests' flat inputs.
/// A loss of the categorical and binary families: computed on an [`xent::Input`] with
/// [`xent::Targets`], giving an [`xent::Output`] on the GPU and an `Output<f64>` in the
/// reference.
pub trait HostLoss:
    xent::reference::Exact<Exact = xent::Output<f64>>
    + for<'a> xent::Descriptor<
        Input<'a> = xent::Input<'a>,
        Targets<'a> = xent::Targets<'a>,
        Output = xent::Output,
    >
{
}

impl<L> HostLoss for L where
    L: xent::reference::Exact<Exact = xent::Output<f64>>
        + for<'a> xent::Descriptor<
            Input<'a> = xent::Input<'a>,
            Targets<'a> = xent::Targets<'a>,
            Output = xent::Output,
        >
{
}

pub mod api {
    pub use xent::{GpuInput, GpuTargets, Input, LogSoftmax, Targets};

    /// The shape `[N, C]` of flat (N, C) logits with C classes (N rounded down, so a length
    /// that is not a multiple of C is a shape mismatch).
    pub fn nc(x: &[f32], classes: usize) -> [usize; 2] {
        [x.len() / classes.max(1), classes]
    }

    /// The shape of a flat vector.
    pub fn flat(x: &[f32]) -> [usize; 1] {
        [x.len()]
    }

    /// The shape of BCE-with-logits inputs: rows of pos_weight's length when there is one.
    pub fn bce_shape(x: &[f32], options: &xent::BinaryCrossEntropyWithLogits) -> Vec<usize> {
        bce_gpu_shape(x.len(), options)
    }

    /// [`bce_shape`] of `len` elements.
    pub fn bce_gpu_shape(len: usize, options: &xent::BinaryCrossEntropyWithLogits) -> Vec<usize> {
        match &options.pos_weight {
            Some(pw) if !pw.is_empty() => vec![len / pw.len(), pw.len()],
            _ => vec![len],
        }
    }

    /// An input asking for its gradient, for `upstream` (ones when `None`).
    pub fn grad_input<'a>(
        x: &'a [f32],
        shape: impl Into<Vec<usize>>,
        upstream: Option<&'a [f32]>,
    ) -> Input<'a> {
        let input = Input::new(x, shape);
        match upstream {
            Some(u) => input.with_upstream(u),
            None => input.with_grad(),
        }
    }

    /// (N, C) logits to be overwritten by their gradient, for `upstream` (ones when `None`).
    pub fn overwritten<'a>(
        x: &'a mut [f32],
        classes: usize,
        upstream: Option<&'a [f32]>,
    ) -> Input<'a> {
        let shape = nc(x, classes);
        let input = Input::in_place(x, shape);
        match upstream {
            Some(u) => input.with_upstream(u),
            None => input,
        }
    }
}
