// Log-softmax over the class dimension: out[n, c] = (x[n, c] - m_n) - log(s_n).

struct Params {
    rows: u32,
    classes: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) local: u32,
        @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let group = linear_group(wid, nwg);
    let row = group * (WG / ROW_THREADS) + local / ROW_THREADS;
    let lane = local % ROW_THREADS;
    let classes = params.classes;
    let valid = row < params.rows;
    let base = row * classes;

    var st = state_empty();
    if (valid) {
        for (var c = lane; c < classes; c = c + ROW_THREADS) {
            st = state_push(st, logits[base + c], 0.0);
        }
    }
    st = row_reduce(local, st);

    if (valid) {
        let ls = state_log_sum(st);
        for (var c = lane; c < classes; c = c + ROW_THREADS) {
            out[base + c] = (logits[base + c] - st.m) - ls;
        }
    }
}
