// Where each invocation of a 1-D workgroup lands in its subgroup. The row merge
// (common/row_state.wgsl) shuffles between the lanes of a row, so it needs lane == local index
// modulo the subgroup size and one subgroup size for the whole workgroup; the host runs this once
// per device and builds row kernels with subgroups only when every invocation agrees.
//
// out[2 i] = subgroup_invocation_id and out[2 i + 1] = subgroup_size of invocation i (of all
// `params.len` invocations, workgroup by workgroup).

struct Params {
    len: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> out: array<u32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>,
        @builtin(subgroup_invocation_id) lane: u32,
        @builtin(subgroup_size) size: u32) {
    let i = gid.x;
    if (i < params.len) {
        out[2u * i] = lane;
        out[2u * i + 1u] = size;
    }
}
