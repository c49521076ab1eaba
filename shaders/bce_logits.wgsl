// Binary cross-entropy with logits x: forward, and with GRAD the gradient in the same pass.
//   l_i = w_i ((1 - t_i) x_i - q_i logsigmoid(x_i)),  q_i = 1 + (pos_weight_d - 1) t_i,
//   logsigmoid(x) = min(x, 0) - log1p(exp(-|x|)),  d = i mod pos_period,
// computed in the algebraically equal form
//   l_i = w_i (h_i + q_i log1p(exp(-|x_i|))),  h_i = (1 - t_i) x_i if x_i >= 0 else -pos_weight_d t_i x_i,
// whose two terms are both >= 0 for t in [0, 1]: PyTorch's form cancels to zero in f32 when
// x << 0 and t = 0 (x - (x - tiny)), this one keeps the tiny loss. Stable for any finite x.
// An infinite x gives what PyTorch's form gives there (`infinite_logit_loss`).
//   dl_i/dx_i = w_i ((pos_weight_d t_i + 1 - t_i) sigmoid(x_i) - pos_weight_d t_i)
// Reduction none: l_i goes to `out[i]`; otherwise this workgroup's (sum l_i, element count)
// pair to pair pair_base + g of `out`. The gradient is scaled by upstream[i] (none),
// upstream[0] (sum) or upstream[0] / len (mean). A target outside [0, 1] (or NaN) makes its
// element's loss and gradient NaN and is recorded in `status` (record_outside_unit).

override HAS_POS_WEIGHT: bool = false;

@group(0) @binding(4) var<storage, read> pos_weight: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;
@group(0) @binding(6) var<storage, read> upstream: array<f32>;
@group(0) @binding(8) var<storage, read_write> status: array<atomic<u32>>;

// sigmoid(x) without overflow: exp of a non-positive argument only.
fn sigmoid(x: f32) -> f32 {
    let z = exp(-abs(x));
    if (x >= 0.0) {
        return 1.0 / (1.0 + z);
    }
    return z / (1.0 + z);
}

// PyTorch's w ((1 - t) x - q logsigmoid(x)) at x = +-inf: at -inf it is -inf + inf = NaN; at
// +inf logsigmoid is 0, leaving w (1 - t) inf (NaN where w (1 - t) = 0).
fn infinite_logit_loss(x: f32, t: f32, w: f32) -> f32 {
    let c = w * (1.0 - t);
    if (x < 0.0 || c == 0.0) {
        return nan_f32();
    }
    if (c < 0.0) {
        return -inf_f32();
    }
    return inf_f32();
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
            let x = load_x(params.x_first + i);
            let t = target_[params.t_first + i];
            var pw = 1.0;
            if (HAS_POS_WEIGHT) {
                pw = pos_weight[(params.pos_base + i) % params.pos_period];
            }
            var w = 1.0;
            if (HAS_WEIGHT) {
                w = weight[(params.weight_base + i) % params.weight_period];
            }
            let q = 1.0 + (pw - 1.0) * t;
            var h = (1.0 - t) * x;
            if (x < 0.0) {
                h = -pw * t * x;
            }
            var l = w * (h + q * log1p_careful(exp(-abs(x))));
            if (is_infinite(x)) {
                l = infinite_logit_loss(x, t, w);
            }
            let bad_t = !in_unit_interval(t);
            if (bad_t) {
                l = nan_f32();
                record_outside_unit(0u, i);
            }
            if (!REDUCED) {
                out[i] = l;
            } else {
                acc = acc + l;
            }
            if (GRAD) {
                let pt = pw * t;
                var g = w * ((pt + 1.0 - t) * sigmoid(x) - pt);
                if (bad_t) {
                    g = nan_f32();
                }
                store_grad(i, element_scale(i) * g);
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
