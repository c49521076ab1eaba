// The parameters of one dispatch of the categorical kernels (cross_entropy, cross_entropy_probs,
// cross_entropy_denominator, label_status): one struct, mirrored by `Params` in
// src/loss/cross_entropy.rs.

struct Params {
    // Rows of this dispatch (a chunk of the batch) and logits per row.
    rows: u32,
    classes: u32,
    // Class-index targets only.
    ignore_index: i32,
    smoothing: f32,
    // Logits and targets (class indices, or probabilities of the logits' shape): element index
    // of row 0 in their binding, and elements between rows (between samples with STRIDED).
    x_first: u32,
    x_stride: u32,
    t_first: u32,
    t_stride: u32,
    // This dispatch's first row in the whole batch, its first (loss, weight) pair, and the
    // batch's row count (the mean's N).
    row_base: u32,
    pair_base: u32,
    total_rows: u32,
    // Reduction of the loss, as the host's `Reduction`: 0 none (one value per row), 1 mean,
    // 2 sum.
    reduction: u32,
    // Split rows (row kernels with SPLIT) only: segments per row and logits per segment.
    segments: u32,
    segment_len: u32,
    // 1 when ignore_index is an i32 (a GPU target can equal it); 0 when it is beyond i32, so
    // no target is ignored.
    ignores: u32,
    // The logit softcap S (0: none); cross-entropy reads S tanh(x / S) for every logit x
    // (common/softcap.wgsl).
    softcap: f32,
    // The z-loss coefficient z (common/z_loss.wgsl).
    z_loss: f32,
    // Positions per sample P = d1 * ... * dk of an (N, C, d1, ..., dk) input (STRIDED), 1 for
    // (N, C).
    positions: u32,
    // With LSE (common/z_loss.wgsl): the f32 index in `scratch` of this dispatch's row 0
    // log-sum-exp.
    lse_first: u32,
    // A vocabulary split across devices (cross_entropy.wgsl's SHARD): the index of this
    // shard's first class in the whole vocabulary, and the vocabulary's size (0 and C
    // otherwise).
    class_first: u32,
    class_total: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> params: Params;

// Whether a class-index target is ignore_index.
fn is_ignored(y: i32) -> bool {
    return params.ignores != 0u && y == params.ignore_index;
}

// K-dimensional inputs (N, C, d1, ..., dk), P = params.positions > 1: a row is a position
// (n, p), row n P + p, whose C values lie P apart; x_stride and t_stride are then the elements
// between samples. Rows of one thread each (ROW_THREADS == 1) so that neighbouring threads
// read neighbouring positions. Off: rows of C consecutive values.
override STRIDED: bool = false;

// Index of the first value of row `row` in a binding whose row 0 (sample 0) starts at `first`,
// with `stride` elements between rows (samples).
fn row_first(first: u32, stride: u32, row: u32) -> u32 {
    if (STRIDED) {
        return first + (row / params.positions) * stride + row % params.positions;
    }
    return first + row * stride;
}

// Index of class c of the row whose first value is at `base` (row_state's hook).
fn class_at(base: u32, c: u32) -> u32 {
    if (STRIDED) {
        return base + c * params.positions;
    }
    return base + c;
}

// Index of the first logit of row `row` (row_state's hook).
fn row_logits(row: u32) -> u32 {
    return row_first(params.x_first, params.x_stride, row);
}
