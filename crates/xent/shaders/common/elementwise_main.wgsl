// The entry point of the elementwise loss kernels (BCE, BCE with logits, focal). Each kernel
// defines `element(i)`, element i of this dispatch's (loss, gradient before the upstream
// scale); this loop stores the losses (reduction none) or adds them into the workgroup's
// (sum, element count) pair at pair_base + g of `out`, and with GRAD stores the gradient
// scaled by upstream[i] (none), upstream[0] (sum) or upstream[0] / len (mean).

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) local: u32,
        @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let group = linear_group(wid, nwg);
    let start = group * WG * ITEMS + local;
    var acc = 0.0;
    for (var k = 0u; k < ITEMS; k = k + 1u) {
        let i = start + k * WG;
        if (i < params.len) {
            let lg = element(i);
            if (!REDUCED) {
                out[i] = lg.x;
            } else {
                acc = acc + lg.x;
            }
            if (GRAD) {
                store_grad(i, element_scale(i) * lg.y);
            }
        }
    }
    if (REDUCED) {
        let total = workgroup_sum(local, acc);
        if (local == 0u) {
            out[2u * (params.pair_base + group)] = total;
            out[2u * (params.pair_base + group) + 1u] = f32(block_len(group));
        }
    }
}
