//! Buffers xent creates: uploads, outputs pre-filled with a sentinel, uniforms.

use crate::error::Result;
use crate::gpu::device::Gpu;
use crate::plan::check_buffer;

/// The value every output is filled with before a kernel runs: a NaN with a payload that no
/// arithmetic produces, so an element a kernel never wrote cannot pass for a result.
pub(crate) const SENTINEL: f32 = f32::from_bits(0x7fc0_dead);

/// Storage usages of every buffer xent makes.
const STORAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
    .union(wgpu::BufferUsages::COPY_SRC)
    .union(wgpu::BufferUsages::COPY_DST);

/// Uploads `data` into a new storage buffer (at least 4 bytes: bindings cannot be empty).
pub(crate) fn upload<T: bytemuck::Pod>(gpu: &Gpu, what: &str, data: &[T]) -> Result<wgpu::Buffer> {
    let bytes: &[u8] = bytemuck::cast_slice(data);
    check_buffer(what, bytes.len() as u64, gpu.limits())?;
    gpu.create_buffer_init(what, bytes, STORAGE)
}

/// A new storage buffer of `len` f32 values, all [`SENTINEL`].
pub(crate) fn output(gpu: &Gpu, what: &str, len: usize) -> Result<wgpu::Buffer> {
    upload(gpu, what, &vec![SENTINEL; len.max(1)])
}

/// A new storage buffer of `len` f32 values that xent's kernels write before they read
/// (blocks of work; nothing to fill on the host).
pub(crate) fn work(gpu: &Gpu, what: &str, len: usize) -> Result<wgpu::Buffer> {
    let size = (len.max(1) as u64).saturating_mul(4);
    check_buffer(what, size, gpu.limits())?;
    Ok(gpu.create_buffer(&wgpu::BufferDescriptor {
        label: Some(what),
        size,
        usage: STORAGE,
        mapped_at_creation: false,
    }))
}

/// A new uniform buffer holding one `#[repr(C)]` params struct.
pub(crate) fn uniform<T: bytemuck::Pod>(gpu: &Gpu, params: &T) -> Result<wgpu::Buffer> {
    gpu.create_buffer_init(
        "xent params",
        bytemuck::bytes_of(params),
        wgpu::BufferUsages::UNIFORM,
    )
}
