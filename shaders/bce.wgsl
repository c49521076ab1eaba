// Binary cross-entropy on probabilities p (the seed's formula (2)): forward, and with GRAD the
// gradient in the same pass.
//   l_i = -w_i (t_i max(log p_i, -100) + (1 - t_i) max(log(1 - p_i), -100))
//   dl_i/dp_i = w_i (p_i - t_i) / max((1 - p_i) p_i, 1e-12)      (PyTorch's clamp)
// Reduction none: l_i goes to `out[i]`; otherwise this workgroup's (sum l_i, element count)
// pair to pair pair_base + g of `out`. The gradient is scaled by upstream[i] (none),
// upstream[0] (sum) or upstream[0] / len (mean). A probability or target outside [0, 1] (or
// NaN) makes its element's loss and gradient NaN and is recorded in `status`
// (record_outside_unit).

@group(0) @binding(4) var<storage, read_write> out: array<f32>;
@group(0) @binding(5) var<storage, read> upstream: array<f32>;
@group(0) @binding(7) var<storage, read_write> status: array<atomic<u32>>;

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
            let p = load_x(params.x_first + i);
            let t = target_[params.t_first + i];
            var w = 1.0;
            if (HAS_WEIGHT) {
                w = weight[(params.weight_base + i) % params.weight_period];
            }
            let log_p = max(log_careful(p), -100.0);
            let log_1mp = max(log1p_careful(-p), -100.0);
            var l = -w * (t * log_p + (1.0 - t) * log_1mp);
            var g = w * (p - t) / max((1.0 - p) * p, 1e-12);
            let bad_t = !in_unit_interval(t);
            let bad_p = !in_unit_interval(p);
            if (bad_t || bad_p) {
                l = nan_f32();
                g = nan_f32();
                if (bad_t) {
                    record_outside_unit(0u, i);
                }
                if (bad_p) {
                    record_outside_unit(2u, i);
                }
            }
            if (!REDUCED) {
                out[i] = l;
            } else {
                acc = acc + l;
            }
            if (GRAD) {
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
