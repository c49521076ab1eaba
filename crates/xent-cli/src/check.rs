//! `xent check`: the conformance suite on each chosen adapter, as a case x adapter table.

use crate::json::{self, Json};
use crate::progress::Progress;
use xent_conformance::{self as conformance, CaseReport};

/// Arguments of `xent check`.
#[derive(clap::Args)]
pub struct Args {
    /// Only these adapters: an index from `xent info`, a backend (vulkan, metal, dx12, gl,
    /// webgpu), or part of one adapter's name (case-insensitive).
    #[arg(long, conflicts_with = "all")]
    adapter: Option<String>,
    /// Every adapter (the default).
    #[arg(long)]
    all: bool,
    /// Also write the full report as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<String>,
    /// Merge rows through workgroup memory only, even where an adapter has subgroups (to
    /// compare the two; both should give the same bits).
    #[arg(long)]
    no_subgroups: bool,
}

fn cell(r: &CaseReport) -> String {
    if r.passed {
        format!("pass {:.1e}", r.loss_error.max(r.grad_error))
    } else {
        "FAIL".to_string()
    }
}

/// Runs `xent check`.
pub fn run(args: &Args) -> Result<(), String> {
    let report: Vec<&str> = args.json.iter().map(String::as_str).collect();
    crate::files::check_outputs(&[], &report)?;
    let contexts: Vec<_> = crate::chosen_contexts(args.adapter.as_deref(), args.all, false)?
        .into_iter()
        .map(|ctx| crate::subgroups_flag(ctx, args.no_subgroups))
        .collect();
    for ctx in &contexts {
        say!(
            "{}: rows merged {}",
            crate::adapter_label(ctx),
            crate::row_merge(ctx)
        );
    }
    say!();
    let mut columns = Vec::new();
    let total = contexts.len() * conformance::case_names().len();
    let progress = Progress::new(total);
    for (a, ctx) in contexts.iter().enumerate() {
        let label = crate::adapter_label(ctx);
        let reports = conformance::run(ctx, &mut |index, cases, case, report| {
            let step = a * cases + index;
            let what = format!("{label}: {case}");
            match report {
                None => progress.start(step, &what),
                Some(report) => progress.finish(step, &what, &cell(report)),
            }
        });
        columns.push((label, reports));
    }
    progress.done();
    let names = conformance::case_names();
    let width = names.iter().map(|n| n.len()).max().unwrap_or(4).max(4);
    let col = columns
        .iter()
        .map(|(l, _)| l.len())
        .max()
        .unwrap_or(0)
        .max(12);
    say_part!("{:<width$}", "case");
    for (label, _) in &columns {
        say_part!("  {label:<col$}");
    }
    say!();
    for (i, name) in names.iter().enumerate() {
        say_part!("{name:<width$}");
        for (_, reports) in &columns {
            say_part!("  {:<col$}", cell(&reports[i]));
        }
        say!();
    }
    let failures: Vec<String> = columns
        .iter()
        .flat_map(|(label, reports)| {
            reports.iter().filter(|r| !r.passed).map(move |r| {
                format!(
                    "{label}: {}: {}",
                    r.case,
                    r.detail.clone().unwrap_or_default()
                )
            })
        })
        .collect();
    say!(
        "\ntolerance: loss |gpu - ref| <= {:e} |ref| + {:e}; gradient |gpu - ref| <= {:e} max |ref|",
        conformance::RTOL,
        conformance::ATOL,
        conformance::GRAD_TOL
    );
    say!("the number after pass is the worst relative error of loss and gradient");
    if let Some(path) = &args.json {
        let report = Json::Arr(
            columns
                .iter()
                .zip(&contexts)
                .map(|((label, reports), ctx)| {
                    Json::Obj(vec![
                        ("adapter", Json::Str(label.clone())),
                        (
                            "subgroup_size",
                            ctx.subgroup_size()
                                .map_or(Json::Null, |size| Json::Num(f64::from(size))),
                        ),
                        (
                            "cases",
                            Json::Arr(
                                reports
                                    .iter()
                                    .map(|r| {
                                        Json::Obj(vec![
                                            ("case", Json::Str(r.case.clone())),
                                            ("passed", Json::Bool(r.passed)),
                                            ("loss_error", Json::Num(r.loss_error)),
                                            ("grad_error", Json::Num(r.grad_error)),
                                            (
                                                "detail",
                                                r.detail.clone().map_or(Json::Null, Json::Str),
                                            ),
                                        ])
                                    })
                                    .collect(),
                            ),
                        ),
                    ])
                })
                .collect(),
        );
        json::write_file(path, &report)?;
    }
    if failures.is_empty() {
        say!(
            "all {} cases pass on {} adapter(s)",
            names.len(),
            columns.len()
        );
        Ok(())
    } else {
        for f in &failures {
            say!("FAIL {f}");
        }
        Err(format!("{} case(s) failed", failures.len()))
    }
}
