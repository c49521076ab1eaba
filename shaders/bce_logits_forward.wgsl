// Binary cross-entropy with logits x, forward, stable for any finite x:
//   l_i = w_i * ((1 - t_i) x_i - q_i * logsigmoid(x_i)),  q_i = 1 + (pos_weight_d - 1) t_i,
//   logsigmoid(x) = min(x, 0) - log1p(exp(-|x|)),  d = i mod last_dim.
// Computed in the algebraically equal form
//   l_i = w_i (h_i + q_i log1p(exp(-|x_i|))),  h_i = (1 - t_i) x_i if x_i >= 0 else -pos_weight_d t_i x_i,
// whose two terms are both >= 0 for t in [0, 1]: PyTorch's form cancels to zero in f32 when
// x << 0 and t = 0 (x - (x - tiny)), this one keeps the tiny loss.
// PER_ELEMENT_OUTPUT: write l_i to `out[i]`; otherwise this workgroup's
// (sum l_i, element count) pair to `out[2 g], out[2 g + 1]`.

struct Params {
    len: u32,
    last_dim: u32,
    _pad0: u32,
    _pad1: u32,
}

override HAS_WEIGHT: bool = false;
override HAS_POS_WEIGHT: bool = false;
override PER_ELEMENT_OUTPUT: bool = true;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> input: array<f32>;
@group(0) @binding(2) var<storage, read> target_: array<f32>;
@group(0) @binding(3) var<storage, read> weight: array<f32>;
@group(0) @binding(4) var<storage, read> pos_weight: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;


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
            let x = input[i];
            let t = target_[i];
            var pw = 1.0;
            if (HAS_POS_WEIGHT) {
                pw = pos_weight[i % params.last_dim];
            }
            let q = 1.0 + (pw - 1.0) * t;
            var h = (1.0 - t) * x;
            if (x < 0.0) {
                h = -pw * t * x;
            }
            var l = h + q * log1p_careful(exp(-abs(x)));
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
