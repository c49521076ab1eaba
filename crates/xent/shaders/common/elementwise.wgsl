// Workgroup layout of elementwise kernels, and their fixed-order workgroup sums.
//
// A workgroup of WG threads handles a block of WG * ITEMS consecutive elements; thread t takes
// elements t, t + WG, t + 2 WG, ... of the block (adjacent threads read adjacent elements).

override WG: u32 = 256u;
override ITEMS: u32 = 4u;

const WG_MAX: u32 = 256u;

// Values each first-level thread of a workgroup sum adds (WG is a multiple of it).
const SPAN: u32 = 16u;

var<workgroup> sm_sum: array<vec2<f32>, WG_MAX>;
var<workgroup> sm_part: array<vec2<f32>, WG_MAX>;

// Fixed-order sum of the workgroup's `value`s (pairs summed componentwise); every thread must
// call it, and every thread gets the total. Two levels rather than a tree, so it costs two
// barriers whatever WG (a tree costs log2(WG) + 1, and CPU drivers pay for every barrier):
// WG / SPAN threads each add SPAN consecutive values in order, then each thread adds those
// partial sums in order.
fn workgroup_sum2(local: u32, value: vec2<f32>) -> vec2<f32> {
    sm_sum[local] = value;
    workgroupBarrier();
    let parts = WG / SPAN;
    if (local < parts) {
        var acc = vec2<f32>(0.0, 0.0);
        for (var k = 0u; k < SPAN; k = k + 1u) {
            acc = acc + sm_sum[local * SPAN + k];
        }
        sm_part[local] = acc;
    }
    workgroupBarrier();
    var total = vec2<f32>(0.0, 0.0);
    for (var k = 0u; k < parts; k = k + 1u) {
        total = total + sm_part[k];
    }
    return total;
}

// workgroup_sum2 of single values.
fn workgroup_sum(local: u32, value: f32) -> f32 {
    return workgroup_sum2(local, vec2<f32>(value, 0.0)).x;
}
