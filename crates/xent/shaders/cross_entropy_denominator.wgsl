// The denominator of the mean of class-index cross-entropy: sum of w_{y_n} over rows whose
// target is not ignore_index. Each workgroup writes (its sum, 0) to pair pair_base + g of out;
// reduce_pairs.wgsl (sum) finishes it. A target outside [0, C) that is not ignore_index
// makes it NaN. Needed before the gradient pass, which divides by it.

override HAS_WEIGHT: bool = false;

@group(0) @binding(1) var<storage, read> labels: array<i32>;
@group(0) @binding(2) var<storage, read> weight: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) local: u32,
        @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let group = linear_group(wid, nwg);
    let start = group * WG * ITEMS + local;
    var acc = 0.0;
    for (var k = 0u; k < ITEMS; k = k + 1u) {
        let i = start + k * WG;
        if (i < params.rows) {
            let y = labels[params.t_first + i];
            if (!is_ignored(y)) {
                if (y < 0 || u32(y) >= params.classes) {
                    acc = acc + nan_f32();
                } else if (HAS_WEIGHT) {
                    acc = acc + weight[u32(y)];
                } else {
                    acc = acc + 1.0;
                }
            }
        }
    }
    let total = workgroup_sum(local, acc);
    if (local == 0u) {
        out[2u * (params.pair_base + group)] = total;
        out[2u * (params.pair_base + group) + 1u] = 0.0;
    }
}
