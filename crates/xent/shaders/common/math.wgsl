// Careful elementary functions shared by the loss shaders.
//
// WGSL only promises an absolute error of 2^-21 for `log` on [0.5, 2], which is a large
// *relative* error when the result is near zero (a confident prediction's loss, BCE near 0 or 1).
// These helpers keep the relative error at a few ulp there.

const F32_MAX: f32 = 3.4028234663852886e38;

// log(1 + y) for y >= -1, accurate to a few ulp for small |y|.
// For |y| < 0.25 it uses log1p(y) = 2 atanh(z), z = y / (2 + y), a series in z^2 (|z| <= 1/7);
// elsewhere 1 + y is exact enough and `log` is used.
fn log1p_careful(y: f32) -> f32 {
    if (abs(y) < 0.25) {
        let z = y / (2.0 + y);
        let z2 = z * z;
        let poly = 1.0 + z2 * (1.0 / 3.0 + z2 * (1.0 / 5.0 + z2 * (1.0 / 7.0 + z2 * (1.0 / 9.0 + z2 * (1.0 / 11.0)))));
        return 2.0 * z * poly;
    }
    return log_of_positive(1.0 + y);
}

// log(x) for x >= 0 with a small relative error also near x = 1 (x - 1 is exact there).
fn log_careful(x: f32) -> f32 {
    if (x > 0.75 && x < 1.25) {
        return log1p_careful(x - 1.0);
    }
    return log_of_positive(x);
}

// log(x) for x >= 0, -inf at 0 and NaN for NaN: WGSL does not say what `log` gives there, and
// some implementations give a finite number (SwiftShader, in browsers: about -88 for log(0)),
// which a clamp at -100 (binary cross-entropy) would then keep as the value.
fn log_of_positive(x: f32) -> f32 {
    if (is_nan(x)) {
        return x;
    }
    if (x == 0.0) {
        return -inf_f32();
    }
    return log(x);
}

// exp(x), NaN for NaN. WGSL lets an implementation assume no NaN reaches a builtin, and some
// give a number for exp(NaN) (SwiftShader: +inf), which would pass a NaN logit off as a value;
// xent's NaN in, NaN out holds on every adapter through this.
fn exp_or_nan(x: f32) -> f32 {
    return select(exp(x), x, is_nan(x));
}

// True for NaN, from the bits (a comparison may be folded away by compilers that assume
// finite math).
fn is_nan(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u;
}

// True for +inf (and only +inf among non-NaN values).
fn is_pos_inf(x: f32) -> bool {
    return x > F32_MAX;
}

// A quiet NaN, for results that must not pass as values. Built from the bits of a variable,
// not of a constant: a constant expression whose value is NaN or infinite is a
// shader-creation error in WGSL (Tint, in browsers, rejects the shader), a runtime one is not.
fn nan_f32() -> f32 {
    var bits = 0x7fc00000u;
    return bitcast<f32>(bits);
}

// +inf, from the bits of a variable as `nan_f32` (WGSL has no literal for it).
fn inf_f32() -> f32 {
    var bits = 0x7f800000u;
    return bitcast<f32>(bits);
}

// True for +inf and -inf, from the bits (comparisons with infinities may be folded away by
// compilers that assume finite math).
fn is_infinite(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7fffffffu) == 0x7f800000u;
}
