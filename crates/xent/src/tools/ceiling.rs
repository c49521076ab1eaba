//! [`ReadCeiling`]: the read-bandwidth kernel benchmarks quote loss kernels against.

use crate::context::Context;
use crate::error::{Operation, Result};
use crate::gpu::buffers;
use crate::gpu::program::{whole, Program};
use crate::kernels::launch;
use crate::kernels::shaders::{Kernel, KernelKey};
use crate::plan::{self, WORKGROUP_SIZE};

crate::gpu::params::wgsl_params! {
    /// Mirrors `Params` of shaders/read_bandwidth.wgsl.
    struct Params mirrors ["read_bandwidth.wgsl"] {
        len4: u32,
        _pad: [u32; 3],
    }
}

/// Bytes the ceiling's buffer is filled with at a time.
const FILL_CHUNK: u64 = 16 << 20;

/// 16-byte loads each thread makes (the kernel's ITEMS).
const LOADS_PER_THREAD: u32 = 16;

/// A buffer and the kernel that reads all of it with 16-byte loads (a block per workgroup), the
/// adapter's practical read ceiling. Time it in the same run as the kernel it judges: the
/// ratio of the two is the figure that compares across machines.
pub struct ReadCeiling {
    program: Program,
    bytes: u64,
}

impl ReadCeiling {
    /// A read of `bytes` (rounded down to 16 bytes, and to the adapter's binding limit).
    pub fn new(ctx: &Context, bytes: u64) -> Result<ReadCeiling> {
        let gpu = ctx.gpu();
        let work = gpu.checked(Operation::Prepare, || {
            let bytes = bytes.min(gpu.limits().max_storage_buffer_binding_size) / 16 * 16;
            let len4 = (bytes / 16).max(1);
            let data = gpu.create_buffer(&wgpu::BufferDescriptor {
                label: Some("xent read ceiling"),
                size: len4 * 16,
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            // Real data, as the loss kernels read, so the ceiling never depends on how a driver
            // backs memory that was never written (a CPU driver may map it to one shared page
            // of zeros, which stays in cache).
            let chunk: Vec<u8> = (0..FILL_CHUNK / 4)
                .flat_map(|i| (1.0f32 + i as f32 / 1024.0).to_le_bytes())
                .collect();
            let mut offset = 0;
            while offset < len4 * 16 {
                let n = (len4 * 16 - offset).min(FILL_CHUNK);
                gpu.queue()
                    .write_buffer(&data, offset, &chunk[..n as usize]);
                offset += n;
            }
            let out = buffers::output(gpu, "xent read ceiling out", 1)?;
            let params = buffers::uniform(
                gpu,
                &Params {
                    len4: len4 as u32,
                    _pad: [0; 3],
                },
            )?;
            let groups = len4.div_ceil(u64::from(WORKGROUP_SIZE * LOADS_PER_THREAD));
            let grid = plan::grid(groups, gpu.limits())?;
            let key = KernelKey::new(
                Kernel::ReadBandwidth,
                vec![("WG", WORKGROUP_SIZE), ("ITEMS", LOADS_PER_THREAD)],
            );
            let mut program = Program::default();
            launch::dispatch(
                gpu,
                &mut program,
                &key,
                grid,
                &[
                    ("params", whole(&params)),
                    ("data", whole(&data)),
                    ("out", whole(&out)),
                ],
            )?;
            Ok(ReadCeiling {
                program,
                bytes: len4 * 16,
            })
        });
        gpu.block_on(work)
    }

    /// The bytes one run reads.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Records one read of the whole buffer into `encoder`.
    pub fn record(&self, encoder: &mut wgpu::CommandEncoder) {
        self.program.record(encoder);
    }
}
