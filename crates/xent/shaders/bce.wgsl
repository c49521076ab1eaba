// Binary cross-entropy on probabilities p: forward, and with GRAD the gradient in the same
// pass.
//   l_i = -w_i (t_i max(log p_i, -100) + (1 - t_i) max(log(1 - p_i), -100))
//   dl_i/dp_i = w_i (p_i - t_i) / max((1 - p_i) p_i, 1e-12)      (PyTorch's clamp)
// Reductions and the upstream scale: common/elementwise_main.wgsl. A probability or target outside
// [0, 1] (or NaN) makes its element's loss and gradient NaN and is recorded in `status`
// (record_refused).

@group(0) @binding(4) var<storage, read_write> out: array<f32>;
@group(0) @binding(5) var<storage, read> upstream: array<f32>;
@group(0) @binding(7) var<storage, read_write> status: array<atomic<u32>>;

// Element i of this dispatch: its loss and its gradient before the upstream scale (the
// entry point is common/elementwise_main.wgsl).
fn element(i: u32) -> vec2<f32> {
    let p = load_x(params.x_first + i);
    let t = target_[params.t_first + i];
    var w = 1.0;
    if (HAS_WEIGHT) {
        w = weight[(params.weight_base + i) % params.weight_period];
    }
    let log_p = max(log_careful(p), -100.0);
    let log_1mp = max(log1p_careful(-p), -100.0);
    var l = -w * (t * log_p + (1.0 - t) * log_1mp);
    var g = w * (p - t) / max((1.0 - p) * p, 1e-12);
    let bad_t = !in_unit_interval(t);
    let bad_p = !in_unit_interval(p);
    if (bad_t || bad_p) {
        l = nan_f32();
        g = nan_f32();
        if (bad_t) {
            record_refused(0u, i);
        }
        if (bad_p) {
            record_refused(2u, i);
        }
    }
    return vec2<f32>(l, g);
}
