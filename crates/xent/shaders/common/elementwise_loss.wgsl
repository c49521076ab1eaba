// What the elementwise loss kernels (BCE) share: their parameters, the bindings they have in
// the same place, and helpers (which use the kernel's `upstream` declaration).

// The parameters of one dispatch of the BCE kernels, mirrored by `Params` in
// src/kernels/binary.rs, and the bindings both kernels have in the same place.
struct Params {
    // Elements of this dispatch (a chunk of the input), and pos_weight's period (below).
    len: u32,
    pos_period: u32,
    // Element index of element 0 of the input and the target in their bindings.
    x_first: u32,
    t_first: u32,
    // This dispatch's first element in the whole input, its first (loss, count) pair, and the
    // input's length (the mean's count).
    elem_base: u32,
    pair_base: u32,
    total_len: u32,
    // Reduction of the loss, as the host's `Reduction`: 0 none (one value per element), 1 mean,
    // 2 sum.
    reduction: u32,
    // The weight of element i of this dispatch is weight[(weight_base + i) % weight_period]: a
    // weight of the input's trailing dimensions repeats over the leading ones (as PyTorch
    // broadcasts it) and is bound whole; a full-size weight too large for that is bound as
    // this chunk's window with a period that never wraps.
    weight_base: u32,
    weight_period: u32,
    // pos_weight's element i is pos_weight[(pos_base + i) % pos_period], in the same way.
    pos_base: u32,
    // The focal loss's alpha and gamma (unused by BCE).
    alpha: f32,
    gamma: f32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

override HAS_WEIGHT: bool = false;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(2) var<storage, read> target_: array<f32>;
@group(0) @binding(3) var<storage, read> weight: array<f32>;


// Number of elements of `params.len` in workgroup `group`'s block.
fn block_len(group: u32) -> u32 {
    let start = min(params.len, group * WG * ITEMS);
    return min(WG * ITEMS, params.len - start);
}

// The gradient scale of element i: upstream[i] (none), upstream[0] (sum), upstream[0] / len
// (mean, over the whole input). Needs the kernel's `params.total_len` and `upstream`.
fn element_scale(i: u32) -> f32 {
    if (!REDUCED) {
        return upstream[i];
    }
    if (params.reduction == 2u) {
        return upstream[0];
    }
    return upstream[0] / f32(params.total_len);
}

// sigmoid(x) without overflow: exp of a non-positive argument only.
fn sigmoid(x: f32) -> f32 {
    let z = exp_or_nan(-abs(x));
    if (x >= 0.0) {
        return 1.0 / (1.0 + z);
    }
    return z / (1.0 + z);
}

// PyTorch's w ((1 - t) x - q logsigmoid(x)), q = 1 + (pw - 1) t, at x = +-inf, for any target:
// at +inf logsigmoid is 0, leaving (1 - t) inf; at -inf logsigmoid is -inf, giving
// (t - 1) inf + q inf, infinite where both terms have one sign and NaN where they cancel or one
// is 0 x inf; then times w (NaN where w is 0). Written out on signs, as no shader compiler is
// trusted with inf arithmetic.
fn infinite_logit_loss(x: f32, t: f32, pw: f32, w: f32) -> f32 {
    var s = 1.0 - t;
    if (x < 0.0) {
        let q = 1.0 + (pw - 1.0) * t;
        s = t - 1.0;
        if (q == 0.0 || (s > 0.0) != (q > 0.0)) {
            return nan_f32();
        }
    }
    let c = w * s;
    if (c == 0.0) {
        return nan_f32();
    }
    if (c < 0.0) {
        return -inf_f32();
    }
    return inf_f32();
}

// (1 - t) x - pw' logsigmoid(x) with pw' = 1 + (pw - 1) t, BCE with logits before its weight,
// in the form h + pw' log1p(exp(-|x|)) with h = (1 - t) x for x >= 0 and -pw t x otherwise (equal
// for any t): both terms are >= 0 for t in [0, 1] and pw >= 0, so a tiny loss is not lost to
// cancellation; for other targets they may differ in sign, and cancel no worse than PyTorch's
// (1 - t) x - pw' (x - log1p(exp(x))) does at x < 0. Finite x.
fn bce_logits_term(x: f32, t: f32, pw: f32) -> f32 {
    let q = 1.0 + (pw - 1.0) * t;
    var h = (1.0 - t) * x;
    if (x < 0.0) {
        h = -pw * t * x;
    }
    return h + q * log1p_careful(exp_or_nan(-abs(x)));
}

// Whether v is in [0, 1], decided on its bits so that no compiler's float assumptions can let a
// NaN through: +0 through 1.0 are the bit patterns 0 to 0x3f800000, and -0 is 0x80000000.
fn in_unit_interval(v: f32) -> bool {
    let bits = bitcast<u32>(v);
    return bits <= 0x3f800000u || bits == 0x80000000u;
}

// Whether v is finite (neither infinite nor NaN), decided on its bits (an all-ones exponent is
// infinite or NaN).
fn is_finite_bits(v: f32) -> bool {
    return (bitcast<u32>(v) & 0x7f800000u) != 0x7f800000u;
}

// Records element i of this dispatch as a value its loss refuses (outside [0, 1], or not finite)
// in the kernel's `status` (cleared before the kernel runs): status[word] counts such elements,
// status[word + 1] keeps 0xffffffff - (first such element of the whole input) by an atomic max,
// so 0 means none. Word 0 is for targets, word 2 for input probabilities.
fn record_refused(word: u32, i: u32) {
    atomicAdd(&status[word], 1u);
    atomicMax(&status[word + 1u], 0xffffffffu - (params.elem_base + i));
}
