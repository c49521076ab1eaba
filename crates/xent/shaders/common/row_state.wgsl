// Online log-sum-exp state of (part of) one row, and the workgroup layout of row kernels.
//
// A workgroup of WG threads handles WG / ROW_THREADS rows; the ROW_THREADS threads of a row
// read it with a stride of ROW_THREADS, each keeping a RowState, and merge their states with a
// fixed-order tree in workgroup memory, so the result does not depend on timing.
//
// RowState holds
//   m: the largest value seen (starts at -F32_MAX so that -inf values add exactly 0),
//   s: sum of exp(x - m),
//   q: sum of per-element coefficients q_c (only when USE_Q),
//   b: sum of q_c * (x_c - m), kept relative to the running max (only when USE_Q).
// From these, -sum_c q_c * logp_c = q * log(s) - b with no cancellation against a large m.

override WG: u32 = 256u;
override ROW_THREADS: u32 = 32u;
override USE_Q: bool = false;
// Subgroup size the row merge may use (0: workgroup memory only). Set only for kernels built
// with one of the lanes files (common/lanes_*.wgsl) that provides real shuffles.
override SUBGROUP: u32 = 0u;
// Split rows: each row is cut into segments of one workgroup each (ROW_THREADS == WG), for
// batches of too few long rows to fill the adapter. Two dispatches of the same kernel file:
//   1. `segment_states`: workgroup g reduces segment g % segments of row g / segments to one
//      RowState in record SCRATCH_STATES + g of scratch, with the same per-thread blocks and
//      tree as a whole row;
//   2. `main`: the workgroups of a row merge its segments' states in segment order
//      (split_row_state), then each handles its own segment (gradient, log-softmax output);
//      one of them forms the row's loss. Needs `scratch` (declared by the host, last
//      binding of every row kernel), the kernel's `params` (rows, classes, segments,
//      segment_len), its `row_logits` and its `row_q_base`.
override SPLIT: bool = false;

// Where split rows' segment states start in `scratch`: record 0 holds the mean's denominator
// of class-index cross-entropy (cross_entropy.wgsl), which leaves that kernel within 8 storage
// bindings, WebGPU's default limit.
const SCRATCH_STATES: u32 = 1u;

const WG_MAX: u32 = 256u;

// Rows each thread handles one after another, where a row has a thread of its own
// (ROW_THREADS == 1; 1 otherwise): a workgroup covers WG * ROWS_PER_THREAD rows, in
// ROWS_PER_THREAD passes of WG consecutive rows, so its fixed costs (its launch, the barriers
// of its (loss, weight) sum) are shared by more rows. Each thread adds its rows' pairs in
// order before the workgroup's sum.
override ROWS_PER_THREAD: u32 = 1u;

// Runs the kernel's `row_pass(local, span)` over this thread's rows of workgroup `group`
// (ROWS_PER_THREAD passes) and returns the pairs it gives, added in row order. Every thread
// must call it. One row goes without a loop, which lavapipe compiles into slower code even
// for one pass (1048576 x 10 with gradient: 190 -> 264 ms).
fn thread_rows(local: u32, group: u32) -> vec2<f32> {
    var pairs = vec2<f32>(0.0, 0.0);
    if (ROWS_PER_THREAD == 1u) {
        pairs = row_pass(local, row_span(group, local, 0u));
    } else {
        for (var k = 0u; k < ROWS_PER_THREAD; k = k + 1u) {
            pairs = pairs + row_pass(local, row_span(group, local, k));
        }
    }
    return pairs;
}

// The logits of a row that ROW_THREADS threads handle in pass k (see ROWS_PER_THREAD):
// classes [lo, hi) of segment `segment` (0 unless SPLIT), read by `lane` with a stride of
// ROW_THREADS.
struct RowSpan {
    row: u32,
    lane: u32,
    lo: u32,
    hi: u32,
    segment: u32,
}

fn row_span(group: u32, local: u32, k: u32) -> RowSpan {
    let classes = params.classes;
    if (SPLIT) {
        let segment = group % params.segments;
        let lo = min(segment * params.segment_len, classes);
        let hi = min(lo + params.segment_len, classes);
        return RowSpan(group / params.segments, local, lo, hi, segment);
    }
    let lane = local % ROW_THREADS;
    let first = (group * ROWS_PER_THREAD + k) * (WG / ROW_THREADS);
    return RowSpan(first + local / ROW_THREADS, lane, 0u, classes, 0u);
}

struct RowState {
    m: f32,
    s: f32,
    q: f32,
    b: f32,
}

fn state_empty() -> RowState {
    return RowState(-F32_MAX, 0.0, 0.0, 0.0);
}

// q * (from - to): moves a b-sum from one reference max to another; empty sums stay 0.
fn rebase(q: f32, old_max: f32, new_max: f32) -> f32 {
    if (q == 0.0) {
        return 0.0;
    }
    return q * (old_max - new_max);
}

// The state moved to a new reference max m >= st.m (the sums rescaled once).
fn state_rescaled(st: RowState, m: f32) -> RowState {
    var r = st;
    r.m = m;
    r.s = st.s * exp_or_nan(st.m - m);
    if (USE_Q) {
        r.b = st.b + rebase(st.q, st.m, m);
    }
    return r;
}

// Adds a value x <= st.m with coefficient q.
fn state_add(st: RowState, x: f32, q: f32) -> RowState {
    var r = st;
    r.s = r.s + exp_or_nan(x - r.m);
    if (USE_Q) {
        r.b = r.b + q * (x - r.m);
        r.q = r.q + q;
    }
    return r;
}

// Values a thread reads per step of a long row: their max is found first, so the state is
// rescaled once per block rather than tested element by element, and the block's loads are
// independent of one another (more of them in flight).
const BLOCK: u32 = 8u;

// Pushes the values x[class_at(base, c)] (with coefficients element_q(q_base, c)) for
// c = first, first + ROW_THREADS, ... < end, a block at a time. Needs the kernel's `load_logit`
// (its logits as the loss sees them), `class_at` (where class c of a row is) and `element_q`.
fn state_push_row(start: RowState, base: u32, q_base: u32, first: u32, end: u32) -> RowState {
    var st = start;
    for (var c0 = first; c0 < end; c0 = c0 + BLOCK * ROW_THREADS) {
        var xs: array<f32, BLOCK>;
        var m = st.m;
        for (var j = 0u; j < BLOCK; j = j + 1u) {
            let c = c0 + j * ROW_THREADS;
            if (c < end) {
                xs[j] = load_logit(class_at(base, c));
                m = max(m, xs[j]);
            }
        }
        st = state_rescaled(st, m);
        for (var j = 0u; j < BLOCK; j = j + 1u) {
            let c = c0 + j * ROW_THREADS;
            if (c < end) {
                var q = 0.0;
                if (USE_Q) {
                    q = element_q(q_base, c);
                }
                st = state_add(st, xs[j], q);
            }
        }
    }
    return st;
}

// Pushes a thread's cached values xs[k] (class lane + k ROW_THREADS, while < classes) with
// coefficients qs[k], all at once: one max, one rescale.
fn state_push_cached(start: RowState, xs: array<f32, CACHE>, qs: array<f32, CACHE>, lane: u32, classes: u32) -> RowState {
    // The cache holds the values as loaded; the kernel's `cached_logit` gives what the loss
    // reads (a softcapped logit, say).
    var zs = xs;
    var m = start.m;
    for (var k = 0u; k < cache_slots(); k = k + 1u) {
        if (lane + k * ROW_THREADS < classes) {
            zs[k] = cached_logit(xs[k]);
            m = max(m, zs[k]);
        }
    }
    var st = state_rescaled(start, m);
    for (var k = 0u; k < cache_slots(); k = k + 1u) {
        if (lane + k * ROW_THREADS < classes) {
            st = state_add(st, zs[k], qs[k]);
        }
    }
    return st;
}

fn state_merge(a: RowState, c: RowState) -> RowState {
    var r: RowState;
    r.m = max(a.m, c.m);
    r.s = a.s * exp_or_nan(a.m - r.m) + c.s * exp_or_nan(c.m - r.m);
    r.q = 0.0;
    r.b = 0.0;
    if (USE_Q) {
        r.q = a.q + c.q;
        r.b = a.b + c.b + rebase(a.q, a.m, r.m) + rebase(c.q, c.m, r.m);
    }
    return r;
}

// log(s) of a finished state, NaN when the row's max is +inf (as exp(inf - inf) gives in
// PyTorch), -inf for a row of -inf values.
fn state_log_sum(st: RowState) -> f32 {
    var s = st.s;
    if (is_pos_inf(st.m)) {
        s = s * (st.m - st.m);
    }
    return log_careful(s);
}

var<workgroup> sm_m: array<f32, WG_MAX>;
var<workgroup> sm_s: array<f32, WG_MAX>;
var<workgroup> sm_q: array<f32, WG_MAX>;
var<workgroup> sm_b: array<f32, WG_MAX>;

// Merges the states of the ROW_THREADS threads of each row; every thread must call it.
// Returns the merged state of the calling thread's row.
//
// The merge is one fixed tree whichever way it runs: at stride s = ROW_THREADS / 2, ..., 1,
// lane l < s merges lane l + s into itself. Strides of at least `inner` go through workgroup
// memory (a barrier each); smaller ones, when the kernel was built with subgroups (SUBGROUP > 0,
// lanes verified to follow the local index), through xor shuffles within a subgroup. Lane l < s
// receives lane l ^ s = l + s there, in the same argument order, so lane 0 ends with exactly the
// bits of the all-memory tree.
fn row_reduce(local: u32, st: RowState) -> RowState {
    // A row of one thread has nothing to merge (and lavapipe pays for every barrier).
    if (ROW_THREADS == 1u) {
        return st;
    }
    let lane = local % ROW_THREADS;
    var inner = 1u;
    if (SUBGROUP > 0u) {
        inner = min(SUBGROUP, ROW_THREADS);
    }
    var mine = st;
    if (inner < ROW_THREADS) {
        state_store(local, mine);
        workgroupBarrier();
        for (var stride = ROW_THREADS / 2u; stride >= inner; stride = stride / 2u) {
            if (lane < stride) {
                mine = state_merge(mine, state_load(local + stride));
                state_store(local, mine);
            }
            workgroupBarrier();
        }
    }
    for (var stride = inner / 2u; stride > 0u; stride = stride / 2u) {
        let other = RowState(
            lane_shuffle_xor(mine.m, stride),
            lane_shuffle_xor(mine.s, stride),
            lane_shuffle_xor(mine.q, stride),
            lane_shuffle_xor(mine.b, stride),
        );
        if (lane < stride) {
            mine = state_merge(mine, other);
        }
    }
    if (inner == ROW_THREADS) {
        // The whole row is within one subgroup: its lane 0 sends the result to the others.
        let head_lane = local % max(SUBGROUP, 1u) - lane;
        return RowState(
            lane_shuffle(mine.m, head_lane),
            lane_shuffle(mine.s, head_lane),
            lane_shuffle(mine.q, head_lane),
            lane_shuffle(mine.b, head_lane),
        );
    }
    if (inner > 1u) {
        // The shuffles left the result in lane 0's registers only.
        if (lane == 0u) {
            state_store(local, mine);
        }
        workgroupBarrier();
    }
    let out = state_load(local - lane);
    workgroupBarrier();
    return out;
}

fn state_store(i: u32, st: RowState) {
    sm_m[i] = st.m;
    sm_s[i] = st.s;
    sm_q[i] = st.q;
    sm_b[i] = st.b;
}

fn state_load(i: u32) -> RowState {
    return RowState(sm_m[i], sm_s[i], sm_q[i], sm_b[i]);
}

// Sums (loss, weight) pairs of the rows of this workgroup in a fixed order; every thread must
// call it, with the values of its row on lane 0 (other lanes' values are ignored), and every
// thread gets the total. Two levels rather than a tree (two barriers whatever the row count;
// CPU drivers pay for every barrier): groups of up to 16 consecutive rows are added in order
// by one thread each, then the group sums in order.
fn workgroup_pair_sum(local: u32, value: vec2<f32>) -> vec2<f32> {
    let lane = local % ROW_THREADS;
    let row = local / ROW_THREADS;
    if (lane == 0u) {
        sm_m[row] = value.x;
        sm_s[row] = value.y;
    }
    workgroupBarrier();
    let rows = WG / ROW_THREADS;
    let span = min(rows, 16u);
    let parts = rows / span;
    if (local < parts) {
        var acc = vec2<f32>(0.0, 0.0);
        for (var k = 0u; k < span; k = k + 1u) {
            acc = acc + vec2<f32>(sm_m[local * span + k], sm_s[local * span + k]);
        }
        // The row merge ended on a barrier, so these are free.
        sm_q[local] = acc.x;
        sm_b[local] = acc.y;
    }
    workgroupBarrier();
    var total = vec2<f32>(0.0, 0.0);
    for (var k = 0u; k < parts; k = k + 1u) {
        total = total + vec2<f32>(sm_q[k], sm_b[k]);
    }
    return total;
}

// Logits a thread can keep in registers between the statistics pass and the gradient pass.
const CACHE: u32 = 16u;
// The cache slots a thread fills: rows of at most CACHED * ROW_THREADS logits are read from
// memory once (`row_cached`), longer ones twice. The host sets the fewest slots that hold a
// row, rounded up to a multiple of 4 (plan.rs), since a slot past the row's end still costs
// its masked loads and arithmetic on CPU drivers. Any value from 1 to CACHE is correct.
override CACHED: u32 = 16u;

// The cache slots of this pipeline, at most CACHE.
fn cache_slots() -> u32 {
    return min(CACHED, CACHE);
}

// Whether rows of `classes` logits are kept in registers (read from memory once).
fn row_cached(classes: u32) -> bool {
    return !SPLIT && classes <= cache_slots() * ROW_THREADS;
}

// The merged state of the calling thread's row; every thread must call it. A whole row merges
// its threads' states `st` (row_reduce); a split row (SPLIT), whose threads push nothing in
// `main`, merges its segments' states (split_row_state).
fn merged_row_state(local: u32, row: u32, st: RowState) -> RowState {
    if (SPLIT) {
        return split_row_state(local, row);
    }
    return row_reduce(local, st);
}

// The state of a whole split row (SPLIT): lane 0 merges the row's segment states in segment
// order and shares the result through workgroup memory. Every thread must call it.
fn split_row_state(local: u32, row: u32) -> RowState {
    if (local == 0u) {
        var st = state_empty();
        if (row < params.rows) {
            for (var k = 0u; k < params.segments; k = k + 1u) {
                let part = scratch_record(SCRATCH_STATES + row * params.segments + k);
                st = state_merge(st, RowState(part.x, part.y, part.z, part.w));
            }
        }
        state_store(0u, st);
    }
    workgroupBarrier();
    let st = state_load(0u);
    workgroupBarrier();
    return st;
}

// The first dispatch of a split row (see SPLIT): one segment's state per workgroup.
@compute @workgroup_size(WG)
fn segment_states(@builtin(local_invocation_index) local: u32,
                  @builtin(workgroup_id) wid: vec3<u32>,
                  @builtin(num_workgroups) nwg: vec3<u32>) {
    let group = linear_group(wid, nwg);
    let span = row_span(group, local, 0u);
    var st = state_empty();
    if (span.row < params.rows) {
        let base = row_logits(span.row);
        st = state_push_row(st, base, row_q_base(span.row), span.lo + span.lane, span.hi);
    }
    st = row_reduce(local, st);
    if (local == 0u) {
        set_scratch_record(SCRATCH_STATES + group, vec4<f32>(st.m, st.s, st.q, st.b));
    }
}
