// Sigmoid focal loss (torchvision.ops.sigmoid_focal_loss) on logits x: forward, and with GRAD
// the gradient in the same pass.
//   p = sigmoid(x),  ce = bce_with_logits(x, t),  m = 1 - p_t = t sigmoid(-x) + (1 - t) sigmoid(x),
//   l = a ce m^gamma,  a = alpha t + (1 - alpha)(1 - t) if alpha >= 0, else 1,
//   dl/dx = a ((p - t) m^gamma + gamma ce (1 - 2t) r m^gamma),  r = p (1 - p) / m,
// where r m^gamma is p (1 - p) m^(gamma - 1) without its 0 * inf at m = 0 (r <= 1, and 0
// there). m is built from sigmoid(x) and sigmoid(-x), never as 1 - p_t, so it keeps its
// relative accuracy for a confident prediction, where the loss lives. At an infinite x the
// loss is torchvision's (ce is PyTorch's value there, `infinite_logit_loss`) and the gradient
// is NaN for gamma > 0, a (p - t) for gamma = 0, as autograd gives them.
// Reductions and the upstream scale: common/elementwise_main.wgsl. A target outside [0, 1] (or
// NaN) makes its element's loss and gradient NaN and is recorded in `status`
// (record_refused).

@group(0) @binding(4) var<storage, read_write> out: array<f32>;
@group(0) @binding(5) var<storage, read> upstream: array<f32>;
@group(0) @binding(7) var<storage, read_write> status: array<atomic<u32>>;

// m^g for m in [0, 1] and g >= 0: the integer part of g by repeated squaring (exact for the
// usual g = 1, 2, 3), the fraction through exp2 (whose error grows with its argument, which
// the fraction keeps below |log2 m|). 1 for g = 0, 0 for m = 0 < g.
fn pow_unit(m: f32, g: f32) -> f32 {
    if (g == 0.0) {
        return 1.0;
    }
    if (m == 0.0) {
        return 0.0;
    }
    var k = u32(floor(g));
    let f = g - floor(g);
    var result = 1.0;
    if (f > 0.0) {
        result = exp2(f * log2(m));
    }
    var base = m;
    loop {
        if (k == 0u) {
            break;
        }
        if ((k & 1u) == 1u) {
            result = result * base;
        }
        base = base * base;
        k = k >> 1u;
    }
    return result;
}

// a * inf for an infinite loss term c (NaN where a is 0), c itself when it is NaN.
fn scaled_infinite(c: f32, a: f32) -> f32 {
    if (!is_infinite(c) || a == 0.0) {
        return nan_f32();
    }
    if ((a > 0.0) == (c > 0.0)) {
        return inf_f32();
    }
    return -inf_f32();
}

// Element i of this dispatch: its loss and its gradient before the upstream scale (the
// entry point is common/elementwise_main.wgsl).
fn element(i: u32) -> vec2<f32> {
    let x = load_x(params.x_first + i);
    let t = target_[params.t_first + i];
    var a = 1.0;
    if (params.alpha >= 0.0) {
        a = params.alpha * t + (1.0 - params.alpha) * (1.0 - t);
    }
    let p = sigmoid(x);
    let q = sigmoid(-x);
    let m = t * q + (1.0 - t) * p;
    let mg = pow_unit(m, params.gamma);
    let ce = bce_logits_term(x, t, 1.0);
    var l = a * (ce * mg);
    var g = 0.0;
    if (GRAD) {
        var r = 0.0;
        if (m > 0.0) {
            r = (p * q) / m;
        }
        // The bounded factors first: ce may be near f32's largest value, and the
        // product must be 0 where r is, not inf * 0.
        let focus = params.gamma * (1.0 - 2.0 * t) * r * mg;
        g = a * ((p - t) * mg + focus * ce);
    }
    if (is_infinite(x)) {
        l = scaled_infinite(infinite_logit_loss(x, t, 1.0, 1.0), a * mg);
        g = a * (p - t);
        if (params.gamma > 0.0) {
            g = nan_f32();
        }
    }
    if (!in_unit_interval(t)) {
        l = nan_f32();
        g = nan_f32();
        record_refused(0u, i);
    }
    return vec2<f32>(l, g);
}
