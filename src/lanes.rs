//! Subgroups: whether row kernels can merge a row's partial results with subgroup shuffles on
//! a device, and with what subgroup size.
//!
//! The row merge (`shaders/common/row_state.wgsl`) exchanges values between the threads of a
//! row by their position in the workgroup, so it needs every invocation's subgroup lane to be
//! its local index modulo one fixed subgroup size. Vulkan, Metal and D3D12 lay 1-D workgroups
//! out that way in practice but do not promise it, so xent checks it once per device with a
//! probe kernel and falls back to workgroup memory when anything disagrees. Both ways give the
//! same bits.

use crate::context::Context;
use crate::error::Result;
use crate::gpu_buffer;
use crate::loss::launch::{whole, Program};
use crate::plan::{self, WORKGROUP_SIZE};
use crate::shaders::{Kernel, PipelineKey};

/// Workgroups the probe runs (more than one, in case later ones are laid out differently).
const PROBE_GROUPS: u32 = 4;

/// Mirrors `Params` of shaders/subgroup_probe.wgsl.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    len: u32,
    _pad: [u32; 3],
}

/// The subgroup size row kernels can use on `ctx`'s device: `Some` only when the device has
/// the subgroup feature, reports one subgroup size (not a range the driver picks from per
/// pipeline), and the probe finds every lane where the row merge expects it. A probe that
/// fails to run counts as no.
pub(crate) fn usable_subgroup_size(ctx: &Context) -> Option<u32> {
    if !ctx.device().features().contains(wgpu::Features::SUBGROUP) {
        return None;
    }
    let info = ctx.adapter_info();
    let size = info.subgroup_min_size;
    if size != info.subgroup_max_size || !size.is_power_of_two() || size > WORKGROUP_SIZE {
        return None;
    }
    let found = ctx.checked(|| probe(ctx)).ok()?;
    lanes_follow_local_index(&found, size).then_some(size)
}

/// Runs the probe: (lane, subgroup size) of every invocation of [`PROBE_GROUPS`] workgroups.
fn probe(ctx: &Context) -> Result<Vec<u32>> {
    let len = PROBE_GROUPS * WORKGROUP_SIZE;
    let params = gpu_buffer::uniform(ctx, &Params { len, _pad: [0; 3] })?;
    let out = gpu_buffer::upload(
        ctx,
        "xent subgroup probe",
        &vec![u32::MAX; 2 * len as usize],
    )?;
    let mut program = Program::default();
    let key = PipelineKey::new(Kernel::SubgroupProbe, Vec::new());
    let grid = plan::grid(u64::from(PROBE_GROUPS), ctx.limits())?;
    program.push(ctx, &key, grid, &[whole(&params), whole(&out)])?;
    let mut encoder = ctx
        .device()
        .create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("xent subgroup probe"),
        });
    program.record(&mut encoder);
    let read = ctx.submit_and_read(encoder, &[(&out, 2 * len as usize)])?;
    Ok(read.into_iter().flatten().map(f32::to_bits).collect())
}

/// Whether the probe's (lane, size) pairs put invocation i at lane i mod `size` of a subgroup
/// of `size`, for every invocation.
fn lanes_follow_local_index(found: &[u32], size: u32) -> bool {
    let per_group = WORKGROUP_SIZE as usize;
    !found.is_empty()
        && found.chunks(2).enumerate().all(|(i, pair)| {
            let local = (i % per_group) as u32;
            pair == [local % size, size]
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(size: u32, lane: impl Fn(u32) -> u32) -> Vec<u32> {
        (0..2 * WORKGROUP_SIZE)
            .flat_map(|i| [lane(i % WORKGROUP_SIZE), size])
            .collect()
    }

    #[test]
    fn accepts_lanes_in_local_order() {
        assert!(lanes_follow_local_index(&layout(8, |l| l % 8), 8));
        assert!(lanes_follow_local_index(&layout(32, |l| l % 32), 32));
    }

    #[test]
    fn rejects_other_layouts() {
        // Lanes reversed within each subgroup.
        assert!(!lanes_follow_local_index(&layout(8, |l| 7 - l % 8), 8));
        // A subgroup size other than the one reported.
        assert!(!lanes_follow_local_index(&layout(16, |l| l % 16), 8));
        // One invocation the probe never wrote.
        let mut unwritten = layout(8, |l| l % 8);
        unwritten[10] = u32::MAX;
        assert!(!lanes_follow_local_index(&unwritten, 8));
        assert!(!lanes_follow_local_index(&[], 8));
    }
}
