//! Building the work of a loss: pipelines, bind groups and dispatches are created once into a
//! [`Program`], which is then recorded into any number of command encoders.

use crate::context::Context;
use crate::error::Result;
use crate::gpu_buffer;
use crate::loss::Reduction;
use crate::plan::{self, Grid, RowPlan, ELEMENTWISE_ITEMS, WORKGROUP_SIZE};
use crate::shaders::{Kernel, PipelineKey};

/// One dispatch with everything bound, or a buffer to clear.
enum Step {
    Dispatch {
        pipeline: wgpu::ComputePipeline,
        bind_group: wgpu::BindGroup,
        grid: Grid,
    },
    Clear(wgpu::Buffer),
}

/// The work of one loss, in order, ready to record. Recording allocates nothing.
#[derive(Default)]
pub(crate) struct Program {
    steps: Vec<Step>,
}

impl Program {
    /// Adds a dispatch of `key` over `grid`, with `buffers` bound in binding order (see
    /// [`whole`]).
    pub(crate) fn push(
        &mut self,
        ctx: &Context,
        key: &PipelineKey,
        grid: Grid,
        buffers: &[wgpu::BufferBinding<'_>],
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
                resource: wgpu::BindingResource::Buffer(b.clone()),
            })
            .collect();
        let bind_group = ctx.device().create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(key.kernel.file()),
            layout: &ctx.bind_group_layout(key.kernel),
            entries: &entries,
        });
        self.steps.push(Step::Dispatch {
            pipeline,
            bind_group,
            grid,
        });
        Ok(())
    }

    /// Adds a clear of `buffer` to zero.
    pub(crate) fn clear(&mut self, buffer: &wgpu::Buffer) {
        self.steps.push(Step::Clear(buffer.clone()));
    }

    /// Records every step, in order: clears between compute passes, consecutive dispatches in
    /// one compute pass.
    pub(crate) fn record(&self, encoder: &mut wgpu::CommandEncoder) {
        let mut i = 0;
        while i < self.steps.len() {
            if let Step::Clear(buffer) = &self.steps[i] {
                encoder.clear_buffer(buffer, 0, None);
                i += 1;
                continue;
            }
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("xent"),
                timestamp_writes: None,
            });
            while let Some(Step::Dispatch {
                pipeline,
                bind_group,
                grid,
            }) = self.steps.get(i)
            {
                pass.set_pipeline(pipeline);
                pass.set_bind_group(0, bind_group, &[]);
                pass.dispatch_workgroups(grid.x, grid.y, 1);
                i += 1;
            }
        }
    }
}

/// A binding of a whole buffer.
pub(crate) fn whole(buffer: &wgpu::Buffer) -> wgpu::BufferBinding<'_> {
    buffer.as_entire_buffer_binding()
}

/// Override constants every row kernel takes; a `SUBGROUP` above 0 also builds the kernel
/// with subgroup shuffles.
pub(crate) fn row_constants(plan: &RowPlan) -> Vec<(&'static str, u32)> {
    vec![
        ("WG", WORKGROUP_SIZE),
        ("ROW_THREADS", plan.row_threads),
        ("SUBGROUP", plan.subgroup),
        ("SPLIT", u32::from(plan.split())),
        ("CACHED", plan.cache_slots),
        ("ROWS_PER_THREAD", plan.rows_per_thread),
    ]
}

/// A row kernel's `scratch` binding (see shaders/common/row_state.wgsl): one vec4 for the
/// mean's denominator, then room for the segment states of the largest of `chunks` of rows
/// when rows are split.
pub(crate) fn scratch(
    ctx: &Context,
    plan: &RowPlan,
    chunks: &[std::ops::Range<usize>],
) -> Result<wgpu::Buffer> {
    let states = if plan.split() {
        let rows = chunks.iter().map(|c| c.len()).max().unwrap_or(0);
        rows * plan.segments as usize
    } else {
        0
    };
    gpu_buffer::output(ctx, "xent row scratch", 4 * (1 + states))
}

/// Adds a row kernel's dispatch over a chunk of `rows` rows, `buffers` bound in binding order
/// (`scratch` last): for split rows, the segment states' dispatch first.
pub(crate) fn push_rows(
    ctx: &Context,
    program: &mut Program,
    plan: &RowPlan,
    key: &PipelineKey,
    rows: usize,
    buffers: &[wgpu::BufferBinding<'_>],
) -> Result<()> {
    let grid = plan.grid_for(rows, ctx.limits())?;
    if plan.split() {
        program.push(ctx, &key.segment_states(), grid, buffers)?;
    }
    program.push(ctx, key, grid, buffers)
}

/// Override constants every elementwise kernel takes.
pub(crate) fn elementwise_constants() -> Vec<(&'static str, u32)> {
    vec![("WG", WORKGROUP_SIZE), ("ITEMS", ELEMENTWISE_ITEMS)]
}

/// Override constants shared by the loss kernels: whether the loss is reduced, and whether
/// they write the gradient. (Mean or sum is a kernel parameter: one pipeline serves both.)
pub(crate) fn loss_constants(reduction: Reduction, grad: bool) -> [(&'static str, u32); 2] {
    [
        ("REDUCED", u32::from(reduction != Reduction::None)),
        ("GRAD", u32::from(grad)),
    ]
}

/// Mirrors `Params` of shaders/reduce_pairs.wgsl.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct ReduceParams {
    len: u32,
    _pad: [u32; 3],
}

/// Adds the deterministic reduction of `count` (loss, weight) pairs in `pairs` down to one
/// loss: the summed loss, or with `mean` the summed loss over the summed weight. Returns the
/// buffer whose first f32 will hold it: `into`, or a new one-element buffer.
pub(crate) fn reduce_pairs(
    ctx: &Context,
    program: &mut Program,
    pairs: wgpu::Buffer,
    count: usize,
    mean: bool,
    into: Option<&wgpu::Buffer>,
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
        let out = match (last, into) {
            (true, Some(into)) => into.clone(),
            (true, None) => gpu_buffer::output(ctx, "xent batch sum", 1)?,
            (false, _) => gpu_buffer::output(ctx, "xent partial sums", 2 * grid.groups as usize)?,
        };
        let params = gpu_buffer::uniform(
            ctx,
            &ReduceParams {
                len: count as u32,
                _pad: [0; 3],
            },
        )?;
        let mut constants = elementwise_constants();
        constants.push(("FINAL", u32::from(last)));
        constants.push(("MEAN", u32::from(mean)));
        let key = PipelineKey::new(Kernel::ReducePairs, constants);
        program.push(
            ctx,
            &key,
            grid,
            &[whole(&params), whole(&pairs), whole(&out)],
        )?;
        if last {
            return Ok(out);
        }
        pairs = out;
        count = grid.groups as usize;
    }
}
