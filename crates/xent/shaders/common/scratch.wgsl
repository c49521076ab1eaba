// `scratch` (declared by the host, as an array of f32) holds per-row scalars (the log-sum-exp
// output, one thread writing each) and records of four (row and shard states, the mean's
// denominator). It is scalar so that a thread's write of one value is a write of that value
// alone: a write to one component of a vec4 may rewrite the whole vector (WGSL lets it, and
// Tint does), which would race with the threads writing its neighbours.

// Record i: scratch[4i .. 4i + 4].
fn scratch_record(i: u32) -> vec4<f32> {
    let at = 4u * i;
    return vec4<f32>(scratch[at], scratch[at + 1u], scratch[at + 2u], scratch[at + 3u]);
}

fn set_scratch_record(i: u32, v: vec4<f32>) {
    let at = 4u * i;
    scratch[at] = v.x;
    scratch[at + 1u] = v.y;
    scratch[at + 2u] = v.z;
    scratch[at + 3u] = v.w;
}
