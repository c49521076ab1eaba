// Workgroup layout of elementwise kernels, and their fixed-order workgroup sum.
//
// A workgroup of WG threads handles a block of WG * ITEMS consecutive elements; thread t takes
// elements t, t + WG, t + 2 WG, ... of the block (adjacent threads read adjacent elements).

override WG: u32 = 256u;
override ITEMS: u32 = 4u;

const WG_MAX: u32 = 256u;

var<workgroup> sm_sum: array<f32, WG_MAX>;

// Fixed-order tree sum over the workgroup; every thread must call it. Valid on thread 0.
fn workgroup_sum(local: u32, value: f32) -> f32 {
    sm_sum[local] = value;
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride = stride / 2u) {
        if (local < stride) {
            sm_sum[local] = sm_sum[local] + sm_sum[local + stride];
        }
        workgroupBarrier();
    }
    return sm_sum[0];
}
