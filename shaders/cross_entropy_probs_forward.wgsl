// Categorical cross-entropy with probability targets t (N, C), forward (the seed's formula (1)).
//
// Per row: l_n = -sum_c w_c t'_{n,c} logp_{n,c},  t' = (1 - e) t + e / C,
// accumulated as q * log(s) - b with q_c = w_c t'_c (see common/row_state.wgsl).
// PER_ROW_OUTPUT: write l_n to `out[n]`; otherwise this workgroup's (sum l_n, row count) pair,
// since the mean divides by N.

struct Params {
    rows: u32,
    classes: u32,
    _pad: u32,
    smoothing: f32,
}

override HAS_WEIGHT: bool = false;
override PER_ROW_OUTPUT: bool = true;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> targets: array<f32>;
@group(0) @binding(3) var<storage, read> weight: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

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
    let e = params.smoothing;
    let uniform_part = e / f32(classes);

    var st = state_empty();
    if (valid) {
        let base = row * classes;
        for (var c = lane; c < classes; c = c + ROW_THREADS) {
            var q = (1.0 - e) * targets[base + c] + uniform_part;
            if (HAS_WEIGHT) {
                q = weight[c] * q;
            }
            st = state_push(st, logits[base + c], q);
        }
    }
    st = row_reduce(local, st);

    var pair = vec2<f32>(0.0, 0.0);
    if (valid && lane == 0u) {
        let l = st.q * state_log_sum(st) - st.b;
        pair = vec2<f32>(l, 1.0);
        if (PER_ROW_OUTPUT) {
            out[row] = l;
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
