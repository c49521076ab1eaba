// Fused linear cross-entropy (src/kernels/linear.rs): folds one block of classes' row states
// into the running states of the rows, in class-block order (so the result repeats bit for
// bit). A state is (lse, t, W, b) as in shaders/cross_entropy.wgsl (SHARD 1) and src/shard.rs:
//   lse = logaddexp(lse_1, lse_2)   t = t_1 + t_2   W = W_1 + W_2
//   b = b_1 + W_1 (lse_1 - lse) + b_2 + W_2 (lse_2 - lse)
// where a state of lse -inf (only -inf logits) adds nothing to b. One thread per row: the
// block's state is states[block_first + row] (the row kernel's scratch), the running one
// merged[merged_first + row].

override WG: u32 = 256u;

struct Params {
    rows: u32,
    block_first: u32,
    merged_first: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> states: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> merged: array<vec4<f32>>;

const NEG_INF_BITS: u32 = 0xff800000u;

fn is_neg_inf(x: f32) -> bool {
    return bitcast<u32>(x) == NEG_INF_BITS;
}

// W (lse_k - lse) + b_k, or 0 for an empty state.
fn rebased(state: vec4<f32>, lse: f32) -> f32 {
    if (is_neg_inf(state.x)) {
        return 0.0;
    }
    return state.w + state.z * (state.x - lse);
}

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) local: u32,
        @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let row = linear_group(wid, nwg) * WG + local;
    if (row >= params.rows) {
        return;
    }
    let one = merged[params.merged_first + row];
    let two = states[params.block_first + row];
    let m = max(one.x, two.x);
    var lse = one.x + two.x;
    if (!is_neg_inf(m)) {
        lse = m + log_careful(exp_or_nan(one.x - m) + exp_or_nan(two.x - m));
    }
    let b = rebased(one, lse) + rebased(two, lse);
    merged[params.merged_first + row] = vec4<f32>(lse, one.y + two.y, one.z + two.z, b);
}
