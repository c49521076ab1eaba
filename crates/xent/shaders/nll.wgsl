// Negative log-likelihood (torch.nn.functional.nll_loss) of log-probabilities x (N, C), or
// (N, C, d1, ..., dk) with a row per position (STRIDED, common/categorical_params.wgsl), and
// class indices y: forward, and with GRAD the gradient in the same pass.
//   l_n = -w_{y_n} x[n, y_n]  (0 where y_n is ignore_index),
//   dl_n/dx[n, c] = -w_{y_n} where c = y_n, and 0 elsewhere and for ignored rows.
// Reduction none: l_n goes to `out[n]`; otherwise this workgroup's (sum l_n, sum w_{y_n}) pair
// to pair pair_base + g of `out` (reduce_pairs.wgsl divides them for the mean). The gradient
// is scaled by upstream[n] (none), upstream[0] (sum) or upstream[0] / denominator[0] (mean,
// the summed weight of the non-ignored targets, from cross_entropy_denominator.wgsl).
// Without GRAD a thread's item is a row, and only x[n, y_n] is read; with GRAD it is an
// element of the (N, C) gradient, so each gradient element has one writer. The item at a
// row's target (class 0 for an ignored or out-of-range target) forms the row's loss. A target
// outside [0, C) that is not ignore_index makes its row's loss and gradient NaN and is
// recorded in `status` as cross_entropy.wgsl records it (label_status.wgsl completes it).

override HAS_WEIGHT: bool = false;

@group(0) @binding(2) var<storage, read> labels: array<i32>;
@group(0) @binding(3) var<storage, read> weight: array<f32>;
@group(0) @binding(4) var<storage, read> denominator: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;
@group(0) @binding(6) var<storage, read> upstream: array<f32>;
@group(0) @binding(8) var<storage, read_write> status: array<atomic<u32>>;

fn class_weight(y: u32) -> f32 {
    if (HAS_WEIGHT) {
        return weight[y];
    }
    return 1.0;
}

// The gradient scale of row n.
fn row_scale(n: u32) -> f32 {
    if (!REDUCED) {
        return upstream[n];
    }
    if (params.reduction == 2u) {
        return upstream[0];
    }
    return upstream[0] / denominator[0];
}

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) local: u32,
        @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let group = linear_group(wid, nwg);
    let start = group * WG * ITEMS + local;
    var items = params.rows;
    if (GRAD) {
        items = params.rows * params.classes;
    }
    var acc = vec2<f32>(0.0, 0.0);
    for (var k = 0u; k < ITEMS; k = k + 1u) {
        let i = start + k * WG;
        if (i < items) {
            var n = i;
            var c = 0u;
            if (GRAD) {
                // Element i of the packed gradient, of the input's shape: class c of row n.
                if (STRIDED) {
                    let p = i % params.positions;
                    c = (i / params.positions) % params.classes;
                    n = i / (params.classes * params.positions) * params.positions + p;
                } else {
                    n = i / params.classes;
                    c = i % params.classes;
                }
            }
            let y = labels[params.t_first + n];
            let ignored = is_ignored(y);
            let valid = !ignored && y >= 0 && u32(y) < params.classes;
            var owner = 0u;
            if (valid) {
                owner = u32(y);
            }
            if (!GRAD) {
                c = owner;
            }
            var g = 0.0;
            if (c == owner) {
                var l = 0.0;
                var w = 0.0;
                if (valid) {
                    w = class_weight(owner);
                    l = -w * load_x(class_at(row_logits(n), c));
                    g = -w * row_scale(n);
                } else if (!ignored) {
                    l = nan_f32();
                    atomicAdd(&status[0], 1u);
                    atomicMax(&status[1], 0xffffffffu - (params.row_base + n));
                }
                if (!REDUCED) {
                    out[n] = l;
                } else {
                    acc = acc + vec2<f32>(l, w);
                }
            }
            if (GRAD) {
                if (!valid && !ignored) {
                    g = nan_f32();
                }
                store_grad(i, g);
            }
        }
    }
    if (REDUCED) {
        let total = workgroup_sum2(local, acc);
        if (local == 0u) {
            out[2u * (params.pair_base + group)] = total.x;
            out[2u * (params.pair_base + group) + 1u] = total.y;
        }
    }
}
