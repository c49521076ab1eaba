// The gradient of the categorical kernels goes to its own packed (N, C) buffer, or, with
// IN_PLACE, over the logits in their layout (each thread overwrites only elements it has
// already read). Needs the kernel's `store_x` and `store_grad`.

override IN_PLACE: bool = false;

// Index of row `row`'s first gradient element; `x_base` is that of its first logit. A packed
// gradient has the input's shape: (N, C), or (N, C, d1, ..., dk) with STRIDED.
fn grad_row_base(row: u32, classes: u32, x_base: u32) -> u32 {
    if (IN_PLACE) {
        return x_base;
    }
    return row_first(0u, classes * params.positions, row);
}

fn write_grad(i: u32, value: f32) {
    if (IN_PLACE) {
        store_x(i, value);
    } else {
        store_grad(i, value);
    }
}
