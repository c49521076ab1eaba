//! `xent`: adapters, cross-vendor conformance, benchmarks, and evaluation of `.npy` files.

mod bench;
mod check;
mod eval;
mod files;
mod info;
mod json;

use clap::{Parser, Subcommand};

/// Cross-entropy losses on any GPU: list adapters, check conformance against the float64
/// reference, benchmark against the in-run read ceiling, evaluate losses on .npy files.
#[derive(Parser)]
#[command(name = "xent", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Every adapter on the machine: name, backend, type, driver, and the limits and features
    /// that matter to xent.
    Info(info::Args),
    /// The conformance suite: every loss, option and gradient against the float64 reference,
    /// plus edge cases, on each chosen adapter. Exits non-zero on any failure.
    Check(check::Args),
    /// Benchmarks the loss kernels next to the adapter's read ceiling measured in the same run.
    Bench(bench::Args),
    /// Evaluates a loss (and its gradient) on .npy files.
    #[command(subcommand)]
    Eval(eval::Command),
}

fn main() {
    quiet_headless_vulkan_layer();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Info(args) => info::run(&args),
        Command::Check(args) => check::run(&args),
        Command::Bench(args) => bench::run(&args),
        Command::Eval(command) => eval::run(&command),
    };
    if let Err(message) = result {
        eprintln!("xent: {message}");
        std::process::exit(1);
    }
}

/// Keeps Mesa's Vulkan device-select layer from printing `error: XDG_RUNTIME_DIR is invalid`
/// lines on a machine without a display session, so a successful run prints only xent's own
/// output. The layer (loaded into every Vulkan program by the loader) only reorders GPUs for
/// a display server; without `XDG_RUNTIME_DIR` there is none, and `NODEVICE_SELECT=1` is its
/// own switch to stay out. A choice already made (`NODEVICE_SELECT` or `MESA_VK_DEVICE_SELECT`
/// set) is left alone. Runs first in `main`, before any thread exists.
fn quiet_headless_vulkan_layer() {
    let display_session =
        std::env::var_os("XDG_RUNTIME_DIR").is_some_and(|dir| std::path::Path::new(&dir).is_dir());
    let chosen = std::env::var_os("NODEVICE_SELECT").is_some()
        || std::env::var_os("MESA_VK_DEVICE_SELECT").is_some();
    if !display_session && !chosen {
        std::env::set_var("NODEVICE_SELECT", "1");
    }
}

/// The adapters a subcommand runs on: the one whose name contains `name`, every adapter with
/// `all`, or the default (`best_only`: the best adapter; otherwise every adapter).
pub fn chosen_contexts(
    name: Option<&str>,
    all: bool,
    best_only: bool,
) -> Result<Vec<xent::Context>, String> {
    let adapters = xent::adapters();
    if adapters.is_empty() {
        return Err(xent::Error::no_adapter().to_string());
    }
    let chosen: Vec<wgpu::Adapter> = match name {
        Some(name) => {
            let lower = name.to_lowercase();
            let found: Vec<_> = adapters
                .into_iter()
                .filter(|a| a.get_info().name.to_lowercase().contains(&lower))
                .collect();
            if found.is_empty() {
                let names: Vec<String> =
                    xent::adapters().iter().map(|a| a.get_info().name).collect();
                return Err(format!(
                    "no adapter's name contains '{name}'; adapters: {}",
                    names.join(", ")
                ));
            }
            found.into_iter().take(1).collect()
        }
        None if all || !best_only => adapters,
        None => adapters.into_iter().take(1).collect(),
    };
    chosen
        .into_iter()
        .map(|a| xent::Context::from_adapter(a).map_err(|e| e.to_string()))
        .collect()
}

/// `ctx` as `--no-subgroups` asks: unchanged, or merging rows through workgroup memory only.
pub fn subgroups_flag(ctx: xent::Context, no_subgroups: bool) -> xent::Context {
    if !no_subgroups {
        return ctx;
    }
    ctx.with_tuning(xent::Tuning {
        subgroups: false,
        ..ctx.tuning()
    })
}

/// How a context's row kernels merge the threads of a row, in words.
pub fn row_merge(ctx: &xent::Context) -> String {
    match ctx.subgroup_size() {
        Some(size) => format!("with subgroups of {size}"),
        None => "through workgroup memory".to_string(),
    }
}

/// `name (backend)` of a context's adapter.
pub fn adapter_label(ctx: &xent::Context) -> String {
    let info = ctx.adapter_info();
    format!("{} ({:?})", info.name, info.backend)
}
