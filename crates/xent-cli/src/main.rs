//! `xent`: adapters, cross-vendor conformance, benchmarks, and evaluation of `.npy` files.

/// Prints a line on stdout (see [`write_stdout`]).
macro_rules! say {
    () => { $crate::write_stdout(format_args!(""), "\n") };
    ($($arg:tt)*) => { $crate::write_stdout(format_args!($($arg)*), "\n") };
}

/// Prints on stdout without ending the line (see [`write_stdout`]).
macro_rules! say_part {
    ($($arg:tt)*) => { $crate::write_stdout(format_args!($($arg)*), "") };
}

mod bench;
mod check;
mod eval;
mod files;
mod info;
mod json;
mod progress;

use clap::{Parser, Subcommand};
use xent::wgpu;

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
    if let Err(message) = files::remove_temporaries_on_interrupt() {
        eprintln!("xent: {message}");
        std::process::exit(1);
    }
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

/// Writes `text` and `end` on stdout. A reader that has gone away (`xent check | head`) ends
/// the command quietly with status 141, as a process stopped by SIGPIPE reports itself, instead
/// of a panic; any other failure to write is reported, with status 1. Outputs are written to
/// temporaries renamed into place, so stopping here leaves no half-written file.
pub fn write_stdout(text: std::fmt::Arguments, end: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let written = out
        .write_fmt(text)
        .and_then(|()| out.write_all(end.as_bytes()))
        .and_then(|()| out.flush());
    match written {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(141),
        Err(e) => {
            eprintln!("xent: writing to stdout: {e}");
            std::process::exit(1);
        }
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

/// The adapters a subcommand runs on: those `spec` picks (see [`select`]), every adapter with
/// `all`, or the default (`best_only`: the best adapter; otherwise every adapter). With
/// `best_only`, a backend picks its best adapter.
pub fn chosen_contexts(
    spec: Option<&str>,
    all: bool,
    best_only: bool,
) -> Result<Vec<xent::Context>, String> {
    let adapters = xent::adapters();
    if adapters.is_empty() {
        return Err(xent::Error::no_adapter().to_string());
    }
    let infos: Vec<wgpu::AdapterInfo> = adapters.iter().map(wgpu::Adapter::get_info).collect();
    let mut picked = match spec {
        Some(spec) => select(&infos, spec)?,
        None if all || !best_only => (0..adapters.len()).collect(),
        None => vec![0],
    };
    if best_only {
        picked.truncate(1);
    }
    picked
        .into_iter()
        .map(|i| xent::Context::from_adapter(adapters[i].clone()).map_err(|e| e.to_string()))
        .collect()
}

/// Backends `--adapter` accepts by name.
const BACKENDS: [(&str, wgpu::Backend); 5] = [
    ("vulkan", wgpu::Backend::Vulkan),
    ("metal", wgpu::Backend::Metal),
    ("dx12", wgpu::Backend::Dx12),
    ("gl", wgpu::Backend::Gl),
    ("webgpu", wgpu::Backend::BrowserWebGpu),
];

/// The indices (into `adapters`, best first, as `xent info` numbers them) that an `--adapter`
/// value picks: an index; a backend (`vulkan`, `metal`, `dx12`, `gl`, `webgpu`), picking every
/// adapter of it; or a case-insensitive part of one adapter's name. A name that fits several
/// adapters is an error listing them, as is a value that picks none.
pub fn select(adapters: &[wgpu::AdapterInfo], spec: &str) -> Result<Vec<usize>, String> {
    let listing = || {
        let all: Vec<String> = adapters
            .iter()
            .enumerate()
            .map(|(i, a)| format!("{i}: {} ({:?})", a.name, a.backend))
            .collect();
        all.join("; ")
    };
    let lower = spec.trim().to_lowercase();
    if let Ok(index) = lower.parse::<usize>() {
        return match index < adapters.len() {
            true => Ok(vec![index]),
            false => Err(format!(
                "there is no adapter {index}; adapters: {}",
                listing()
            )),
        };
    }
    if let Some(&(_, backend)) = BACKENDS.iter().find(|(name, _)| *name == lower) {
        let found: Vec<usize> = (0..adapters.len())
            .filter(|&i| adapters[i].backend == backend)
            .collect();
        if found.is_empty() {
            return Err(format!(
                "no adapter runs on {spec}; adapters: {}",
                listing()
            ));
        }
        return Ok(found);
    }
    let found: Vec<usize> = (0..adapters.len())
        .filter(|&i| adapters[i].name.to_lowercase().contains(&lower))
        .collect();
    match found.len() {
        1 => Ok(found),
        0 => Err(format!(
            "no adapter's name contains '{spec}' and it is no index or backend ({}); \
             adapters: {}",
            BACKENDS.map(|(name, _)| name).join(", "),
            listing()
        )),
        _ => Err(format!(
            "'{spec}' fits {} adapters; choose one by index or backend: {}",
            found.len(),
            listing()
        )),
    }
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

#[cfg(test)]
mod tests {
    use super::{select, wgpu};

    fn info(name: &str, backend: wgpu::Backend) -> wgpu::AdapterInfo {
        wgpu::AdapterInfo {
            name: name.into(),
            ..wgpu::AdapterInfo::new(wgpu::DeviceType::Cpu, backend)
        }
    }

    #[test]
    fn an_adapter_is_chosen_by_index_backend_or_a_unique_name() {
        let twins = [
            info("llvmpipe (LLVM 15)", wgpu::Backend::Vulkan),
            info("llvmpipe (LLVM 15)", wgpu::Backend::Gl),
            info("NVIDIA H100", wgpu::Backend::Vulkan),
        ];
        assert_eq!(select(&twins, "1"), Ok(vec![1]));
        assert_eq!(select(&twins, "gl"), Ok(vec![1]));
        assert_eq!(select(&twins, "Vulkan"), Ok(vec![0, 2]));
        assert_eq!(select(&twins, "h100"), Ok(vec![2]));
        let ambiguous = select(&twins, "llvmpipe").unwrap_err();
        assert!(
            ambiguous.contains("fits 2 adapters")
                && ambiguous.contains("0: llvmpipe (LLVM 15) (Vulkan)")
                && ambiguous.contains("1: llvmpipe (LLVM 15) (Gl)"),
            "{ambiguous}"
        );
        assert!(select(&twins, "3").unwrap_err().contains("no adapter 3"));
        assert!(select(&twins, "metal")
            .unwrap_err()
            .contains("no adapter runs on metal"));
        assert!(select(&twins, "radeon")
            .unwrap_err()
            .contains("no adapter's name"));
    }
}
