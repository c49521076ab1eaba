//! `xent info`: every adapter and what xent cares about in it.

use crate::json::Json;
use xent::wgpu;

/// Arguments of `xent info`.
#[derive(clap::Args)]
pub struct Args {
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// Adapter `index` (what `--adapter` takes; 0, the best, is what the commands use by default).
fn describe((index, adapter): (usize, &wgpu::Adapter)) -> Json {
    let info = adapter.get_info();
    let limits = adapter.limits();
    let features = adapter.features();
    Json::Obj(vec![
        ("index", Json::Num(index as f64)),
        ("default", Json::Bool(index == 0)),
        ("name", Json::Str(info.name.clone())),
        ("backend", Json::Str(format!("{:?}", info.backend))),
        ("device_type", Json::Str(format!("{:?}", info.device_type))),
        ("driver", Json::Str(info.driver.clone())),
        ("driver_info", Json::Str(info.driver_info.clone())),
        (
            "max_storage_buffer_binding_size",
            Json::Num(limits.max_storage_buffer_binding_size as f64),
        ),
        ("max_buffer_size", Json::Num(limits.max_buffer_size as f64)),
        (
            "min_storage_buffer_offset_alignment",
            Json::Num(f64::from(limits.min_storage_buffer_offset_alignment)),
        ),
        (
            "max_compute_workgroups_per_dimension",
            Json::Num(f64::from(limits.max_compute_workgroups_per_dimension)),
        ),
        (
            "max_compute_invocations_per_workgroup",
            Json::Num(f64::from(limits.max_compute_invocations_per_workgroup)),
        ),
        (
            "max_compute_workgroup_storage_size",
            Json::Num(f64::from(limits.max_compute_workgroup_storage_size)),
        ),
        (
            "max_storage_buffers_per_shader_stage",
            Json::Num(f64::from(limits.max_storage_buffers_per_shader_stage)),
        ),
        (
            "subgroup_min_size",
            Json::Num(f64::from(info.subgroup_min_size)),
        ),
        (
            "subgroup_max_size",
            Json::Num(f64::from(info.subgroup_max_size)),
        ),
        (
            "subgroups",
            Json::Bool(features.contains(wgpu::Features::SUBGROUP)),
        ),
        (
            "shader_f16",
            Json::Bool(features.contains(wgpu::Features::SHADER_F16)),
        ),
        (
            "timestamp_query",
            Json::Bool(features.contains(wgpu::Features::TIMESTAMP_QUERY)),
        ),
    ])
}

/// Runs `xent info`.
pub fn run(args: &Args) -> Result<(), String> {
    let adapters = xent::adapters();
    if adapters.is_empty() {
        return Err(xent::Error::no_adapter().to_string());
    }
    let described: Vec<Json> = adapters.iter().enumerate().map(describe).collect();
    if args.json {
        say_part!("{}", Json::Arr(described).render());
        return Ok(());
    }
    for (i, d) in described.iter().enumerate() {
        let Json::Obj(fields) = d else { continue };
        say!("adapter {i}{}", if i == 0 { " (default)" } else { "" });
        for (key, value) in fields.iter().skip(2) {
            let shown = match value {
                Json::Str(s) => s.clone(),
                Json::Num(n) => format!("{n}"),
                Json::Bool(b) => {
                    if *b {
                        "yes".into()
                    } else {
                        "no".into()
                    }
                }
                _ => String::new(),
            };
            say!("  {key:<40} {shown}");
        }
    }
    Ok(())
}
