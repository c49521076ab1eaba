// Log-softmax over the class dimension: out[n, c] = (x[n, c] - m_n) - log(s_n).
// With GRAD, also its backward for an upstream gradient g (N, C):
//   grad[n, c] = g[n, c] - exp(logp[n, c]) * sum_c g[n, c]
// (the row's sum of g is the state's q with q_c = g_c, so USE_Q is set with GRAD).
// Rows that fit a thread's cache (row_cached) are read once. Rows may be split (SPLIT, see
// common/row_state.wgsl).

struct Params {
    rows: u32,
    classes: u32,
    // Logits: element index of row 0 in the binding, and elements between rows. The output,
    // upstream gradient and gradient are packed (N, C).
    x_first: u32,
    x_stride: u32,
    // Split rows only: segments per row and logits per segment.
    segments: u32,
    segment_len: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<storage, read> upstream: array<f32>;

fn upstream_at(i: u32) -> f32 {
    if (GRAD) {
        return upstream[i];
    }
    return 0.0;
}

// The logits as the row state reads them, from memory and from a thread's cache (row_state's
// hooks): as they are.
fn load_logit(i: u32) -> f32 {
    return load_x(i);
}

fn cached_logit(v: f32) -> f32 {
    return v;
}

// Where a row's logits start, and class c of a row (row_state's hooks): rows of C
// consecutive values.
fn row_logits(row: u32) -> u32 {
    return params.x_first + row * params.x_stride;
}

fn class_at(base: u32, c: u32) -> u32 {
    return base + c;
}

// The first upstream value of a row (row_state's hook).
fn row_q_base(row: u32) -> u32 {
    return row * params.classes;
}

// The row-state coefficient of element c of the row whose upstream starts at g_base: the
// upstream gradient, whose row sum the backward needs (state_push_row's hook).
fn element_q(g_base: u32, c: u32) -> f32 {
    return upstream_at(g_base + c);
}

// One row of the thread's (see thread_rows); a log-softmax has no (loss, weight) pair to
// return. Every thread must call it.
fn row_pass(local: u32, span: RowSpan) -> vec2<f32> {
    let row = span.row;
    let lane = span.lane;
    let classes = params.classes;
    let valid = row < params.rows;
    let x_base = row_logits(row);
    let base = row_q_base(row);
    let cached = row_cached(classes);

    var cache_x: array<f32, CACHE>;
    var cache_g: array<f32, CACHE>;
    var st = state_empty();
    if (valid && !SPLIT) {
        if (cached) {
            for (var k = 0u; k < cache_slots(); k = k + 1u) {
                let c = lane + k * ROW_THREADS;
                if (c < classes) {
                    cache_x[k] = load_x(x_base + c);
                    cache_g[k] = upstream_at(base + c);
                }
            }
            st = state_push_cached(st, cache_x, cache_g, lane, classes);
        } else {
            st = state_push_row(st, x_base, base, lane, classes);
        }
    }
    st = merged_row_state(local, row, st);

    if (valid) {
        let ls = state_log_sum(st);
        if (cached) {
            for (var k = 0u; k < cache_slots(); k = k + 1u) {
                let c = lane + k * ROW_THREADS;
                if (c < classes) {
                    let logp = (cache_x[k] - st.m) - ls;
                    out[base + c] = logp;
                    if (GRAD) {
                        store_grad(base + c, cache_g[k] - exp_or_nan(logp) * st.q);
                    }
                }
            }
        } else {
            for (var c = span.lo + lane; c < span.hi; c = c + ROW_THREADS) {
                let logp = (load_x(x_base + c) - st.m) - ls;
                out[base + c] = logp;
                if (GRAD) {
                    store_grad(base + c, upstream_at(base + c) - exp_or_nan(logp) * st.q);
                }
            }
        }
    }
    return vec2<f32>(0.0, 0.0);
}

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) local: u32,
        @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    _ = thread_rows(local, linear_group(wid, nwg));
}
