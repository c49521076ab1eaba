//! `xent bench`: loss kernels next to the read ceiling measured in the same run.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use crate::json::{self, Json};
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
    /// Shapes: gpu, cpu-software or quick (default: cpu-software on a software adapter, gpu
    /// otherwise).
    #[arg(long)]
    preset: Option<String>,
    /// Also write one JSON record per kernel and shape to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<String>,
    /// Also draw the ratios to the read ceiling as an SVG chart.
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
}

/// Median seconds per run of `record`: samples of enough runs to last about 50 ms each.
fn measure(
    ctx: &Context,
    samples: usize,
    record: &dyn Fn(&mut wgpu::CommandEncoder),
) -> Result<f64, String> {
    let time = |iters| bench::time_gpu(ctx, iters, record).map_err(|e| e.to_string());
    let first = time(1)?; // also compiles and warms caches
    let per = time(bench::RECORDS_PER_SUBMIT)?.max(first / 4) / bench::RECORDS_PER_SUBMIT as u32;
    let iters = (Duration::from_millis(50).as_secs_f64() / per.as_secs_f64().max(1e-9))
        .ceil()
        .max(1.0) as u64;
    let mut times = Vec::with_capacity(samples);
    for _ in 0..samples.max(1) {
        times.push(time(iters)?.as_secs_f64() / iters as f64);
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

/// A progress bar on stderr (when it is a terminal).
fn progress(done: usize, total: usize, what: &str) {
    if !std::io::stderr().is_terminal() {
        return;
    }
    let width = 30;
    let filled = width * done / total.max(1);
    eprint!(
        "\r\x1b[2K[{}{}] {done}/{total} {what}",
        "#".repeat(filled),
        ".".repeat(width - filled)
    );
    let _ = std::io::stderr().flush();
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
    let ceiling =
        ReadCeiling::new(&ctx, if gpu { 1 << 30 } else { 128 << 20 }).map_err(|e| e.to_string())?;
    let total = cases.len() + 2;
    progress(0, total, "warming up");
    let warm = std::time::Instant::now();
    while warm.elapsed().as_secs_f64() < if gpu { 3.0 } else { 0.3 } {
        bench::time_gpu(&ctx, bench::RECORDS_PER_SUBMIT, &|e| ceiling.record(e))
            .map_err(|e| e.to_string())?;
    }
    progress(1, total, "read ceiling");
    let ceiling_s = measure(&ctx, args.samples, &|e| ceiling.record(e))?;
    let ceiling_gbps = ceiling.bytes() as f64 / ceiling_s / 1e9;
    let mut records = Vec::new();
    let mut skipped = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        progress(i + 2, total, &case.name());
        match case.prepare(&ctx) {
            Ok(prepared) => {
                let median_s = measure(&ctx, args.samples, &|e| prepared.record(e))?;
                records.push(Record {
                    case: *case,
                    median_s,
                });
            }
            Err(e) => skipped.push(format!("{}: {e}", case.name())),
        }
    }
    if std::io::stderr().is_terminal() {
        eprint!("\r\x1b[2K");
    }

    println!(
        "adapter: {} ({:?}), preset {preset}, rows merged {}",
        info.name,
        info.backend,
        crate::row_merge(&ctx)
    );
    println!(
        "read ceiling: {ceiling_gbps:.2} GB/s ({} MiB, median {:.3} ms)",
        ceiling.bytes() >> 20,
        ceiling_s * 1e3
    );
    println!(
        "{:<34} {:>11} {:>9} {:>7}",
        "kernel/shape", "median ms", "GB/s", "ratio"
    );
    for r in &records {
        let gbps = r.case.bytes() as f64 / r.median_s / 1e9;
        println!(
            "{:<34} {:>11.3} {:>9.2} {:>7.3}",
            r.case.name(),
            r.median_s * 1e3,
            gbps,
            gbps / ceiling_gbps
        );
    }
    for s in &skipped {
        println!("skipped {s}");
    }
    println!("GB/s counts the minimal traffic: logits (BCE: input and target) read once, plus the gradient written once for _grad");

    let record_json = |r: &Record| {
        let gbps = r.case.bytes() as f64 / r.median_s / 1e9;
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
            ("gbps", Json::Num(gbps)),
            ("ceiling_gbps", Json::Num(ceiling_gbps)),
            ("ratio", Json::Num(gbps / ceiling_gbps)),
        ])
    };
    if let Some(path) = &args.json {
        json::write_file(path, &Json::Arr(records.iter().map(record_json).collect()))?;
    }
    if let Some(path) = &args.plot {
        let bars: Vec<(String, f64)> = records
            .iter()
            .map(|r| {
                (
                    r.case.name(),
                    r.case.bytes() as f64 / r.median_s / 1e9 / ceiling_gbps,
                )
            })
            .collect();
        let title = format!(
            "{} ({:?}): ratio to the read ceiling ({ceiling_gbps:.1} GB/s)",
            info.name, info.backend
        );
        crate::files::write_all(&[(path, svg_chart(&title, &bars).into_bytes())])?;
    }
    Ok(())
}

/// A horizontal bar chart of ratios (0 to max(1, largest)), one bar per case.
fn svg_chart(title: &str, bars: &[(String, f64)]) -> String {
    let (label_w, bar_w, row_h, top) = (260.0, 420.0, 26.0, 50.0);
    let max = bars.iter().map(|b| b.1).fold(1.0f64, f64::max);
    let height = top + row_h * bars.len() as f64 + 40.0;
    let width = label_w + bar_w + 80.0;
    let escape = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"13\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"10\" y=\"24\" font-size=\"15\">{}</text>\n",
        escape(title)
    );
    for (i, (name, ratio)) in bars.iter().enumerate() {
        let y = top + row_h * i as f64;
        let w = bar_w * ratio.max(0.0) / max;
        svg.push_str(&format!(
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\n\
             <rect x=\"{label_w}\" y=\"{}\" width=\"{w:.1}\" height=\"{}\" fill=\"#3b7dd8\"/>\n\
             <text x=\"{}\" y=\"{}\">{ratio:.3}</text>\n",
            label_w - 8.0,
            y + 17.0,
            escape(name),
            y + 4.0,
            row_h - 8.0,
            label_w + w + 6.0,
            y + 17.0
        ));
    }
    let one = label_w + bar_w / max;
    svg.push_str(&format!(
        "<line x1=\"{one:.1}\" y1=\"{}\" x2=\"{one:.1}\" y2=\"{}\" stroke=\"#c33\" stroke-dasharray=\"4 3\"/>\n\
         <text x=\"{one:.1}\" y=\"{}\" fill=\"#c33\" text-anchor=\"middle\">ceiling = 1</text>\n</svg>\n",
        top - 6.0,
        height - 30.0,
        height - 14.0
    ));
    svg
}
