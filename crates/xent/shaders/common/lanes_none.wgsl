// Lane exchanges for kernels built without subgroups. Kernels use them only when SUBGROUP > 0,
// which the host never sets for these builds, so they are never called.

fn lane_shuffle_xor(v: f32, mask: u32) -> f32 {
    return v;
}

fn lane_shuffle(v: f32, lane: u32) -> f32 {
    return v;
}
