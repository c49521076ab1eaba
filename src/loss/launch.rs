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

/// A new command encoder.
pub(crate) fn encoder(ctx: &Context) -> wgpu::CommandEncoder {
    ctx.device()
        .create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("xent"),
        })
}

/// What a launch that computes the gradient needs.
pub(crate) struct GradRequest<'a> {
    /// The upstream gradient: one value for a reduced loss, one per item for `None`.
    pub(crate) upstream: &'a [f32],
    /// The gradient's length (the input's).
    pub(crate) len: usize,
    /// The input buffer, when the kernel writes the gradient over it.
    pub(crate) in_place: Option<&'a wgpu::Buffer>,
}

/// The buffers a loss kernel writes: its first-stage output (one loss per item, or one
/// (loss, weight) pair per workgroup) and, when the gradient is asked for, the gradient.
pub(crate) struct LossOutputs {
    /// One value per item (`Reduction::None`) or a pair per workgroup.
    pub(crate) stage: wgpu::Buffer,
    /// The gradient and its length; `None` for a forward-only launch.
    pub(crate) grad: Option<(wgpu::Buffer, usize)>,
    /// The upstream gradient (a one-element placeholder for a forward-only launch).
    pub(crate) upstream: wgpu::Buffer,
    /// Where the gradient is bound: the gradient buffer, or a placeholder when there is none
    /// or it is written in place.
    pub(crate) grad_binding: wgpu::Buffer,
}

impl LossOutputs {
    /// Allocates the outputs of a loss over `items` items laid out on `grid`.
    pub(crate) fn new(
        ctx: &Context,
        reduction: Reduction,
        items: usize,
        grid: Grid,
        grad: Option<GradRequest<'_>>,
    ) -> Result<LossOutputs> {
        let stage = gpu_buffer::output(ctx, "xent loss", stage_len(reduction, items, grid))?;
        let upstream = gpu_buffer::upload(
            ctx,
            "upstream",
            grad.as_ref().map_or(&[][..], |g| g.upstream),
        )?;
        let placeholder = || gpu_buffer::output(ctx, "xent gradient placeholder", 1);
        let (grad, grad_binding) = match grad {
            None => (None, placeholder()?),
            Some(GradRequest {
                len,
                in_place: Some(input),
                ..
            }) => (Some((input.clone(), len)), placeholder()?),
            Some(GradRequest {
                len,
                in_place: None,
                ..
            }) => {
                let buffer = gpu_buffer::output(ctx, "xent gradient", len)?;
                (Some((buffer.clone(), len)), buffer)
            }
        };
        Ok(LossOutputs {
            stage,
            grad,
            upstream,
            grad_binding,
        })
    }

    /// Reduces (if asked), submits, and reads the loss and the gradient back.
    pub(crate) fn finish(
        self,
        ctx: &Context,
        mut encoder: wgpu::CommandEncoder,
        reduction: Reduction,
        items: usize,
        grid: Grid,
    ) -> Result<(Loss, Option<Vec<f32>>)> {
        let loss = match reduction {
            Reduction::None => {
                ctx.submit_and_wait(encoder.finish())?;
                Loss::Unreduced(ctx.read_f32(&self.stage, items)?)
            }
            Reduction::Mean | Reduction::Sum => {
                let mean = reduction == Reduction::Mean;
                let result =
                    reduce_pairs(ctx, &mut encoder, self.stage, grid.groups as usize, mean)?;
                ctx.submit_and_wait(encoder.finish())?;
                Loss::Reduced(ctx.read_f32(&result, 1)?[0])
            }
        };
        let grad = match &self.grad {
            Some((buffer, len)) => Some(ctx.read_f32(buffer, *len)?),
            None => None,
        };
        Ok((loss, grad))
    }
}

/// Length of a first-stage output: one value per item, or a pair per workgroup.
fn stage_len(reduction: Reduction, items: usize, grid: Grid) -> usize {
    match reduction {
        Reduction::None => items,
        Reduction::Mean | Reduction::Sum => 2 * grid.groups as usize,
    }
}

/// Override constants shared by the loss kernels: reduction and gradient.
pub(crate) fn loss_constants(reduction: Reduction, grad: bool) -> Vec<(&'static str, u32)> {
    vec![
        ("REDUCTION", reduction.shader_code()),
        ("GRAD", u32::from(grad)),
    ]
}
