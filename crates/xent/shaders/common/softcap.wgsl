// The logit softcap of cross-entropy (Gemma 2): with SOFTCAP, every logit x is read as
// z = S tanh(x / S) (S = params.softcap > 0), and the gradient with respect to x is the
// gradient with respect to z times dz/dx = 1 / cosh^2(x / S). Without it logits are read as
// they are, in a pipeline of its own: a uniform branch per element still costs CPU drivers
// (lavapipe, 2048 x 1000: forward 8 -> 12 ms). A thread's cache keeps the logits as loaded,
// so the gradient's factor comes from x itself: formed from z it would lose its relative
// accuracy where tanh is near +-1.

override SOFTCAP: bool = false;

// tanh(u) with a small relative error everywhere: WGSL's tanh is only promised as
// sinh(u) / cosh(u), which cancels near 0. |u| < 0.25: the odd series to u^13 (its next term
// is below 1e-10 of the result); otherwise 1 - 2 / (exp(2|u|) + 1), with the sign of u.
fn tanh_careful(u: f32) -> f32 {
    let a = abs(u);
    if (a < 0.25) {
        let u2 = u * u;
        let poly = 1.0 + u2 * (-1.0 / 3.0 + u2 * (2.0 / 15.0 + u2 * (-17.0 / 315.0 + u2 * (62.0 / 2835.0 + u2 * (-1382.0 / 155925.0 + u2 * (21844.0 / 6081075.0))))));
        return u * poly;
    }
    // exp(2a) overflows to +inf for a > 44, where 2 / inf = 0 gives 1.
    let t = 1.0 - 2.0 / (exp_or_nan(2.0 * a) + 1.0);
    return select(t, -t, u < 0.0);
}

// A logit x as the loss sees it.
fn capped(x: f32) -> f32 {
    if (SOFTCAP) {
        let s = params.softcap;
        return s * tanh_careful(x / s);
    }
    return x;
}

// row_state's hooks: a logit from memory, and one from a thread's cache.
fn load_logit(i: u32) -> f32 {
    return capped(load_x(i));
}

fn cached_logit(v: f32) -> f32 {
    return capped(v);
}

// The gradient g with respect to the capped logit taken back to the logit x: g / cosh^2(x / S)
// = g 4e / (1 + e)^2 with e = exp(-2 |x / S|) (no cancellation; 0 once e underflows).
fn capped_grad(x: f32, g: f32) -> f32 {
    if (SOFTCAP) {
        let s = params.softcap;
        let e = exp_or_nan(-2.0 * abs(x / s));
        let d = 1.0 + e;
        return g * (4.0 * e / (d * d));
    }
    return g;
}
