//! Every shader parses and validates with naga, on any machine (no GPU needed).

#[test]
fn every_shader_parses_and_validates() {
    let sources = xent::tools::shader_sources();
    assert!(sources.len() >= 8 * 5, "the registry lists every kernel");
    for (file, source) in sources {
        let module = naga::front::wgsl::parse_str(&source)
            .unwrap_or_else(|e| panic!("{file} does not parse:\n{}", e.emit_to_string(&source)));
        naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            naga::valid::Capabilities::SHADER_FLOAT16 | naga::valid::Capabilities::SUBGROUP,
        )
        .subgroup_stages(naga::valid::ShaderStages::COMPUTE)
        .subgroup_operations(naga::valid::SubgroupOperationSet::all())
        .validate(&module)
        .unwrap_or_else(|e| panic!("{file} does not validate:\n{}", e.emit_to_string(&source)));
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
