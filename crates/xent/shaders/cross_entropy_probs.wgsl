// Categorical cross-entropy with probability targets t (N, C):
// forward, and with GRAD the gradient in the same pass.
//
// Per row: l_n = -sum_c w_c t'_{n,c} logp_{n,c},  t' = (1 - e) t + e / C,
// accumulated as q * log(s) - b with q_c = w_c t'_c (see common/row_state.wgsl).
// Reduction none: l_n goes to `out[n]`; otherwise this workgroup's (sum l_n, row count) pair,
// since the mean divides by N.
// Gradient: dx_{n,c} = s (p_c Q_n - q_c), Q_n = sum_c q_c, with
//   s = upstream[n] (none), upstream[0] (sum), upstream[0] / N (mean).
// With Z_LOSS, every row also has the z-loss: l_n += z lse_n^2 and dx_{n,c} += s 2 z lse_n p_c
// (common/z_loss.wgsl). With LSE, every row's lse_n is also an output (write_lse, ibid.).
// Rows that fit a thread's cache (row_cached) are read once; IN_PLACE writes the gradient over
// the logits (each thread overwrites only elements it has already read). Rows may be split
// (SPLIT, see common/row_state.wgsl). The entry point is common/categorical_main.wgsl.

override HAS_WEIGHT: bool = false;

@group(0) @binding(2) var<storage, read> targets: array<f32>;
@group(0) @binding(3) var<storage, read> weight: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
@group(0) @binding(5) var<storage, read> upstream: array<f32>;

// q_c = w_c ((1 - e) t_c + e / C), for target element i of class c.
fn coefficient(i: u32, c: u32) -> f32 {
    let e = params.smoothing;
    var q = (1.0 - e) * targets[i] + e / f32(params.classes);
    if (HAS_WEIGHT) {
        q = weight[c] * q;
    }
    return q;
}

// The first target of a row (row_state's hook).
fn row_q_base(row: u32) -> u32 {
    return row_first(params.t_first, params.t_stride, row);
}

// The row-state coefficient of class c of the row whose targets start at t_base
// (state_push_row's hook).
fn element_q(t_base: u32, c: u32) -> f32 {
    return coefficient(class_at(t_base, c), c);
}

// One row of the thread's (see thread_rows): its loss (or, reduced, its (loss, weight)
// pair, returned on the thread that forms it and 0 on the others) and its gradient. Every
// thread must call it.
fn row_pass(local: u32, span: RowSpan) -> vec2<f32> {
    let row = span.row;
    let lane = span.lane;
    let classes = params.classes;
    let valid = row < params.rows;
    let base = row_logits(row);
    let t_base = row_q_base(row);
    let grad_base = grad_row_base(row, classes, base);
    let cached = row_cached(classes);

    var cache_x: array<f32, CACHE>;
    var cache_q: array<f32, CACHE>;
    var st = state_empty();
    if (valid && !SPLIT) {
        if (cached) {
            for (var k = 0u; k < cache_slots(); k = k + 1u) {
                let c = lane + k * ROW_THREADS;
                if (c < classes) {
                    cache_x[k] = load_x(class_at(base, c));
                    cache_q[k] = coefficient(class_at(t_base, c), c);
                }
            }
            st = state_push_cached(st, cache_x, cache_q, lane, classes);
        } else {
            st = state_push_row(st, base, t_base, lane, classes);
        }
    }
    st = merged_row_state(local, row, st);
    let ls = state_log_sum(st);

    // The thread that forms the row's loss.
    let head = lane == 0u && span.segment == 0u;
    var pair = vec2<f32>(0.0, 0.0);
    if (valid && head) {
        pair = vec2<f32>(st.q * ls - st.b + z_loss_term(st.m + ls), 1.0);
    }
    if (!REDUCED && valid && head) {
        out[row] = pair.x;
    }
    if (valid && head) {
        write_lse(row, st.m + ls);
    }

    if (GRAD && valid) {
        var s = upstream[0];
        if (!REDUCED) {
            s = upstream[row];
        } else if (params.reduction == 1u) {
            s = s / f32(params.total_rows);
        }
        let zc = z_loss_coefficient(s, st.m + ls);
        if (cached) {
            for (var k = 0u; k < cache_slots(); k = k + 1u) {
                let c = lane + k * ROW_THREADS;
                if (c < classes) {
                    let p = exp_or_nan((cached_logit(cache_x[k]) - st.m) - ls);
                    write_grad(class_at(grad_base, c), capped_grad(cache_x[k], s * (p * st.q - cache_q[k]) + zc * p));
                }
            }
        } else {
            for (var c = span.lo + lane; c < span.hi; c = c + ROW_THREADS) {
                let x = load_x(class_at(base, c));
                let p = exp_or_nan((capped(x) - st.m) - ls);
                write_grad(class_at(grad_base, c), capped_grad(x, s * (p * st.q - coefficient(class_at(t_base, c), c)) + zc * p));
            }
        }
    }
    return pair;
}
