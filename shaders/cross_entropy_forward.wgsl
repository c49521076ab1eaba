// Categorical cross-entropy with class-index targets, forward.
//
// One row per ROW_THREADS threads. Per row n with target y (not ignored):
//   l_n = (1 - e) * w_y * (lse_n - x_{n,y}) + (e / C) * (-sum_c w_c logp_{n,c})
// with the smoothing term only when USE_Q (e > 0). Ignored rows give l_n = 0 and weight 0.
// PER_ROW_OUTPUT: write l_n to `out[n]`; otherwise write this workgroup's
// (sum l_n, sum w_{y_n}) pair to `out[2 g], out[2 g + 1]` for the batch reduction.

struct Params {
    rows: u32,
    classes: u32,
    ignore_index: i32,
    smoothing: f32,
}

override HAS_WEIGHT: bool = false;
override PER_ROW_OUTPUT: bool = true;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> labels: array<i32>;
@group(0) @binding(3) var<storage, read> weight: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

fn class_weight(c: u32) -> f32 {
    if (HAS_WEIGHT) {
        return weight[c];
    }
    return 1.0;
}

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) local: u32,
        @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let group = linear_group(wid, nwg);
    let rows_per_group = WG / ROW_THREADS;
    let row = group * rows_per_group + local / ROW_THREADS;
    let lane = local % ROW_THREADS;
    let classes = params.classes;
    let valid = row < params.rows;

    var st = state_empty();
    if (valid) {
        let base = row * classes;
        for (var c = lane; c < classes; c = c + ROW_THREADS) {
            var q = 0.0;
            if (USE_Q) {
                q = class_weight(c);
            }
            st = state_push(st, logits[base + c], q);
        }
    }
    st = row_reduce(local, st);

    var pair = vec2<f32>(0.0, 0.0);
    if (valid && lane == 0u) {
        let y = labels[row];
        if (y != params.ignore_index) {
            let yc = u32(y);
            let wy = class_weight(yc);
            let ls = state_log_sum(st);
            let nll = (st.m - logits[row * classes + yc]) + ls;
            var l = wy * nll;
            if (USE_Q) {
                let e = params.smoothing;
                l = (1.0 - e) * l + (e / f32(classes)) * (st.q * ls - st.b);
            }
            pair = vec2<f32>(l, wy);
        }
        if (PER_ROW_OUTPUT) {
            out[row] = pair.x;
        }
    }
    if (!PER_ROW_OUTPUT) {
        let total = workgroup_pair_sum(local, pair);
        if (local == 0u) {
            out[2u * group] = total.x;
            out[2u * group + 1u] = total.y;
        }
    }
}
