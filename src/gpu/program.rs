//! [`Program`]: dispatches with everything bound (and buffers to clear), created once and
//! recorded into any number of command encoders without allocating.

use crate::gpu::device::Gpu;
use crate::gpu::pipelines::Pipeline;
use crate::plan::Grid;

/// One dispatch with everything bound, or a buffer to clear.
enum Step {
    Dispatch {
        pipeline: wgpu::ComputePipeline,
        bind_group: wgpu::BindGroup,
        grid: Grid,
    },
    Clear(wgpu::Buffer),
}

/// Work in order, ready to record. Recording allocates nothing.
#[derive(Default)]
pub(crate) struct Program {
    steps: Vec<Step>,
}

impl Program {
    /// Adds a dispatch of `pipeline` over `grid`, with `buffers` bound in binding order.
    pub(crate) fn push(
        &mut self,
        gpu: &Gpu,
        pipeline: &Pipeline,
        grid: Grid,
        buffers: &[wgpu::BufferBinding<'_>],
    ) {
        if grid.groups == 0 {
            return;
        }
        let entries: Vec<wgpu::BindGroupEntry> = buffers
            .iter()
            .enumerate()
            .map(|(i, b)| wgpu::BindGroupEntry {
                binding: i as u32,
                resource: wgpu::BindingResource::Buffer(b.clone()),
            })
            .collect();
        let bind_group = gpu.device().create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(pipeline.label),
            layout: &pipeline.layout,
            entries: &entries,
        });
        self.steps.push(Step::Dispatch {
            pipeline: pipeline.pipeline.clone(),
            bind_group,
            grid,
        });
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
