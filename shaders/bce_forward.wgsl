// Binary cross-entropy on probabilities p (the seed's formula (2)), forward:
//   l_i = -w_i * (t_i * max(log p_i, -100) + (1 - t_i) * max(log(1 - p_i), -100)).
// PER_ELEMENT_OUTPUT: write l_i to `out[i]`; otherwise this workgroup's
// (sum l_i, element count) pair to `out[2 g], out[2 g + 1]`.

struct Params {
    len: u32,
    last_dim: u32,
    _pad0: u32,
    _pad1: u32,
}

override HAS_WEIGHT: bool = false;
override PER_ELEMENT_OUTPUT: bool = true;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> input: array<f32>;
@group(0) @binding(2) var<storage, read> target_: array<f32>;
@group(0) @binding(3) var<storage, read> weight: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

fn bce_element(p: f32, t: f32) -> f32 {
    let log_p = max(log_careful(p), -100.0);
    let log_1mp = max(log1p_careful(-p), -100.0);
    return -(t * log_p + (1.0 - t) * log_1mp);
}

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
            var l = bce_element(input[i], target_[i]);
            if (HAS_WEIGHT) {
                l = weight[i] * l;
            }
            if (PER_ELEMENT_OUTPUT) {
                out[i] = l;
            } else {
                acc = acc + l;
            }
        }
    }
    if (!PER_ELEMENT_OUTPUT) {
        let total = workgroup_sum(local, acc);
        let n = min(WG * ITEMS, params.len - min(params.len, group * WG * ITEMS));
        if (local == 0u) {
            out[2u * group] = total;
            out[2u * group + 1u] = f32(n);
        }
    }
}
