// Binary cross-entropy with logits x: forward, and with GRAD the gradient in the same pass.
//   l_i = w_i ((1 - t_i) x_i - q_i logsigmoid(x_i)),  q_i = 1 + (pos_weight_d - 1) t_i,
//   logsigmoid(x) = min(x, 0) - log1p(exp(-|x|)),  d = i mod pos_period,
// computed in the algebraically equal form
//   l_i = w_i (h_i + q_i log1p(exp(-|x_i|))),  h_i = (1 - t_i) x_i if x_i >= 0 else -pos_weight_d t_i x_i,
// equal for any target t, whose two terms are both >= 0 for t in [0, 1]: PyTorch's form cancels to
// zero in f32 when x << 0 and t = 0 (x - (x - tiny)), this one keeps the tiny loss. Stable for any
// finite x. An infinite x gives what PyTorch's form gives there (`infinite_logit_loss`).
//   dl_i/dx_i = w_i ((pos_weight_d t_i + 1 - t_i) sigmoid(x_i) - pos_weight_d t_i)
// Reductions and the upstream scale: common/elementwise_main.wgsl. Targets may be any finite
// value, as in PyTorch; an infinite or NaN target makes its element's loss and gradient NaN and
// is recorded in `status` (record_refused).

override HAS_POS_WEIGHT: bool = false;

@group(0) @binding(4) var<storage, read> pos_weight: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;
@group(0) @binding(6) var<storage, read> upstream: array<f32>;
@group(0) @binding(8) var<storage, read_write> status: array<atomic<u32>>;

// Element i of this dispatch: its loss and its gradient before the upstream scale (the
// entry point is common/elementwise_main.wgsl).
fn element(i: u32) -> vec2<f32> {
    let x = load_x(params.x_first + i);
    let t = target_[params.t_first + i];
    var pw = 1.0;
    if (HAS_POS_WEIGHT) {
        pw = pos_weight[(params.pos_base + i) % params.pos_period];
    }
    var w = 1.0;
    if (HAS_WEIGHT) {
        w = weight[(params.weight_base + i) % params.weight_period];
    }
    var l = w * bce_logits_term(x, t, pw);
    if (is_infinite(x)) {
        l = infinite_logit_loss(x, t, pw, w);
    }
    var g = 0.0;
    if (GRAD) {
        let pt = pw * t;
        g = w * ((pt + 1.0 - t) * sigmoid(x) - pt);
    }
    if (!is_finite_bits(t)) {
        l = nan_f32();
        g = nan_f32();
        record_refused(0u, i);
    }
    return vec2<f32>(l, g);
}
