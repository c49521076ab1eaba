//! Recording kernels into a command encoder: bind groups, dispatches, the batch reduction.

use crate::context::Context;
use crate::error::Result;
use crate::gpu_buffer;
use crate::loss::{Loss, Reduction};
use crate::plan::{self, Grid, ELEMENTWISE_ITEMS, WORKGROUP_SIZE};
use crate::shaders::{Kernel, PipelineKey};

/// Records one dispatch of `key` over `grid`, with `buffers` bound in binding order.
pub(crate) fn dispatch(
    ctx: &Context,
    encoder: &mut wgpu::CommandEncoder,
    key: &PipelineKey,
    grid: Grid,
    buffers: &[&wgpu::Buffer],
) -> Result<()> {
    if grid.groups == 0 {
        return Ok(());
    }
    let pipeline = ctx.pipeline(key)?;
    let entries: Vec<wgpu::BindGroupEntry> = buffers
        .iter()
        .enumerate()
        .map(|(i, b)| wgpu::BindGroupEntry {
            binding: i as u32,
            resource: b.as_entire_binding(),
        })
        .collect();
    let bind_group = ctx.device().create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some(key.kernel.file()),
        layout: &ctx.bind_group_layout(key.kernel),
        entries: &entries,
    });
    let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
        label: Some(key.kernel.file()),
        timestamp_writes: None,
    });
    pass.set_pipeline(&pipeline);
    pass.set_bind_group(0, &bind_group, &[]);
    pass.dispatch_workgroups(grid.x, grid.y, 1);
    Ok(())
}

/// Override constants every row kernel takes.
pub(crate) fn row_constants(row_threads: u32) -> Vec<(&'static str, u32)> {
    vec![("WG", WORKGROUP_SIZE), ("ROW_THREADS", row_threads)]
}

/// Override constants every elementwise kernel takes.
pub(crate) fn elementwise_constants() -> Vec<(&'static str, u32)> {
    vec![("WG", WORKGROUP_SIZE), ("ITEMS", ELEMENTWISE_ITEMS)]
}

/// Mirrors `Params` of shaders/reduce_pairs.wgsl.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct ReduceParams {
    len: u32,
    _pad: [u32; 3],
}

/// Records the deterministic reduction of `count` (loss, weight) pairs in `pairs` down to one
/// loss: the summed loss, or with `mean` the summed loss over the summed weight. Returns the
/// one-element buffer that will hold it.
pub(crate) fn reduce_pairs(
    ctx: &Context,
    encoder: &mut wgpu::CommandEncoder,
    pairs: wgpu::Buffer,
    count: usize,
    mean: bool,
) -> Result<wgpu::Buffer> {
    let block = (WORKGROUP_SIZE * ELEMENTWISE_ITEMS) as usize;
    let mut pairs = pairs;
    let mut count = count;
    loop {
        let last = count <= block;
        let grid = if last {
            plan::grid(1, ctx.limits())?
        } else {
            plan::elementwise_grid(count, ctx.limits())?
        };
        let out_len = if last { 1 } else { 2 * grid.groups as usize };
        let out = gpu_buffer::output(ctx, "xent partial sums", out_len)?;
        let params = gpu_buffer::uniform(
            ctx,
            &ReduceParams {
                len: count as u32,
                _pad: [0; 3],
            },
        );
        let mut constants = elementwise_constants();
        constants.push(("FINAL", u32::from(last)));
        constants.push(("MEAN", u32::from(mean)));
        let key = PipelineKey::new(Kernel::ReducePairs, constants);
        dispatch(ctx, encoder, &key, grid, &[&params, &pairs, &out])?;
        if last {
            return Ok(out);
        }
        pairs = out;
        count = grid.groups as usize;
    }
}

/// Submits the recorded work and reads `len` f32 values back from `result`.
pub(crate) fn finish_and_read(
    ctx: &Context,
    encoder: wgpu::CommandEncoder,
    result: &wgpu::Buffer,
    len: usize,
) -> Result<Vec<f32>> {
    ctx.submit_and_wait(encoder.finish())?;
    ctx.read_f32(result, len)
}

/// A new command encoder.
pub(crate) fn encoder(ctx: &Context) -> wgpu::CommandEncoder {
    ctx.device()
        .create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("xent"),
        })
}

/// Finishes a loss whose first stage wrote either one value per item (`Reduction::None`, into
/// `stage_out`) or one (loss, weight) pair per workgroup of `grid`: reduces, submits and reads
/// the result back.
pub(crate) fn finish_loss(
    ctx: &Context,
    mut encoder: wgpu::CommandEncoder,
    stage_out: wgpu::Buffer,
    reduction: Reduction,
    items: usize,
    grid: Grid,
) -> Result<Loss> {
    match reduction {
        Reduction::None => Ok(Loss::Unreduced(finish_and_read(
            ctx, encoder, &stage_out, items,
        )?)),
        Reduction::Mean | Reduction::Sum => {
            let mean = reduction == Reduction::Mean;
            let result = reduce_pairs(ctx, &mut encoder, stage_out, grid.groups as usize, mean)?;
            Ok(Loss::Reduced(finish_and_read(ctx, encoder, &result, 1)?[0]))
        }
    }
}

/// Length of a first-stage output: one value per item, or a pair per workgroup.
pub(crate) fn stage_len(reduction: Reduction, items: usize, grid: Grid) -> usize {
    match reduction {
        Reduction::None => items,
        Reduction::Mean | Reduction::Sum => 2 * grid.groups as usize,
    }
}
