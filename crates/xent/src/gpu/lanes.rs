//! Subgroups: whether row kernels can merge a row's partial results with subgroup shuffles on
//! a device, and with what subgroup size.
//!
//! The row merge (`shaders/common/row_state.wgsl`) exchanges values between the threads of a
//! row by their position in the workgroup, so it needs every invocation's subgroup lane to be
//! its local index modulo one fixed subgroup size. Vulkan, Metal and D3D12 lay 1-D workgroups
//! out that way in practice but do not promise it, so xent checks it once per device with a
//! probe kernel and falls back to workgroup memory when anything disagrees. Both ways give the
//! same bits.

use crate::error::{Operation, Result};
use crate::gpu::buffers;
use crate::gpu::device::Gpu;
use crate::gpu::pipelines::{slot, Binding, PipelineKey, Slot};
use crate::gpu::program::{whole, Program};
use crate::plan::{self, WORKGROUP_SIZE};

/// Workgroups the probe runs (more than one, in case later ones are laid out differently).
const PROBE_GROUPS: u32 = 4;

/// The probe kernel's file under `shaders/`.
pub(crate) const PROBE_FILE: &str = "subgroup_probe.wgsl";

/// The probe kernel's source.
pub(crate) const PROBE_SOURCE: &str = include_str!("../../shaders/subgroup_probe.wgsl");

/// The probe's bindings.
pub(crate) const PROBE_BINDINGS: &[Slot] = &[
    slot("params", Binding::Uniform),
    slot("out", Binding::ReadWrite),
];

crate::gpu::params::wgsl_params! {
    /// Mirrors `Params` of shaders/subgroup_probe.wgsl.
    struct Params mirrors ["subgroup_probe.wgsl"] {
        len: u32,
        _pad: [u32; 3],
    }
}

/// The subgroup size row kernels can use on `gpu`'s device: `Some` only when the device has
/// the subgroup feature, reports one subgroup size (not a range the driver picks from per
/// pipeline), and the probe finds every lane where the row merge expects it. A probe that
/// fails to run counts as no.
pub(crate) async fn usable_subgroup_size(gpu: &Gpu) -> Option<u32> {
    if !gpu.device().features().contains(wgpu::Features::SUBGROUP) {
        return None;
    }
    let info = gpu.info();
    let size = info.subgroup_min_size;
    if size != info.subgroup_max_size || !size.is_power_of_two() || size > WORKGROUP_SIZE {
        return None;
    }
    let found = probe(gpu).await.ok()?;
    lanes_follow_local_index(&found, size).then_some(size)
}

/// Runs the probe: (lane, subgroup size) of every invocation of [`PROBE_GROUPS`] workgroups.
async fn probe(gpu: &Gpu) -> Result<Vec<u32>> {
    let len = PROBE_GROUPS * WORKGROUP_SIZE;
    let readback = gpu
        .checked(Operation::Prepare, || {
            let params = buffers::uniform(gpu, &Params { len, _pad: [0; 3] })?;
            let out = buffers::upload(
                gpu,
                "xent subgroup probe",
                &vec![u32::MAX; 2 * len as usize],
            )?;
            let key = PipelineKey {
                kernel: PROBE_FILE,
                bindings: PROBE_BINDINGS,
                constants: Vec::new(),
                types: Default::default(),
                entry: "main",
            };
            let pipeline = gpu.pipeline(&key, || PROBE_SOURCE.to_string())?;
            let grid = plan::grid(u64::from(PROBE_GROUPS), gpu.limits())?;
            let mut program = Program::default();
            program.push(gpu, &pipeline, grid, &[whole(&params), whole(&out)]);
            let mut encoder =
                gpu.device()
                    .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                        label: Some("xent subgroup probe"),
                    });
            program.record(&mut encoder);
            Ok(gpu.submit_and_read(encoder, &[(&out, 0, 2 * len as usize)]))
        })
        .await?;
    let read = readback.values().await?;
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
