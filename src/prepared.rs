//! [`PreparedLoss`]: a loss (and optionally its gradient) set up once on GPU buffers, recorded
//! into any number of command encoders without allocating, and read back only when asked.

use crate::context::Context;
use crate::error::{Error, Result};
use crate::gpu_buffer;
use crate::loss::launch::{self, Program};
use crate::loss::{Loss, Reduction};
use crate::plan::Grid;

/// Whether a prepared loss also computes the gradient, and where it goes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum GradMode {
    /// The loss only.
    #[default]
    Off,
    /// The gradient into a buffer xent owns ([`PreparedLoss::grad_buffer`]).
    Separate,
    /// The gradient written over the input (logits) buffer: one (N, C) buffer instead of two,
    /// what large vocabularies need. The input is gone after the work runs. Categorical
    /// cross-entropy only.
    InPlace,
}

/// A loss prepared on GPU buffers: pipelines compiled, buffers and bind groups created.
///
/// [`record`](Self::record) adds its work to a command encoder (allocating nothing, reading
/// nothing back), so it can run inside a caller's pipeline every step; [`read_loss`](
/// Self::read_loss) and [`read_grad`](Self::read_grad) copy results back when asked.
/// The upstream gradient starts at ones; [`set_upstream`](Self::set_upstream) changes it.
pub struct PreparedLoss {
    ctx: Context,
    program: Program,
    reduction: Reduction,
    loss: wgpu::Buffer,
    loss_len: usize,
    grad: Option<(wgpu::Buffer, usize)>,
    upstream: wgpu::Buffer,
    upstream_len: usize,
}

/// The buffers a loss kernel binds besides its inputs.
pub(crate) struct LossBuffers {
    /// One loss per item (`Reduction::None`) or a (loss, weight) pair per workgroup.
    pub(crate) stage: wgpu::Buffer,
    /// The upstream gradient (ones to start with; one placeholder value without a gradient).
    pub(crate) upstream: wgpu::Buffer,
    /// What the kernel's gradient binding gets: the gradient buffer, or a placeholder when
    /// there is none or it is written in place.
    pub(crate) grad_binding: wgpu::Buffer,
    grad: Option<(wgpu::Buffer, usize)>,
    upstream_len: usize,
    items: usize,
    reduction: Reduction,
    grid: Grid,
}

impl LossBuffers {
    /// Allocates the buffers of a loss over `items` items (rows or elements) whose kernel runs
    /// on `grid`; the gradient, if any, has `grad_len` values, and `input` is the buffer an
    /// in-place gradient overwrites.
    pub(crate) fn new(
        ctx: &Context,
        reduction: Reduction,
        items: usize,
        grid: Grid,
        mode: GradMode,
        grad_len: usize,
        input: &wgpu::Buffer,
    ) -> Result<LossBuffers> {
        let stage_len = match reduction {
            Reduction::None => items,
            Reduction::Mean | Reduction::Sum => 2 * grid.groups as usize,
        };
        let stage = gpu_buffer::output(ctx, "xent loss", stage_len)?;
        let upstream_len = match (mode, reduction) {
            (GradMode::Off, _) => 0,
            (_, Reduction::None) => items,
            _ => 1,
        };
        let upstream = gpu_buffer::upload(ctx, "xent upstream", &vec![1.0f32; upstream_len])?;
        let placeholder = || gpu_buffer::output(ctx, "xent gradient placeholder", 1);
        let (grad, grad_binding) = match mode {
            GradMode::Off => (None, placeholder()?),
            GradMode::InPlace => (Some((input.clone(), grad_len)), placeholder()?),
            GradMode::Separate => {
                let buffer = gpu_buffer::output(ctx, "xent gradient", grad_len)?;
                (Some((buffer.clone(), grad_len)), buffer)
            }
        };
        Ok(LossBuffers {
            stage,
            upstream,
            grad_binding,
            grad,
            upstream_len,
            items,
            reduction,
            grid,
        })
    }

    /// Adds the batch reduction (for `Mean` and `Sum`) and wraps everything up.
    pub(crate) fn finish(self, ctx: &Context, mut program: Program) -> Result<PreparedLoss> {
        let (loss, loss_len) = match self.reduction {
            Reduction::None => (self.stage, self.items),
            Reduction::Mean | Reduction::Sum => {
                let mean = self.reduction == Reduction::Mean;
                let groups = self.grid.groups as usize;
                let out = launch::reduce_pairs(ctx, &mut program, self.stage, groups, mean)?;
                (out, 1)
            }
        };
        Ok(PreparedLoss {
            ctx: ctx.clone(),
            program,
            reduction: self.reduction,
            loss,
            loss_len,
            grad: self.grad,
            upstream: self.upstream,
            upstream_len: self.upstream_len,
        })
    }
}

impl Context {
    /// The host path of every loss: inside error scopes, `prepare` uploads the inputs and
    /// prepares the loss; then the upstream gradient is set, the work runs, and the loss and
    /// gradient are read back.
    pub(crate) fn run_host(
        &self,
        upstream: Option<&[f32]>,
        prepare: impl FnOnce() -> Result<PreparedLoss>,
    ) -> Result<(Loss, Option<Vec<f32>>)> {
        self.checked(|| {
            let prepared = prepare()?;
            if let Some(upstream) = upstream {
                prepared.set_upstream(upstream)?;
            }
            let mut encoder =
                self.device()
                    .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                        label: Some("xent"),
                    });
            prepared.record(&mut encoder);
            let mut sources = vec![(&prepared.loss, prepared.loss_len)];
            if let Some((grad, len)) = &prepared.grad {
                sources.push((grad, *len));
            }
            let mut values = self.submit_and_read(encoder, &sources)?.into_iter();
            let loss = prepared.loss_from(values.next().unwrap_or_default());
            Ok((loss, values.next()))
        })
    }
}

impl PreparedLoss {
    /// Records the loss (and gradient) kernels into `encoder`, as one compute pass.
    pub fn record(&self, encoder: &mut wgpu::CommandEncoder) {
        self.program.record(encoder);
    }

    /// Records, submits and waits for the work (a convenience for callers without their own
    /// encoder).
    pub fn run(&self) -> Result<()> {
        self.ctx.checked(|| {
            let mut encoder =
                self.ctx
                    .device()
                    .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                        label: Some("xent"),
                    });
            self.record(&mut encoder);
            self.ctx.submit_and_wait(encoder.finish())
        })
    }

    /// The f32 loss buffer: one value for `Mean` and `Sum`, one per row or element for `None`.
    pub fn loss_buffer(&self) -> &wgpu::Buffer {
        &self.loss
    }

    /// The f32 gradient buffer (the input's shape), or `None` without a gradient. For
    /// [`GradMode::InPlace`] it is the input buffer.
    pub fn grad_buffer(&self) -> Option<&wgpu::Buffer> {
        self.grad.as_ref().map(|(b, _)| b)
    }

    /// Sets the upstream gradient the gradient is scaled by: one value for `Mean` and `Sum`,
    /// one per row (categorical) or element (binary) for `None`. Written through the queue, so
    /// it takes effect for work submitted afterwards.
    pub fn set_upstream(&self, upstream: &[f32]) -> Result<()> {
        if self.grad.is_none() {
            return Err(Error::InvalidOption {
                name: "upstream",
                value: format!("{} values", upstream.len()),
                reason: "this loss was prepared without a gradient (GradMode::Off)".into(),
            });
        }
        if upstream.len() != self.upstream_len {
            return Err(Error::ShapeMismatch {
                what: "upstream",
                expected: self.upstream_len,
                got: upstream.len(),
                hint: format!("the upstream gradient of a {:?} loss", self.reduction),
            });
        }
        self.ctx
            .queue()
            .write_buffer(&self.upstream, 0, bytemuck::cast_slice(upstream));
        Ok(())
    }

    /// Reads the loss back (waits for submitted work).
    pub fn read_loss(&self) -> Result<Loss> {
        Ok(self.loss_from(self.ctx.read_f32(&self.loss, self.loss_len)?))
    }

    /// The loss from the values of its buffer.
    fn loss_from(&self, values: Vec<f32>) -> Loss {
        match self.reduction {
            Reduction::None => Loss::Unreduced(values),
            Reduction::Mean | Reduction::Sum => {
                Loss::Reduced(values.first().copied().unwrap_or(f32::NAN))
            }
        }
    }

    /// Reads the gradient back (waits for submitted work); `None` without a gradient.
    pub fn read_grad(&self) -> Result<Option<Vec<f32>>> {
        match &self.grad {
            Some((buffer, len)) => Ok(Some(self.ctx.read_f32(buffer, *len)?)),
            None => Ok(None),
        }
    }
}
