//! [`Program`]: dispatches with everything bound (and buffers to clear or copy between),
//! created once and recorded into any number of command encoders without allocating.

use crate::gpu::device::Gpu;
use crate::gpu::pipelines::Pipeline;
use crate::plan::Grid;

/// One dispatch with everything bound, a buffer to clear, or bytes to copy.
enum Step {
    Dispatch {
        pipeline: wgpu::ComputePipeline,
        bind_group: wgpu::BindGroup,
        grid: Grid,
    },
    Clear(wgpu::Buffer),
    Copy {
        from: (wgpu::Buffer, u64),
        to: (wgpu::Buffer, u64),
        bytes: u64,
    },
}

/// Work in order, ready to record. Recording allocates nothing.
///
/// Long work may be cut into pieces ([`cut`](Self::cut)) that a host run submits and waits
/// for one after another ([`record_piece`](Self::record_piece)), so that no single
/// submission runs for long (a software adapter can take minutes over what a GPU does in
/// milliseconds, and waits are bounded).
#[derive(Default)]
pub(crate) struct Program {
    steps: Vec<Step>,
    /// Where each piece but the last ends (step indices, increasing).
    cuts: Vec<usize>,
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

    /// Adds a copy of `bytes` bytes (a multiple of 4, as both offsets) from `from` (a buffer
    /// and a byte offset) to `to`.
    pub(crate) fn copy(
        &mut self,
        (from, from_offset): (&wgpu::Buffer, u64),
        (to, to_offset): (&wgpu::Buffer, u64),
        bytes: u64,
    ) {
        if bytes == 0 {
            return;
        }
        self.steps.push(Step::Copy {
            from: (from.clone(), from_offset),
            to: (to.clone(), to_offset),
            bytes,
        });
    }

    /// Ends a piece here (nothing when the piece would be empty).
    pub(crate) fn cut(&mut self) {
        let len = self.steps.len();
        if len > self.cuts.last().copied().unwrap_or(0) {
            self.cuts.push(len);
        }
    }

    /// How many pieces the work is in (at least one).
    pub(crate) fn pieces(&self) -> usize {
        let trailing = self.cuts.last() == Some(&self.steps.len());
        self.cuts.len() + usize::from(!trailing)
    }

    /// Records piece `piece` (of [`pieces`](Self::pieces)).
    pub(crate) fn record_piece(&self, encoder: &mut wgpu::CommandEncoder, piece: usize) {
        let start = match piece {
            0 => 0,
            p => self.cuts.get(p - 1).copied().unwrap_or(self.steps.len()),
        };
        let end = self.cuts.get(piece).copied().unwrap_or(self.steps.len());
        self.record_steps(encoder, start..end);
    }

    /// Records every step, in order: clears and copies between compute passes, consecutive
    /// dispatches in one compute pass.
    pub(crate) fn record(&self, encoder: &mut wgpu::CommandEncoder) {
        self.record_steps(encoder, 0..self.steps.len());
    }

    /// Records the steps `range`, as [`record`](Self::record).
    fn record_steps(&self, encoder: &mut wgpu::CommandEncoder, range: std::ops::Range<usize>) {
        let mut i = range.start;
        while i < range.end {
            match &self.steps[i] {
                Step::Clear(buffer) => {
                    encoder.clear_buffer(buffer, 0, None);
                    i += 1;
                    continue;
                }
                Step::Copy { from, to, bytes } => {
                    encoder.copy_buffer_to_buffer(&from.0, from.1, &to.0, to.1, *bytes);
                    i += 1;
                    continue;
                }
                Step::Dispatch { .. } => {}
            }
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("xent"),
                timestamp_writes: None,
            });
            while let Some(Step::Dispatch {
                pipeline,
                bind_group,
                grid,
            }) = self.steps[..range.end].get(i)
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
