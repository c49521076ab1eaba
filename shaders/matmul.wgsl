// Matrix products for fused linear cross-entropy (src/kernels/linear.rs), f32 in, f32
// accumulated, in a fixed order (no atomics: a repeated run gives the same bits).
//
// `main`: C = A B (M x N, K inner), plus C's old values when ACCUMULATE, plus bias[j] when
// HAS_BIAS. Element (i, k) of A is a[a_first + i a_i + k a_k], element (k, j) of B is
// b[b_first + k b_k + j b_j], element (i, j) of C is c[c_first + i c_i + j]: strides let one
// kernel read either operand as stored or transposed (logits = H W^T, dH += G W, dW += G^T H).
//
// A workgroup of 16 x 16 threads computes a TILE x TILE block of C, each thread 4 x 4 values
// 16 apart (so its loads from workgroup memory and its stores to C are consecutive across
// threads). K goes in steps of TK: the workgroup stages TILE x TK of A and TK x TILE of B in
// workgroup memory, each thread loading 4 values of each, with consecutive threads on
// consecutive addresses along whichever dimension the operand is contiguous in (A_K_FAST,
// B_K_FAST). Every value of C is one thread's sum over k in order.
//
// `column_sums`: c[c_first + j] (+)= sum over i < M of a[a_first + i a_i + j a_k], j < N: the
// bias gradient, the column sums of the logits' gradient, one thread per column in row order.

struct Params {
    m: u32,
    n: u32,
    k: u32,
    bias_first: u32,
    a_first: u32,
    a_i: u32,
    a_k: u32,
    b_first: u32,
    b_k: u32,
    b_j: u32,
    c_first: u32,
    c_i: u32,
}

override ACCUMULATE: bool = false;
override HAS_BIAS: bool = false;
override A_K_FAST: bool = true;
override B_K_FAST: bool = false;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> c: array<f32>;

const TILE: u32 = 64u;
const TK: u32 = 16u;
const THREADS: u32 = 256u;
// Values per thread along each side of the tile: TILE / 16.
const PER: u32 = 4u;

// The staged operands, k-major: ta[k * TILE + i], tb[k * TILE + j].
var<workgroup> ta: array<f32, 1024>;
var<workgroup> tb: array<f32, 1024>;

fn load_a(i: u32, k: u32) -> f32 {
    if (i < params.m && k < params.k) {
        return a[params.a_first + i * params.a_i + k * params.a_k];
    }
    return 0.0;
}

fn load_b(k: u32, j: u32) -> f32 {
    if (k < params.k && j < params.n) {
        return b[params.b_first + k * params.b_k + j * params.b_j];
    }
    return 0.0;
}

// Stages the TK-deep slices of A and B that start at k0.
fn stage(local: u32, i0: u32, j0: u32, k0: u32) {
    for (var r = 0u; r < TILE * TK / THREADS; r = r + 1u) {
        let e = local + r * THREADS;
        var kk = e / TILE;
        var ii = e % TILE;
        if (A_K_FAST) {
            kk = e % TK;
            ii = e / TK;
        }
        ta[kk * TILE + ii] = load_a(i0 + ii, k0 + kk);
        var kb = e / TILE;
        var jj = e % TILE;
        if (B_K_FAST) {
            kb = e % TK;
            jj = e / TK;
        }
        tb[kb * TILE + jj] = load_b(k0 + kb, j0 + jj);
    }
}

@compute @workgroup_size(16, 16)
fn main(@builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(local_invocation_index) local: u32,
        @builtin(workgroup_id) wid: vec3<u32>) {
    let i0 = wid.y * TILE;
    let j0 = wid.x * TILE;
    var acc: array<f32, 16>;
    for (var k0 = 0u; k0 < params.k; k0 = k0 + TK) {
        stage(local, i0, j0, k0);
        workgroupBarrier();
        for (var kk = 0u; kk < TK; kk = kk + 1u) {
            var av: array<f32, 4>;
            var bv: array<f32, 4>;
            for (var r = 0u; r < PER; r = r + 1u) {
                av[r] = ta[kk * TILE + lid.y + 16u * r];
                bv[r] = tb[kk * TILE + lid.x + 16u * r];
            }
            for (var r = 0u; r < PER; r = r + 1u) {
                for (var s = 0u; s < PER; s = s + 1u) {
                    acc[r * PER + s] = acc[r * PER + s] + av[r] * bv[s];
                }
            }
        }
        workgroupBarrier();
    }
    for (var r = 0u; r < PER; r = r + 1u) {
        let i = i0 + lid.y + 16u * r;
        for (var s = 0u; s < PER; s = s + 1u) {
            let j = j0 + lid.x + 16u * s;
            if (i < params.m && j < params.n) {
                let at = params.c_first + i * params.c_i + j;
                var v = acc[r * PER + s];
                if (HAS_BIAS) {
                    v = v + bias[params.bias_first + j];
                }
                if (ACCUMULATE) {
                    v = c[at] + v;
                }
                c[at] = v;
            }
        }
    }
}

@compute @workgroup_size(256)
fn column_sums(@builtin(local_invocation_index) local: u32,
               @builtin(workgroup_id) wid: vec3<u32>,
               @builtin(num_workgroups) nwg: vec3<u32>) {
    let j = linear_group(wid, nwg) * THREADS + local;
    if (j >= params.n) {
        return;
    }
    var sum = 0.0;
    for (var i = 0u; i < params.m; i = i + 1u) {
        sum = sum + a[params.a_first + i * params.a_i + j * params.a_k];
    }
    let at = params.c_first + j;
    if (ACCUMULATE) {
        sum = c[at] + sum;
    }
    c[at] = sum;
}
