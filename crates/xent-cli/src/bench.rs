//! `xent bench`: loss kernels next to the read ceiling measured in the same run.

use std::time::Duration;
use xent::wgpu;

use crate::json::{self, Json};
use crate::progress::Progress;
use xent::tools::bench::{self, Case};
use xent::tools::ReadCeiling;
use xent::Context;

/// Arguments of `xent bench`.
#[derive(clap::Args)]
pub struct Args {
    /// The adapter: an index from `xent info`, a backend (vulkan, metal, dx12, gl, webgpu;
    /// its best adapter), or part of one adapter's name (default: the best adapter).
    #[arg(long)]
    adapter: Option<String>,
    /// Shapes: gpu, cpu-software, quick, or linear (fused and composed linear cross-entropy
    /// at 2048 x 128 x 131072 only) (default: cpu-software on a software adapter, gpu
    /// otherwise).
    #[arg(long)]
    preset: Option<String>,
    /// Also write one JSON record per kernel and shape to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<String>,
    /// Also draw each kernel's time, GB/s and ratio to the read ceiling as an SVG chart.
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<String>,
    /// Timed samples per kernel (the median is reported).
    #[arg(long, default_value_t = 9)]
    samples: usize,
    /// Merge rows through workgroup memory only, even where the adapter has subgroups (to
    /// compare the two).
    #[arg(long)]
    no_subgroups: bool,
}

/// One measured kernel and shape.
struct Record {
    case: Case,
    median_s: f64,
    /// Device memory xent allocated for the case beyond its inputs.
    owned_bytes: u64,
}

/// Runs of `record` per timed sample: enough to last about 50 ms (at least one). The first
/// runs also compile and warm caches; a first run of over 50 ms (compiles included) is one
/// run per sample at once.
fn calibrate(ctx: &Context, record: &dyn Fn(&mut wgpu::CommandEncoder)) -> Result<u64, String> {
    let time = |iters| bench::time_gpu(ctx, iters, record).map_err(|e| e.to_string());
    let first = time(1)?;
    if first > Duration::from_millis(50) {
        return Ok(1);
    }
    let per = time(bench::RECORDS_PER_SUBMIT)?.max(first / 4) / bench::RECORDS_PER_SUBMIT as u32;
    Ok(
        (Duration::from_millis(50).as_secs_f64() / per.as_secs_f64().max(1e-9))
            .ceil()
            .max(1.0) as u64,
    )
}

/// Seconds per run of `record`, over one sample of `iters` runs.
fn sample(
    ctx: &Context,
    iters: u64,
    record: &dyn Fn(&mut wgpu::CommandEncoder),
) -> Result<f64, String> {
    let elapsed = bench::time_gpu(ctx, iters, record).map_err(|e| e.to_string())?;
    Ok(elapsed.as_secs_f64() / iters as f64)
}

/// The middle value of `times` (sorted here).
fn median(times: &mut [f64]) -> f64 {
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// The read ceiling, sampled between the kernels' samples all through the run: a machine's
/// read bandwidth drifts under load, and its best sample is the ceiling the kernels are quoted
/// against.
struct Ceiling {
    kernel: ReadCeiling,
    iters: u64,
    best_s: f64,
    samples: usize,
}

impl Ceiling {
    fn new(ctx: &Context, bytes: u64, warm_up_s: f64) -> Result<Ceiling, String> {
        let kernel = ReadCeiling::new(ctx, bytes).map_err(|e| e.to_string())?;
        let warm = std::time::Instant::now();
        while warm.elapsed().as_secs_f64() < warm_up_s {
            bench::time_gpu(ctx, bench::RECORDS_PER_SUBMIT, &|e| kernel.record(e))
                .map_err(|e| e.to_string())?;
        }
        let iters = calibrate(ctx, &|e| kernel.record(e))?;
        Ok(Ceiling {
            kernel,
            iters,
            best_s: f64::INFINITY,
            samples: 0,
        })
    }

    /// Times one more sample of the ceiling.
    fn sample(&mut self, ctx: &Context) -> Result<(), String> {
        let s = sample(ctx, self.iters, &|e| self.kernel.record(e))?;
        self.best_s = self.best_s.min(s);
        self.samples += 1;
        Ok(())
    }

    fn gbps(&self) -> f64 {
        self.kernel.bytes() as f64 / self.best_s / 1e9
    }
}

/// Runs `xent bench`.
pub fn run(args: &Args) -> Result<(), String> {
    let reports: Vec<&str> = args
        .json
        .iter()
        .chain(&args.plot)
        .map(String::as_str)
        .collect();
    crate::files::check_outputs(&[], &reports)?;
    let ctx = crate::chosen_contexts(args.adapter.as_deref(), false, true)?.remove(0);
    let ctx = crate::subgroups_flag(ctx, args.no_subgroups);
    let info = ctx.adapter_info().clone();
    let preset = args
        .preset
        .clone()
        .unwrap_or_else(|| bench::default_preset(info.device_type).to_string());
    let cases = bench::cases(&preset).map_err(|e| e.to_string())?;
    let gpu = preset == "gpu";
    let samples = args.samples.max(1);
    let progress = Progress::new(cases.len() + 1);
    progress.start(0, "read ceiling");
    let mut ceiling = Ceiling::new(
        &ctx,
        if gpu { 1 << 30 } else { 128 << 20 },
        if gpu { 3.0 } else { 0.3 },
    )?;
    ceiling.sample(&ctx)?;
    // The summary quotes the best of every sample; this is the first.
    let first = format!("{:.2} GB/s (first sample)", ceiling.gbps());
    progress.finish(0, "read ceiling", &first);
    let mut records = Vec::new();
    let mut skipped = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        progress.start(i + 1, &case.name());
        let prepared = match case.prepare(&ctx) {
            Ok(prepared) => prepared,
            Err(e) => {
                progress.finish(i + 1, &case.name(), "skipped");
                skipped.push(format!("{}: {e}", case.name()));
                continue;
            }
        };
        let record = |e: &mut wgpu::CommandEncoder| prepared.record(e);
        let iters = calibrate(&ctx, &record)?;
        let mut times = Vec::with_capacity(samples);
        for _ in 0..samples {
            times.push(sample(&ctx, iters, &record)?);
            ceiling.sample(&ctx)?;
        }
        let median_s = median(&mut times);
        let done = format!(
            "{:.3} ms, {:.2} GB/s",
            median_s * 1e3,
            case.bytes() as f64 / median_s / 1e9
        );
        progress.finish(i + 1, &case.name(), &done);
        records.push(Record {
            case: *case,
            median_s,
            owned_bytes: prepared.owned_bytes,
        });
    }
    progress.done();
    let ceiling_gbps = ceiling.gbps();

    say!(
        "adapter: {} ({:?}), preset {preset}, rows merged {}",
        info.name,
        info.backend,
        crate::row_merge(&ctx)
    );
    say!(
        "read ceiling: {ceiling_gbps:.2} GB/s ({} MiB; best of {} samples taken between the kernels')",
        ceiling.kernel.bytes() >> 20,
        ceiling.samples,
    );
    // The name column as wide as the longest name.
    let width = records
        .iter()
        .map(|r| r.case.name().len())
        .max()
        .unwrap_or(0)
        .max(12);
    say!(
        "{:<width$} {:>11} {:>9} {:>7} {:>9} {:>10}",
        "kernel/shape",
        "median ms",
        "GB/s",
        "ratio",
        "GFLOP/s",
        "owned MiB"
    );
    for r in &records {
        let gflops = r
            .gflops()
            .map_or_else(|| "-".to_string(), |g| format!("{g:.2}"));
        say!(
            "{:<width$} {:>11.3} {:>9.2} {:>7.3} {:>9} {:>10.1}",
            r.case.name(),
            r.median_s * 1e3,
            r.gbps(),
            r.gbps() / ceiling_gbps,
            gflops,
            r.owned_bytes as f64 / f64::from(1 << 20)
        );
    }
    for s in &skipped {
        say!("skipped {s}");
    }
    say!("GB/s counts the minimal traffic: logits (BCE: input and target; linear_ce: hidden, classifier and bias) read once, plus the gradient(s) written once for _grad");
    say!("GFLOP/s counts linear_ce's products (2 N V D for the logits, 4 N V D more for the gradients); owned MiB is the device memory xent allocated for a case beyond its inputs");
    for r in records.iter().filter(|r| r.gbps() > ceiling_gbps) {
        say!(
            "note: {} beats the ceiling: its {:.1} MiB of traffic can stay in the adapter's caches between runs, where the ceiling reads {} MiB from memory",
            r.case.name(),
            r.case.bytes() as f64 / f64::from(1 << 20),
            ceiling.kernel.bytes() >> 20
        );
    }

    let record_json = |r: &Record| {
        Json::Obj(vec![
            ("adapter", Json::Str(info.name.clone())),
            ("backend", Json::Str(format!("{:?}", info.backend))),
            ("kernel", Json::Str(r.case.kernel().into())),
            ("shape", Json::Str(r.case.shape_name())),
            ("dtype", Json::Str("f32".into())),
            (
                "subgroup_size",
                ctx.subgroup_size()
                    .map_or(Json::Null, |size| Json::Num(f64::from(size))),
            ),
            ("bytes", Json::Num(r.case.bytes() as f64)),
            ("median_s", Json::Num(r.median_s)),
            ("gbps", Json::Num(r.gbps())),
            ("ceiling_gbps", Json::Num(ceiling_gbps)),
            ("ratio", Json::Num(r.gbps() / ceiling_gbps)),
            ("gflops", r.gflops().map_or(Json::Null, Json::Num)),
            ("owned_bytes", Json::Num(r.owned_bytes as f64)),
        ])
    };
    if let Some(path) = &args.json {
        json::write_file(path, &Json::Arr(records.iter().map(record_json).collect()))?;
    }
    if let Some(path) = &args.plot {
        let bars: Vec<Bar> = records
            .iter()
            .map(|r| Bar {
                name: r.case.name(),
                ms: r.median_s * 1e3,
                gbps: r.gbps(),
                ratio: r.gbps() / ceiling_gbps,
                gflops: r.gflops(),
            })
            .collect();
        let title = [
            format!("xent bench: {} ({:?})", info.name, info.backend),
            format!(
                "preset {preset}, {}, read ceiling {ceiling_gbps:.2} GB/s (best in-run sample)",
                today()
            ),
        ];
        crate::files::write_all(&[(path, svg_chart(&title, &bars).into_bytes())])?;
    }
    Ok(())
}

/// Today's date (UTC) as `YYYY-MM-DD`, from the system clock.
fn today() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (y, m, d) = civil_date(secs / 86_400);
    format!("{y:04}-{m:02}-{d:02}")
}

/// The proleptic Gregorian (year, month, day) of a day counted from 1970-01-01, by eras of
/// 400 years (146097 days) that start on 1 March, so a leap day ends its year.
fn civil_date(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468; // days from 0000-03-01
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = era * 400 + yoe + u64::from(month <= 2);
    (year, month, day)
}

impl Record {
    /// GB/s of minimal traffic at the median time.
    fn gbps(&self) -> f64 {
        self.case.bytes() as f64 / self.median_s / 1e9
    }

    /// GFLOP/s of linear cross-entropy's products at the median time.
    fn gflops(&self) -> Option<f64> {
        self.case.flops().map(|f| f / self.median_s / 1e9)
    }
}

/// One kernel in the chart.
struct Bar {
    name: String,
    ms: f64,
    gbps: f64,
    ratio: f64,
    /// GFLOP/s of a compute-bound kernel (the fused linear loss's products), plotted apart.
    gflops: Option<f64>,
}

/// Width of a label of `text` in the chart's 13-pixel sans-serif, with room to spare.
fn label_width(text: &str) -> f64 {
    7.5 * text.chars().count() as f64 + 16.0
}

/// A round step for an axis up to `max`: 1, 2 or 5 times a power of ten, about 5 steps.
fn axis_step(max: f64) -> f64 {
    let raw = (max / 5.0).max(f64::MIN_POSITIVE);
    let power = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * power)
        .find(|&step| step >= raw)
        .unwrap_or(10.0 * power)
}

/// Text as SVG holds it.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// One panel of the chart: a bar per `(name, value, text)` on an axis from 0 to `max` with
/// ticks every `step`, named `axis`, from `top`, labels `label_w` wide; a dashed line at
/// `mark` when given. Returns the SVG and the height it takes.
fn svg_panel(
    rows: &[(String, f64, String)],
    (max, step, mark): (f64, f64, Option<f64>),
    (label_w, top): (f64, f64),
    axis: &str,
) -> (String, f64) {
    let (bar_w, row_h) = (420.0, 26.0);
    let x = |v: f64| label_w + bar_w * v.max(0.0) / max;
    let axis_y = top + row_h * rows.len() as f64 + 4.0;
    let mut svg = String::new();
    let ticks = (max / step + 1e-9).floor() as usize;
    for t in 0..=ticks {
        let v = t as f64 * step;
        let text = if step < 1.0 {
            format!("{v:.1}")
        } else {
            format!("{v:.0}")
        };
        svg.push_str(&format!(
            "<line x1=\"{0:.1}\" y1=\"{top}\" x2=\"{0:.1}\" y2=\"{axis_y}\" stroke=\"#ddd\"/>\n\
             <text x=\"{0:.1}\" y=\"{1}\" text-anchor=\"middle\" fill=\"#444\">{text}</text>\n",
            x(v),
            axis_y + 16.0
        ));
    }
    for (i, (name, value, text)) in rows.iter().enumerate() {
        let y = top + row_h * i as f64;
        svg.push_str(&format!(
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\n\
             <rect x=\"{label_w}\" y=\"{}\" width=\"{:.1}\" height=\"{}\" fill=\"#3b7dd8\"/>\n\
             <text x=\"{:.1}\" y=\"{}\">{}</text>\n",
            label_w - 8.0,
            y + 17.0,
            escape(name),
            y + 4.0,
            x(*value) - label_w,
            row_h - 8.0,
            x(*value) + 6.0,
            y + 17.0,
            escape(text)
        ));
    }
    svg.push_str(&format!(
        "<line x1=\"{label_w}\" y1=\"{axis_y}\" x2=\"{}\" y2=\"{axis_y}\" stroke=\"#444\"/>\n\
         <text x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"#444\">{}</text>\n",
        label_w + bar_w,
        label_w + bar_w / 2.0,
        axis_y + 36.0,
        escape(axis)
    ));
    if let Some(mark) = mark {
        svg.push_str(&format!(
            "<line x1=\"{0:.1}\" y1=\"{1}\" x2=\"{0:.1}\" y2=\"{axis_y}\" stroke=\"#c33\" stroke-dasharray=\"4 3\"/>\n",
            x(mark),
            top - 6.0
        ));
    }
    (svg, axis_y + 44.0 - top)
}

/// The chart: memory-bound kernels as ratios to the read ceiling (0 to max(1, largest), ticks
/// every 0.2, the ceiling dashed), each labelled with its median time, GB/s and ratio; then,
/// apart, compute-bound kernels (the fused linear loss) as GFLOP/s, which a read ceiling does
/// not judge. Labels get the width the longest name needs.
fn svg_chart(title: &[String; 2], bars: &[Bar]) -> String {
    let label_w = bars
        .iter()
        .map(|b| label_width(&b.name))
        .fold(150.0, f64::max);
    let (memory, compute): (Vec<&Bar>, Vec<&Bar>) = bars.iter().partition(|b| b.gflops.is_none());
    let mut body = String::new();
    let mut y = 70.0;
    if !memory.is_empty() {
        let rows: Vec<_> = memory
            .iter()
            .map(|b| {
                let text = format!("{:.3} ms, {:.2} GB/s ({:.2})", b.ms, b.gbps, b.ratio);
                (b.name.clone(), b.ratio, text)
            })
            .collect();
        let max = memory.iter().map(|b| b.ratio).fold(1.0f64, f64::max);
        let axis = "ratio to the read ceiling (1 = the ceiling, dashed)";
        let (svg, h) = svg_panel(&rows, (max, 0.2, Some(1.0)), (label_w, y), axis);
        body.push_str(&svg);
        y += h + 20.0;
    }
    if !compute.is_empty() {
        let rows: Vec<_> = compute
            .iter()
            .map(|b| {
                let g = b.gflops.unwrap_or(0.0);
                (b.name.clone(), g, format!("{:.3} ms, {g:.2} GFLOP/s", b.ms))
            })
            .collect();
        let top = compute
            .iter()
            .filter_map(|b| b.gflops)
            .fold(f64::MIN_POSITIVE, f64::max);
        let step = axis_step(top);
        let max = (top / step).ceil() * step;
        let axis = "GFLOP/s of the matrix products (compute-bound: no read ceiling applies)";
        let (svg, h) = svg_panel(&rows, (max, step, None), (label_w, y), axis);
        body.push_str(&svg);
        y += h;
    }
    let width = label_w + 420.0 + 230.0;
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{y}\" font-family=\"sans-serif\" font-size=\"13\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"10\" y=\"24\" font-size=\"15\">{}</text>\n\
         <text x=\"10\" y=\"44\" fill=\"#444\">{}</text>\n{body}</svg>\n",
        escape(&title[0]),
        escape(&title[1])
    )
}

#[cfg(test)]
mod tests {
    use super::{civil_date, svg_chart, Bar};

    #[test]
    fn days_since_1970_are_dated() {
        assert_eq!(civil_date(0), (1970, 1, 1));
        assert_eq!(civil_date(11_016), (2000, 2, 29));
        assert_eq!(civil_date(19_723), (2024, 1, 1));
        assert_eq!(civil_date(20_453), (2025, 12, 31));
    }

    #[test]
    fn the_chart_shows_times_ticks_and_its_title() {
        let long = "linear_ce_composed_fwd_grad/64x64x8192";
        let bars = [
            Bar {
                name: "ce_fwd/16x1000".into(),
                ms: 12.5,
                gbps: 0.61,
                ratio: 0.7,
                gflops: None,
            },
            Bar {
                name: long.into(),
                ms: 47.4,
                gbps: 0.09,
                ratio: 0.009,
                gflops: Some(4.25),
            },
        ];
        let title = [
            "xent bench: llvmpipe (Vulkan)".into(),
            "preset quick, 2026-12-02".into(),
        ];
        let svg = svg_chart(&title, &bars);
        for text in [
            "12.500 ms, 0.61 GB/s (0.70)",
            "llvmpipe (Vulkan)",
            "preset quick, 2026-12-02",
            ">0.0</text>",
            ">1.0</text>",
            // The compute-bound kernel apart, by GFLOP/s on an axis of its own.
            "47.400 ms, 4.25 GFLOP/s",
            "GFLOP/s of the matrix products",
            ">5</text>",
        ] {
            assert!(svg.contains(text), "{text} missing from {svg}");
        }
        assert!(
            !svg.contains("(0.01)"),
            "the linear loss was plotted as a ratio: {svg}"
        );
        // Its label fits left of the bars: they start past its width.
        let label_w = super::label_width(long);
        assert!(svg.contains(&format!("<rect x=\"{label_w}\"")), "{svg}");
    }
}
