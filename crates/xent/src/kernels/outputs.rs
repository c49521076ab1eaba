//! The buffers a loss kernel binds besides its inputs: the per-item losses or per-workgroup
//! pairs, the upstream gradient and the gradient; and how a loss program is finished into a
//! [`PreparedLoss`].

use crate::dtype::{Dtype, Types};
use crate::error::{Error, Result};
use crate::gpu::buffers;
use crate::gpu::program::Program;
use crate::gpu::tensor::GpuTensor;
use crate::gpu::Gpu;
use crate::kernels::launch::{self, Named};
use crate::loss::GradMode;
use crate::loss::Reduction;
use crate::plan::Grid;
use crate::prepared::{GradOut, PreparedLoss, RunStamp};

/// The buffers a loss kernel binds besides its inputs.
pub(crate) struct LossBuffers {
    /// One loss per item (`Reduction::None`) or a (loss, weight) pair per workgroup.
    pub(crate) stage: wgpu::Buffer,
    /// The upstream gradient (ones to start with; one placeholder value without a gradient).
    pub(crate) upstream: wgpu::Buffer,
    /// What the kernel's gradient binding gets: the gradient buffer, or a placeholder when
    /// there is none or it is written in place.
    pub(crate) grad_binding: wgpu::Buffer,
    /// Element types of the kernel's input and gradient.
    pub(crate) types: Types,
    grad: Option<GradOut>,
    /// Whether `grad_binding` is the gradient (not a placeholder).
    grad_bound: bool,
    /// A bf16 gradient is built with atomic ORs and must start at zero.
    clear_grad: bool,
    upstream_len: usize,
    items: usize,
    reduction: Reduction,
    grid: Grid,
}

impl LossBuffers {
    /// Allocates the buffers of a loss over `items` items (rows or elements) whose kernel runs
    /// on `grid`; the gradient, if any, has `grad_len` values, and `input` is the tensor an
    /// in-place gradient overwrites (and whose element type `SeparateAsInput` takes).
    pub(crate) fn new(
        gpu: &Gpu,
        reduction: Reduction,
        items: usize,
        grid: Grid,
        mode: GradMode,
        grad_len: usize,
        input: &GpuTensor<'_>,
    ) -> Result<LossBuffers> {
        let grad_dtype = match mode {
            GradMode::Off | GradMode::Separate => Dtype::F32,
            GradMode::SeparateAsInput | GradMode::InPlace => input.dtype,
        };
        if mode == GradMode::InPlace && input.dtype == Dtype::Bf16 {
            return Err(Error::UnsupportedDtype {
                what: "an in-place gradient",
                dtype: Dtype::Bf16,
                reason: "two threads would write the halves of one word; use \
                         GradMode::SeparateAsInput"
                    .into(),
            });
        }
        let f16 = input.dtype == Dtype::F16 || grad_dtype == Dtype::F16;
        if f16 && !gpu.device().features().contains(wgpu::Features::SHADER_F16) {
            return Err(Error::UnsupportedAdapter {
                adapter: gpu.info().name.clone(),
                reason: "f16 needs wgpu::Features::SHADER_F16, which this device lacks".into(),
            });
        }
        let types = Types {
            input: input.dtype,
            grad: grad_dtype,
        };
        let stage_len = match reduction {
            Reduction::None => items,
            Reduction::Mean | Reduction::Sum => 2 * grid.groups as usize,
        };
        let stage = buffers::output(gpu, "xent loss", stage_len)?;
        let upstream_len = match (mode, reduction) {
            (GradMode::Off, _) => 0,
            (_, Reduction::None) => items,
            _ => 1,
        };
        let upstream = buffers::upload(gpu, "xent upstream", &vec![1.0f32; upstream_len])?;
        let placeholder = || buffers::output(gpu, "xent gradient placeholder", 1);
        let (grad, grad_binding) = match mode {
            GradMode::Off => (None, placeholder()?),
            GradMode::InPlace => {
                let out = GradOut {
                    buffer: input.buffer.clone(),
                    offset: 0,
                    len: grad_len,
                    dtype: grad_dtype,
                    packed: input.offset == 0 && input.row_stride.is_none(),
                };
                (Some(out), placeholder()?)
            }
            GradMode::Separate | GradMode::SeparateAsInput => {
                let words = (grad_len * grad_dtype.size() as usize).div_ceil(4);
                let buffer = buffers::output(gpu, "xent gradient", words)?;
                let out = GradOut {
                    buffer: buffer.clone(),
                    offset: 0,
                    len: grad_len,
                    dtype: grad_dtype,
                    packed: true,
                };
                (Some(out), buffer)
            }
        };
        let clear_grad = grad_dtype == Dtype::Bf16 && mode != GradMode::Off;
        Ok(LossBuffers {
            stage,
            upstream,
            grad_binding,
            types,
            grad,
            grad_bound: matches!(mode, GradMode::Separate | GradMode::SeparateAsInput),
            clear_grad,
            upstream_len,
            items,
            reduction,
            grid,
        })
    }

    /// The bytes one item takes in each of these buffers that is cut into chunks (see
    /// [`crate::plan::chunks`]), with `grad_per_item` gradient values per item.
    pub(crate) fn item_bytes(&self, grad_per_item: usize) -> Vec<u64> {
        let mut bytes = Vec::new();
        if self.reduction == Reduction::None {
            bytes.push(4);
        }
        if self.upstream_len == self.items && self.items > 0 {
            bytes.push(4);
        }
        if self.grad_bound {
            bytes.push(self.types.grad.size() * grad_per_item as u64);
        }
        bytes
    }

    /// The bindings of the loss, upstream gradient and gradient for the chunk `items` of
    /// the items, with `grad_per_item` gradient values per item: windows over the chunk's
    /// part of what is per item, the whole buffer otherwise (pairs, scalars, placeholders).
    /// Chunks from [`crate::plan::chunks`] with [`item_bytes`](Self::item_bytes) as the owned
    /// bytes start where every window is aligned.
    pub(crate) fn chunk(
        &self,
        items: std::ops::Range<usize>,
        grad_per_item: usize,
    ) -> [Named<'_>; 3] {
        let part = |buffer, per_item| part_of(buffer, &items, per_item);
        let out = match self.reduction {
            Reduction::None => part(&self.stage, 4),
            Reduction::Mean | Reduction::Sum => self.stage.as_entire_buffer_binding(),
        };
        let upstream = if self.upstream_len == self.items && self.items > 0 {
            part(&self.upstream, 4)
        } else {
            self.upstream.as_entire_buffer_binding()
        };
        let grad = if self.grad_bound {
            part(
                &self.grad_binding,
                self.types.grad.size() * grad_per_item as u64,
            )
        } else {
            self.grad_binding.as_entire_buffer_binding()
        };
        [("out", out), ("upstream", upstream), ("grad_data", grad)]
    }

    /// A program to push the loss's dispatches to: it starts by clearing a bf16 gradient.
    /// Makes room for the (loss, weight) pairs of `groups` workgroups, for a kernel whose
    /// chunks are not whole workgroups of one grid (each chunk's grid then starts its own
    /// pairs, counted once the chunks are known).
    pub(crate) fn set_groups(&mut self, gpu: &Gpu, groups: u32) -> Result<()> {
        if self.reduction != Reduction::None && groups != self.grid.groups {
            self.stage = buffers::output(gpu, "xent loss", 2 * groups as usize)?;
            self.grid.groups = groups;
        }
        Ok(())
    }

    pub(crate) fn program(&self) -> Program {
        let mut program = Program::default();
        if self.clear_grad {
            program.clear(&self.grad_binding);
        }
        program
    }

    /// Adds the batch reduction (for `Mean` and `Sum`) and wraps everything up.
    pub(crate) fn finish(self, gpu: &Gpu, mut program: Program) -> Result<PreparedLoss> {
        let (loss, loss_len) = match self.reduction {
            Reduction::None => (self.stage, self.items),
            Reduction::Mean | Reduction::Sum => {
                let mean = self.reduction == Reduction::Mean;
                let groups = self.grid.groups as usize;
                let out = launch::reduce_pairs(gpu, &mut program, self.stage, groups, mean, None)?;
                (out, 1)
            }
        };
        Ok(PreparedLoss {
            gpu: gpu.clone(),
            program,
            reduction: self.reduction,
            loss,
            loss_at: 0,
            loss_len,
            grad: self.grad,
            upstream: self.upstream,
            upstream_len: self.upstream_len,
            lse: None,
            status: None,
            stamp: RunStamp::new(gpu)?,
            binds: None,
        })
    }
}

/// The binding of the part of `buffer` that holds `items`, `per_item` bytes each.
fn part_of<'b>(
    buffer: &'b wgpu::Buffer,
    items: &std::ops::Range<usize>,
    per_item: u64,
) -> wgpu::BufferBinding<'b> {
    let start = items.start as u64 * per_item;
    let len = (items.len() as u64 * per_item).max(4).next_multiple_of(4);
    wgpu::BufferBinding {
        buffer,
        offset: start,
        size: wgpu::BufferSize::new(len.min(buffer.size() - start)),
    }
}
