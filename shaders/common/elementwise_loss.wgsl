// Helpers of the elementwise loss kernels (BCE); they use the kernel's `params.len` and
// `upstream` declarations.

// Number of elements of `params.len` in workgroup `group`'s block.
fn block_len(group: u32) -> u32 {
    let start = min(params.len, group * WG * ITEMS);
    return min(WG * ITEMS, params.len - start);
}

// The gradient scale of element i: upstream[i] (none), upstream[0] (sum), upstream[0] / len
// (mean, over the whole input). Needs the kernel's `params.total_len` and `upstream`.
fn element_scale(i: u32) -> f32 {
    if (REDUCTION == 0u) {
        return upstream[i];
    }
    if (REDUCTION == 2u) {
        return upstream[0];
    }
    return upstream[0] / f32(params.total_len);
}
