//! Every shader parses and validates with naga, and declares exactly the bindings of xent's
//! binding table for it, on any machine (no GPU needed).

use xent::tools::{BindingKind, ShaderVariant};

/// The module of a variant, parsed and validated.
fn module(variant: &ShaderVariant) -> naga::Module {
    let (file, source) = (&variant.name, &variant.source);
    let module = naga::front::wgsl::parse_str(source)
        .unwrap_or_else(|e| panic!("{file} does not parse:\n{}", e.emit_to_string(source)));
    naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::SHADER_FLOAT16 | naga::valid::Capabilities::SUBGROUP,
    )
    .subgroup_stages(naga::valid::ShaderStages::COMPUTE)
    .subgroup_operations(naga::valid::SubgroupOperationSet::all())
    .validate(&module)
    .unwrap_or_else(|e| panic!("{file} does not validate:\n{}", e.emit_to_string(source)));
    module
}

#[test]
fn every_shader_parses_and_validates() {
    let sources = xent::tools::shader_sources();
    assert!(sources.len() >= 8 * 5, "the registry lists every kernel");
    for variant in &sources {
        let file = &variant.name;
        let module = module(variant);
        assert!(
            module.entry_points.iter().any(|ep| ep.name == "main"),
            "{file} has a `main` entry point"
        );
        // WebGPU's default max_storage_buffers_per_shader_stage: a device a caller created with
        // default limits (browsers included) takes every kernel.
        let storage = module
            .global_variables
            .iter()
            .filter(|(_, v)| matches!(v.space, naga::AddressSpace::Storage { .. }))
            .count();
        assert!(storage <= 8, "{file} binds {storage} storage buffers");
    }
}

/// The bindings a module declares, as (binding, name, kind), in binding order.
fn declared(file: &str, module: &naga::Module) -> Vec<(u32, String, BindingKind)> {
    let mut out: Vec<(u32, String, BindingKind)> = module
        .global_variables
        .iter()
        .filter_map(|(_, v)| {
            let binding = v.binding.as_ref()?;
            assert_eq!(binding.group, 0, "{file}: {:?} is not in group 0", v.name);
            let kind = match v.space {
                naga::AddressSpace::Uniform => BindingKind::Uniform,
                naga::AddressSpace::Storage { access }
                    if access.contains(naga::StorageAccess::STORE) =>
                {
                    BindingKind::ReadWriteStorage
                }
                naga::AddressSpace::Storage { .. } => BindingKind::ReadOnlyStorage,
                other => panic!("{file}: {:?} is bound in {other:?}", v.name),
            };
            Some((binding.binding, v.name.clone().unwrap_or_default(), kind))
        })
        .collect();
    out.sort_by_key(|(binding, _, _)| *binding);
    out
}

#[test]
fn every_shader_declares_its_binding_table() {
    for variant in xent::tools::shader_sources() {
        let module = module(&variant);
        let found = declared(&variant.name, &module);
        let want: Vec<(u32, String, BindingKind)> = variant
            .bindings
            .iter()
            .enumerate()
            .map(|(i, (name, kind))| (i as u32, name.to_string(), *kind))
            .collect();
        assert_eq!(
            found, want,
            "{}: the shader's bindings (left) differ from xent's table (right)",
            variant.name
        );
    }
}

#[test]
fn inputs_are_bound_read_only_unless_written_in_place() {
    for variant in xent::tools::shader_sources() {
        let Some((_, kind)) = variant.bindings.iter().find(|(name, _)| *name == "x_data") else {
            continue;
        };
        let in_place = variant.name.contains("in place");
        let want = if in_place {
            BindingKind::ReadWriteStorage
        } else {
            BindingKind::ReadOnlyStorage
        };
        assert_eq!(*kind, want, "{}", variant.name);
    }
}

/// The members of the WGSL struct `Params` of `module`: (name, byte offset, scalar type), and
/// the struct's size.
fn wgsl_params(file: &str, module: &naga::Module) -> (Vec<(String, u32, String)>, u32) {
    let (_, ty) = module
        .types
        .iter()
        .find(|(_, t)| t.name.as_deref() == Some("Params"))
        .unwrap_or_else(|| panic!("{file} declares no Params struct"));
    let naga::TypeInner::Struct { members, span } = &ty.inner else {
        panic!("{file}: Params is not a struct");
    };
    let fields = members
        .iter()
        .map(|m| {
            let name = m.name.clone().unwrap_or_default();
            let scalar = match &module.types[m.ty].inner {
                naga::TypeInner::Scalar(s) => match (s.kind, s.width) {
                    (naga::ScalarKind::Uint, 4) => "u32",
                    (naga::ScalarKind::Sint, 4) => "i32",
                    (naga::ScalarKind::Float, 4) => "f32",
                    other => panic!("{file}: Params.{name} is {other:?}"),
                },
                other => panic!("{file}: Params.{name} is not a scalar ({other:?})"),
            };
            (name, m.offset, scalar.to_string())
        })
        .collect();
    (fields, *span)
}

#[test]
fn every_rust_params_struct_matches_its_wgsl_layout() {
    let layouts = xent::tools::param_layouts();
    let mut mirrored = std::collections::BTreeSet::new();
    for variant in xent::tools::shader_sources() {
        let module = module(&variant);
        let file = variant.name.split(' ').next().unwrap_or_default();
        // Every kernel with a Params uniform has a Rust mirror.
        if !module
            .types
            .iter()
            .any(|(_, t)| t.name.as_deref() == Some("Params"))
        {
            continue;
        }
        let layout = layouts
            .iter()
            .find(|l| l.files.contains(&file))
            .unwrap_or_else(|| panic!("{file}: its Params has no Rust mirror in param_layouts"));
        mirrored.insert(file.to_string());
        let (wgsl, span) = wgsl_params(&variant.name, &module);
        let named = |fields: Vec<(String, u32, String)>| -> Vec<(String, u32, String)> {
            fields
                .into_iter()
                .filter(|(n, _, _)| !n.starts_with('_'))
                .collect()
        };
        let rust: Vec<(String, u32, String)> = layout
            .fields
            .iter()
            .map(|&(name, offset, ty)| (name.to_string(), offset as u32, ty.to_string()))
            .collect();
        assert_eq!(
            named(rust),
            named(wgsl),
            "{}: Rust and WGSL Params differ (name, offset, type)",
            variant.name
        );
        assert_eq!(
            layout.size as u32, span,
            "{}: Params sizes differ",
            variant.name
        );
    }
    for layout in &layouts {
        for file in layout.files {
            assert!(
                mirrored.contains(*file),
                "{file} is listed but has no Params"
            );
        }
    }
}
