// Categorical cross-entropy with class-index targets: forward, and with GRAD the gradient in
// the same pass.
//
// One row per ROW_THREADS threads (row_pass, run by common/categorical_main.wgsl). Per row n
// with target y (not ignored):
//   l_n = (1 - e) w_y (lse_n - x_{n,y}) + (e / C) (-sum_c w_c logp_{n,c})
// with the smoothing term only when USE_Q (e > 0). Ignored rows give l_n = 0 and weight 0.
// Reduction none: l_n goes to `out[n]`; otherwise this workgroup's (sum l_n, sum w_{y_n}) pair
// goes to pair pair_base + g of `out` for the batch reduction.
//
// Gradient (GRAD), with p = softmax(x_n), W = sum_c w_c and s the scale of the row:
//   dx_{n,c} = s ((1 - e) w_y (p_c - [c == y]) + (e / C) (W p_c - w_c)),  0 for ignored rows,
//   s = upstream[n] (none), upstream[0] (sum), upstream[0] / scratch[0] (mean), where
//   scratch[0] = sum of w_y over non-ignored rows (cross_entropy_denominator.wgsl).
// With Z_LOSS, a non-ignored row also has the z-loss: l_n += z lse_n^2 and
// dx_{n,c} += s 2 z lse_n p_c (common/z_loss.wgsl). With LSE, every row's lse_n is also an
// output (write_lse, ibid.).
// Rows that fit a thread's cache (row_cached) are read once; longer rows are read twice.
// IN_PLACE writes the gradient over the logits (each thread overwrites only elements it has
// already read, and x_y is read before the row's first barrier). With split rows (SPLIT, see
// common/row_state.wgsl), the segment that holds y forms the row's loss, so x_y is read by
// the workgroup that alone writes over it.
//
// A vocabulary split across devices (SHARD): this dispatch holds classes [F, F + C) of a
// vocabulary of V = params.class_total (F = params.class_first); targets, class weights and the
// smoothing's 1 / V are the whole vocabulary's. Rows are not split; the row's head thread
// reads and writes a vec4 per row at vec4 params.lse_first / 4 + row of `scratch`:
//   SHARD 1 writes the shard's state (lse_k, t_k, W_k, b_k): its log-sum-exp, the target's
//     (softcapped) logit if the target is in the shard (else 0), its summed class weight and
//     b_k = sum_c w_c (x_c - lse_k), with USE_Q on;
//   SHARD 2 reads the states of every shard merged (lse, t, W, b; see src/shard.rs) and gives
//     the loss from them, l = (1 - e) w_y (lse - t) - (e / V) b + z lse^2, and the gradient of
//     the shard's classes with p_c = exp(x_c - lse).
override SHARD: u32 = 0u;

// Label status: a target outside [0, C) that is not ignore_index makes its row's loss and
// gradient NaN, and is recorded in `status` (cleared before the kernel runs): status[0] counts
// such rows, status[1] keeps 0xffffffff - (first such row of the batch) by an atomic max, so 0
// means none.
// label_status.wgsl then copies that row's target into status[2].

override HAS_WEIGHT: bool = false;

@group(0) @binding(2) var<storage, read> labels: array<i32>;
@group(0) @binding(3) var<storage, read> weight: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
@group(0) @binding(5) var<storage, read> upstream: array<f32>;
@group(0) @binding(7) var<storage, read_write> status: array<atomic<u32>>;

fn class_weight(c: u32) -> f32 {
    if (HAS_WEIGHT) {
        return weight[c];
    }
    return 1.0;
}

// The row-state coefficient of class c (state_push_row's hook).
fn element_q(q_base: u32, c: u32) -> f32 {
    return smoothing_coefficient(c);
}

// The first coefficient index of a row (row_state's hook): class coefficients need none.
fn row_q_base(row: u32) -> u32 {
    return 0u;
}

// The smoothing's weight of class c of this dispatch (of the shard, with SHARD).
fn smoothing_coefficient(c: u32) -> f32 {
    if (USE_Q) {
        return class_weight(params.class_first + c);
    }
    return 0.0;
}

// The gradient of one logit with softmax probability p (see the header). Ignored rows get
// exactly 0 and a bad label's row NaN (written as such: compilers may fold NaN * 0 to 0).
fn grad_value(p: f32, c: u32, y: u32, a: f32, b: f32, zc: f32, w_sum: f32, ignored: bool, bad_label: bool) -> f32 {
    if (bad_label) {
        return nan_f32();
    }
    if (ignored) {
        return 0.0;
    }
    var onehot = 0.0;
    if (c == y) {
        onehot = 1.0;
    }
    var g = a * (p - onehot);
    if (USE_Q) {
        g = g + b * (w_sum * p - smoothing_coefficient(c));
    }
    if (Z_LOSS) {
        g = g + zc * p;
    }
    return g;
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
    let grad_base = grad_row_base(row, classes, base);
    // A finishing shard reads its logits once, for the gradient: no cache.
    let cached = row_cached(classes) && SHARD != 2u;

    var y = params.ignore_index;
    if (valid) {
        y = labels[params.t_first + row];
    }
    let ignored = !valid || is_ignored(y);
    // A target outside [0, V) that is not ignore_index (possible only for targets that were
    // never on the host) makes the row's loss and gradient NaN rather than a plausible value.
    let bad_label = !ignored && (y < 0 || u32(y) >= params.class_total);
    // The target's class in this dispatch (the shard's), or none (0xffffffff) when it is
    // ignored, bad or in another shard.
    var yl = 0xffffffffu;
    if (!ignored && !bad_label && u32(y) - params.class_first < classes) {
        yl = u32(y) - params.class_first;
    }
    // The thread that forms the row's loss: lane 0 of the segment holding the target (of the
    // first segment for an ignored row or a bad label).
    var target_segment = 0u;
    if (SPLIT && !ignored && !bad_label) {
        target_segment = yl / params.segment_len;
    }
    let head = lane == 0u && span.segment == target_segment;
    // A cached row of one thread has x_y in that thread's cache, rather than loaded again
    // after the target it depends on (lavapipe, 1048576 x 10: forward 126 -> 115 ms).
    let y_in_cache = cached && ROW_THREADS == 1u;
    var x_y = 0.0;
    if (valid && yl < classes && head && !y_in_cache && SHARD != 2u) {
        x_y = load_logit(class_at(base, yl));
    }

    var cache: array<f32, CACHE>;
    var st = state_empty();
    if (valid && !SPLIT && SHARD != 2u) {
        if (cached) {
            var qs: array<f32, CACHE>;
            for (var k = 0u; k < cache_slots(); k = k + 1u) {
                let c = lane + k * ROW_THREADS;
                if (c < classes) {
                    cache[k] = load_x(class_at(base, c));
                    qs[k] = smoothing_coefficient(c);
                }
                if (y_in_cache && k == yl) {
                    x_y = cached_logit(cache[k]);
                }
            }
            st = state_push_cached(st, cache, qs, lane, classes);
        } else {
            st = state_push_row(st, base, 0u, lane, classes);
        }
    }
    st = merged_row_state(local, row, st);
    var ls = state_log_sum(st);
    let shard_at = params.lse_first / 4u + row;
    if (SHARD == 1u) {
        if (valid && head) {
            set_scratch_record(shard_at, vec4<f32>(st.m + ls, x_y, st.q, st.b - st.q * ls));
        }
        return vec2<f32>(0.0, 0.0);
    }
    if (SHARD == 2u && valid) {
        // The merged state as a row state whose max is lse and whose sum is 1.
        let merged = scratch_record(shard_at);
        st.m = merged.x;
        x_y = merged.y;
        st.q = merged.z;
        st.b = merged.w;
        ls = 0.0;
    }
    let e = params.smoothing;
    let e_over_c = e / f32(params.class_total);

    var pair = vec2<f32>(0.0, 0.0);
    if (valid && head && bad_label) {
        pair = vec2<f32>(nan_f32(), nan_f32());
        atomicAdd(&status[0], 1u);
        atomicMax(&status[1], 0xffffffffu - (params.row_base + row));
    } else if (valid && head && !ignored) {
        let wy = class_weight(u32(y));
        var l = wy * ((st.m - x_y) + ls);
        if (USE_Q) {
            l = (1.0 - e) * l + e_over_c * (st.q * ls - st.b);
        }
        l = l + z_loss_term(st.m + ls);
        pair = vec2<f32>(l, wy);
    }
    if (!REDUCED && valid && head) {
        out[row] = pair.x;
    }
    if (valid && head) {
        write_lse(row, st.m + ls);
    }

    if (GRAD && valid) {
        // dx_c = a (p_c - [c == y]) + b (W p_c - w_c),  a = s (1 - e) w_y,  b = s e / C:
        // each difference is formed before scaling, so it is exact where the gradient is
        // exactly zero (C = 1) and keeps its relative accuracy where p_c is near 1.
        var a = 0.0;
        var b = 0.0;
        var zc = 0.0;
        if (!ignored && !bad_label) {
            var s = upstream[0];
            if (!REDUCED) {
                s = upstream[row];
            } else if (params.reduction == 1u) {
                s = upstream[0] / scratch[0];
            }
            a = s * (1.0 - e) * class_weight(u32(y));
            b = s * e_over_c;
            zc = z_loss_coefficient(s, st.m + ls);
        }
        let yc = yl;
        if (cached) {
            for (var k = 0u; k < cache_slots(); k = k + 1u) {
                let c = lane + k * ROW_THREADS;
                if (c < classes) {
                    let p = exp_or_nan((cached_logit(cache[k]) - st.m) - ls);
                    let g = grad_value(p, c, yc, a, b, zc, st.q, ignored, bad_label);
                    write_grad(class_at(grad_base, c), capped_grad(cache[k], g));
                }
            }
        } else {
            for (var c = span.lo + lane; c < span.hi; c = c + ROW_THREADS) {
                let x = load_x(class_at(base, c));
                let p = exp_or_nan((capped(x) - st.m) - ls);
                let g = grad_value(p, c, yc, a, b, zc, st.q, ignored, bad_label);
                write_grad(class_at(grad_base, c), capped_grad(x, g));
            }
        }
    }
    return pair;
}
