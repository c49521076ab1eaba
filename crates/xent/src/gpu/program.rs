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
        /// What the bind group was made of, to make it again on other buffers.
        layout: wgpu::BindGroupLayout,
        label: &'static str,
        bound: Vec<Bound>,
    },
    Clear(wgpu::Buffer),
    Copy {
        from: (wgpu::Buffer, u64),
        to: (wgpu::Buffer, u64),
        bytes: u64,
    },
}

/// One binding of a dispatch: a buffer, the byte offset and the size bound.
#[derive(Clone)]
struct Bound {
    buffer: wgpu::Buffer,
    offset: u64,
    size: Option<wgpu::BufferSize>,
}

/// A buffer of a program replaced by another: every binding, clear and copy of `old` moves
/// to `new`, `shift` bytes further on (a tensor of the same layout at another offset).
pub(crate) struct Swap<'a> {
    pub(crate) old: &'a wgpu::Buffer,
    pub(crate) new: &'a wgpu::Buffer,
    pub(crate) shift: i64,
}

impl Swap<'_> {
    /// Where `(buffer, offset)` lies after the swaps: the first swap of that buffer applies.
    fn place(swaps: &[Swap<'_>], buffer: &wgpu::Buffer, offset: u64) -> (wgpu::Buffer, u64) {
        match swaps.iter().find(|s| s.old == buffer) {
            Some(s) => (s.new.clone(), offset.saturating_add_signed(s.shift)),
            None => (buffer.clone(), offset),
        }
    }
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
        let bound: Vec<Bound> = buffers
            .iter()
            .map(|b| Bound {
                buffer: b.buffer.clone(),
                offset: b.offset,
                size: b.size,
            })
            .collect();
        let bind_group = bind_group(gpu, pipeline.label, &pipeline.layout, &bound);
        self.steps.push(Step::Dispatch {
            pipeline: pipeline.pipeline.clone(),
            bind_group,
            grid,
            layout: pipeline.layout.clone(),
            label: pipeline.label,
            bound,
        });
    }

    /// The end of the last byte of `buffer` the work binds, clears or copies (0 when it
    /// does not use it).
    pub(crate) fn reach(&self, buffer: &wgpu::Buffer) -> u64 {
        let ends = self.steps.iter().flat_map(|step| match step {
            Step::Dispatch { bound, .. } => bound
                .iter()
                .filter(|b| b.buffer == *buffer)
                .map(|b| b.size.map_or(buffer.size(), |s| b.offset + s.get()))
                .collect::<Vec<u64>>(),
            Step::Clear(b) if b == buffer => vec![buffer.size()],
            Step::Copy { from, to, bytes } => [from, to]
                .iter()
                .filter(|(b, _)| b == buffer)
                .map(|(_, at)| at + bytes)
                .collect(),
            Step::Clear(_) => Vec::new(),
        });
        ends.max().unwrap_or(0)
    }

    /// Moves the work onto other buffers (see [`Swap`]): the bind groups that bound a swapped
    /// buffer are made again, clears and copies follow. Creates bind groups and nothing else.
    /// A binding that would reach past its new buffer's end is shortened to it (the caller
    /// has checked that the tensor itself fits).
    pub(crate) fn swap(&mut self, gpu: &Gpu, swaps: &[Swap<'_>]) {
        let moved = |buffer: &wgpu::Buffer| swaps.iter().any(|s| s.old == buffer);
        for step in &mut self.steps {
            match step {
                Step::Dispatch {
                    bind_group,
                    layout,
                    label,
                    bound,
                    ..
                } => {
                    if !bound.iter().any(|b| moved(&b.buffer)) {
                        continue;
                    }
                    for b in bound.iter_mut() {
                        let (buffer, offset) = Swap::place(swaps, &b.buffer, b.offset);
                        let room = buffer.size().saturating_sub(offset);
                        b.size = b
                            .size
                            .map(|s| s.min(wgpu::BufferSize::new(room).unwrap_or(s)));
                        (b.buffer, b.offset) = (buffer, offset);
                    }
                    *bind_group = self::bind_group(gpu, label, layout, bound);
                }
                Step::Clear(buffer) => *buffer = Swap::place(swaps, buffer, 0).0,
                Step::Copy { from, to, .. } => {
                    *from = Swap::place(swaps, &from.0, from.1);
                    *to = Swap::place(swaps, &to.0, to.1);
                }
            }
        }
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
                ..
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

/// A bind group of `bound`, in binding order.
fn bind_group(
    gpu: &Gpu,
    label: &str,
    layout: &wgpu::BindGroupLayout,
    bound: &[Bound],
) -> wgpu::BindGroup {
    let entries: Vec<wgpu::BindGroupEntry> = bound
        .iter()
        .enumerate()
        .map(|(i, b)| wgpu::BindGroupEntry {
            binding: i as u32,
            resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                buffer: &b.buffer,
                offset: b.offset,
                size: b.size,
            }),
        })
        .collect();
    gpu.device().create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some(label),
        layout,
        entries: &entries,
    })
}

/// A binding of a whole buffer.
pub(crate) fn whole(buffer: &wgpu::Buffer) -> wgpu::BufferBinding<'_> {
    buffer.as_entire_buffer_binding()
}
