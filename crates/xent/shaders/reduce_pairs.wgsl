// Deterministic batch reduction of (loss, weight) pairs.
//
// Input: `len` pairs, flattened (loss_0, weight_0, loss_1, weight_1, ...). Each workgroup sums
// one block of WG * ITEMS consecutive pairs in a fixed order (common/elementwise.wgsl). With FINAL unset it writes
// its block's pair to out[2 g], out[2 g + 1]; the host repeats the pass until one block is left.
// With FINAL set (a single workgroup) it writes the loss to out[0]: the sum, or, when MEAN,
// the summed loss divided by the summed weight (0 / 0 = NaN for an empty or all-ignored batch,
// as PyTorch gives).

struct Params {
    len: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

override FINAL: bool = false;
override MEAN: bool = false;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> pairs: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) local: u32,
        @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let group = linear_group(wid, nwg);
    let start = group * WG * ITEMS + local;
    var loss = 0.0;
    var weight = 0.0;
    for (var k = 0u; k < ITEMS; k = k + 1u) {
        let i = start + k * WG;
        if (i < params.len) {
            loss = loss + pairs[2u * i];
            weight = weight + pairs[2u * i + 1u];
        }
    }
    let total = workgroup_sum2(local, vec2<f32>(loss, weight));
    let total_loss = total.x;
    if (local == 0u) {
        let total_weight = total.y;
        if (FINAL) {
            if (MEAN) {
                out[0] = total_loss / total_weight;
            } else {
                out[0] = total_loss;
            }
        } else {
            out[2u * group] = total_loss;
            out[2u * group + 1u] = total_weight;
        }
    }
}
