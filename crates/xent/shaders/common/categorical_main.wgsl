// The entry point of the categorical row kernels (cross_entropy, cross_entropy_probs): each
// thread runs the kernel's `row_pass` over its rows (thread_rows, common/row_state.wgsl)
// and, for a reduced loss, the workgroup sums the rows' (loss, weight) pairs in a fixed order
// into pair pair_base + group of the kernel's `out`, for the batch reduction.

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) local: u32,
        @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let group = linear_group(wid, nwg);
    let pairs = thread_rows(local, group);
    if (REDUCED) {
        let total = workgroup_pair_sum(local, pairs);
        if (local == 0u) {
            out[2u * (params.pair_base + group)] = total.x;
            out[2u * (params.pair_base + group) + 1u] = total.y;
        }
    }
}
