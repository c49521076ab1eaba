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
// B_K_FAST). Every value of C is one thread's sum over k in order, blocked: each TK-deep step
// is summed on its own, then added to the running sum.
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

// The operands a, b and bias (bindings 1 to 3) are declared by the host in their element
// types (f32, f16, or bf16 two to a word), read through load_a, load_b and load_bias.
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(4) var<storage, read_write> c: array<f32>;

const TILE: u32 = 64u;
const TK: u32 = 32u;
const THREADS: u32 = 256u;
// Rows a column sum adds before adding them into its running sum.
const COLUMN_BLOCK: u32 = 32u;

// The staged operands, k-major, four consecutive i (j) per vec4: ta[k * 16 + i / 4].
var<workgroup> ta: array<vec4<f32>, 512>;
var<workgroup> tb: array<vec4<f32>, 512>;

fn a_at(i: u32, k: u32) -> f32 {
    if (i < params.m && k < params.k) {
        return load_a(params.a_first + i * params.a_i + k * params.a_k);
    }
    return 0.0;
}

fn b_at(k: u32, j: u32) -> f32 {
    if (k < params.k && j < params.n) {
        return load_b(params.b_first + k * params.b_k + j * params.b_j);
    }
    return 0.0;
}

// Stages the TK-deep slices of A and B that start at k0: each thread fills two vec4 slots of
// each (four consecutive i, or j, at one k). Where the operand is contiguous along k
// (A_K_FAST, B_K_FAST), consecutive threads take consecutive k, so each of their loads reads
// consecutive addresses; otherwise consecutive threads take consecutive slots along i (j).
fn slot(e: u32, k_fast: bool) -> vec2<u32> {
    if (k_fast) {
        return vec2<u32>(e % TK, (e / TK) * 4u);
    }
    return vec2<u32>(e / 16u, (e % 16u) * 4u);
}

fn stage(local: u32, i0: u32, j0: u32, k0: u32) {
    for (var r = 0u; r < TILE * TK / (4u * THREADS); r = r + 1u) {
        let e = local + r * THREADS;
        let sa = slot(e, A_K_FAST);
        let ka = k0 + sa.x;
        let ia = i0 + sa.y;
        ta[sa.x * 16u + sa.y / 4u] = vec4<f32>(
            a_at(ia, ka),
            a_at(ia + 1u, ka),
            a_at(ia + 2u, ka),
            a_at(ia + 3u, ka),
        );
        let sb = slot(e, B_K_FAST);
        let kb = k0 + sb.x;
        let jb = j0 + sb.y;
        tb[sb.x * 16u + sb.y / 4u] = vec4<f32>(
            b_at(kb, jb),
            b_at(kb, jb + 1u),
            b_at(kb, jb + 2u),
            b_at(kb, jb + 3u),
        );
    }
}

@compute @workgroup_size(16, 16)
fn main(@builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(local_invocation_index) local: u32,
        @builtin(workgroup_id) wid: vec3<u32>) {
    let i0 = wid.y * TILE;
    let j0 = wid.x * TILE;
    // Thread (x, y) computes rows i0 + 4 y .. + 4 and columns j0 + 4 x .. + 4.
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var k0 = 0u; k0 < params.k; k0 = k0 + TK) {
        stage(local, i0, j0, k0);
        workgroupBarrier();
        // Blocked summation: each TK-deep step sums into its own accumulators, then into the
        // running ones, so a large term (a logits gradient's -1 at the target class among
        // millions of tiny probabilities) rounds only the TK values after it in its step, and
        // the running sums take one addition per step (lavapipe, N = 3, D = 2, V = 4194247:
        // the hidden gradient's worst error against float64 3.9e-6 -> 2.2e-7, 1.5e-5 -> 8.7e-7
        // of its largest value).
        var s0 = vec4<f32>(0.0);
        var s1 = vec4<f32>(0.0);
        var s2 = vec4<f32>(0.0);
        var s3 = vec4<f32>(0.0);
        for (var kk = 0u; kk < TK; kk = kk + 1u) {
            let av = ta[kk * 16u + lid.y];
            let bv = tb[kk * 16u + lid.x];
            s0 = fma(vec4<f32>(av.x), bv, s0);
            s1 = fma(vec4<f32>(av.y), bv, s1);
            s2 = fma(vec4<f32>(av.z), bv, s2);
            s3 = fma(vec4<f32>(av.w), bv, s3);
        }
        acc0 = acc0 + s0;
        acc1 = acc1 + s1;
        acc2 = acc2 + s2;
        acc3 = acc3 + s3;
        workgroupBarrier();
    }
    let accs = array<vec4<f32>, 4>(acc0, acc1, acc2, acc3);
    for (var r = 0u; r < 4u; r = r + 1u) {
        let i = i0 + 4u * lid.y + r;
        for (var s = 0u; s < 4u; s = s + 1u) {
            let j = j0 + 4u * lid.x + s;
            if (i < params.m && j < params.n) {
                let at = params.c_first + i * params.c_i + j;
                var v = accs[r][s];
                if (HAS_BIAS) {
                    v = v + load_bias(params.bias_first + j);
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
    // Blocked as the product's sums: COLUMN_BLOCK rows at a time, then into the running sum.
    var sum = 0.0;
    for (var i0 = 0u; i0 < params.m; i0 = i0 + COLUMN_BLOCK) {
        var part = 0.0;
        for (var i = i0; i < min(i0 + COLUMN_BLOCK, params.m); i = i + 1u) {
            part = part + load_a(params.a_first + i * params.a_i + j * params.a_k);
        }
        sum = sum + part;
    }
    let at = params.c_first + j;
    if (ACCUMULATE) {
        sum = c[at] + sum;
    }
    c[at] = sum;
}
