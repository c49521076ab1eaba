//! Re-binding a prepared loss: the same shape on other buffers, or at other offsets, without
//! compiling or allocating anything but bind groups; and outputs in the caller's buffers.

use crate::dtype::Dtype;
use crate::error::{Error, Result};
use crate::gpu::program::Swap;
use crate::gpu::tensor::GpuTensor;
use crate::loss::bound::{placed, Placed};
use crate::loss::{GpuInput, GpuTargets, GradMode};
use crate::prepared::PreparedLoss;

/// The swap moving `old` to `new` (a tensor of the same layout): an error unless the new
/// tensor's offset differs from the old one's by a multiple of `align` and its buffer holds
/// every byte the work reaches (`reach`: the end of the last byte used in the old buffer).
fn swap_for<'a>(old: &'a Placed, new: &'a Placed, align: u64, reach: u64) -> Result<Swap<'a>> {
    let what = old.what;
    if (new.row_stride, new.dtype) != (old.row_stride, old.dtype) {
        return Err(Error::InvalidLayout {
            what,
            reason: format!(
                "it was prepared as {:?} with a row stride of {:?}, and is bound as {:?} with \
                 {:?}: a prepared loss re-binds tensors of the same layout (prepare again for \
                 another)",
                old.dtype, old.row_stride, new.dtype, new.row_stride
            ),
        });
    }
    let shift = i64::try_from(new.offset).unwrap_or(i64::MAX)
        - i64::try_from(old.offset).unwrap_or(i64::MAX);
    if shift.unsigned_abs() % align != 0 {
        return Err(Error::InvalidLayout {
            what,
            reason: format!(
                "it was prepared at byte {} and is bound at byte {}: re-binding keeps a \
                 tensor's offset modulo the adapter's storage-offset alignment ({align} bytes), \
                 as its kernels' element offsets are set at prepare time (prepare again for \
                 this offset)",
                old.offset, new.offset
            ),
        });
    }
    if !new.buffer.usage().contains(wgpu::BufferUsages::STORAGE) {
        return Err(Error::BufferUsage {
            what,
            needed: "STORAGE",
            why: "every buffer a kernel binds needs",
        });
    }
    let needed = reach.saturating_add_signed(shift);
    if needed > new.buffer.size() {
        return Err(Error::BufferTooSmall {
            what,
            needed,
            size: new.buffer.size(),
        });
    }
    Ok(Swap {
        old: &old.buffer,
        new: &new.buffer,
        shift,
    })
}

impl PreparedLoss {
    /// Binds the prepared work to other buffers of the same shape: `input` and `targets`
    /// are tensors of the layout it was prepared on (shape, gradient mode, element type and
    /// row stride), in any buffers and at offsets that differ from the prepared ones by a
    /// multiple of the device's `min_storage_buffer_offset_alignment` (256 bytes on most
    /// adapters). Nothing is compiled or allocated but bind groups: what a framework whose
    /// allocator hands out new buffers every step calls instead of preparing again. Results
    /// are those of a fresh prepare on the new buffers, bit for bit.
    ///
    /// ```
    /// use xent::wgpu::{self, util::DeviceExt};
    /// use xent::{Context, CrossEntropy, GpuInput, GpuTargets, GpuTensor, GradMode};
    ///
    /// let ctx = Context::new()?;
    /// let buffer = |contents: &[u8]| {
    ///     ctx.device().create_buffer_init(&wgpu::util::BufferInitDescriptor {
    ///         label: None,
    ///         contents,
    ///         usage: wgpu::BufferUsages::STORAGE,
    ///     })
    /// };
    /// let labels = buffer(xent::bytemuck::cast_slice(&[1i32]));
    /// let first = buffer(xent::bytemuck::cast_slice(&[0.0f32, 0.0]));
    /// let input = GpuInput::new(&first, [1, 2]).with_grad(GradMode::Separate);
    /// let mut prepared = ctx.prepare(&CrossEntropy::default(), input, GpuTargets::indices(&labels))?;
    /// // The next step's logits, 256 bytes into another buffer.
    /// let mut values = vec![0.0f32; 64];
    /// values.extend([2.0f32, 0.0]);
    /// let second = buffer(xent::bytemuck::cast_slice(&values));
    /// let logits = GpuTensor::new(&second).at(256);
    /// let before = ctx.buffers_created();
    /// prepared.bind(GpuInput::new(logits, [1, 2]).with_grad(GradMode::Separate), GpuTargets::indices(&labels))?;
    /// prepared.run()?;
    /// assert_eq!(ctx.buffers_created(), before);
    /// let want = (1.0 + 2f32.exp()).ln(); // -log softmax([2, 0])[1]
    /// assert!((prepared.read_loss()?.scalar().unwrap() - want).abs() < 1e-6);
    /// # Ok::<(), xent::Error>(())
    /// ```
    ///
    /// Errors: [`Error::Misuse`] for a loss prepared by xent's host path, or other shapes or
    /// gradient modes; [`Error::InvalidLayout`] for another layout or an offset that does not
    /// keep the alignment; [`Error::BufferTooSmall`] and [`Error::BufferUsage`] as
    /// [`Context::prepare`](crate::Context::prepare). Nothing changes on an error.
    pub fn bind<'a>(
        &mut self,
        input: GpuInput<'a>,
        targets: impl Into<GpuTargets<'a>>,
    ) -> Result<()> {
        let targets = targets.into();
        let Some(binds) = &self.binds else {
            return Err(Error::Misuse {
                what: "bind",
                reason: "only the categorical and binary losses of Context::prepare re-bind".into(),
            });
        };
        if input.shape != binds.shape || input.grad != binds.grad {
            return Err(Error::Misuse {
                what: "bind",
                reason: format!(
                    "the loss was prepared on shape {:?} with {:?}, and is bound to {:?} with \
                     {:?}: prepare again for another shape or gradient mode",
                    binds.shape, binds.grad, input.shape, input.grad
                ),
            });
        }
        let new = placed(&input, &targets);
        if new.len() != binds.tensors.len() {
            return Err(Error::Misuse {
                what: "bind",
                reason: "the targets are not of the kind the loss was prepared with".into(),
            });
        }
        if input.grad == GradMode::InPlace && new.len() > 1 && new[0].buffer == new[1].buffer {
            return Err(Error::InvalidLayout {
                what: "targets",
                reason: "they are in the logits' buffer, which an in-place gradient writes".into(),
            });
        }
        let swaps = self.swaps(&binds.tensors, &new)?;
        let grad_moves = binds.grad == GradMode::InPlace;
        self.program.swap(&self.gpu, &swaps);
        if let (true, Some(grad)) = (grad_moves, &mut self.grad) {
            grad.buffer = new[0].buffer.clone();
        }
        if let Some(binds) = &mut self.binds {
            binds.tensors = new;
        }
        Ok(())
    }

    /// The swaps from `old` to `new` tensors (in the same order), checked: for tensors that
    /// shared a buffer when prepared, one swap, which they must agree on.
    fn swaps<'s>(&self, old: &'s [Placed], new: &'s [Placed]) -> Result<Vec<Swap<'s>>> {
        let align = u64::from(self.gpu.limits().min_storage_buffer_offset_alignment.max(4));
        let mut swaps: Vec<Swap<'s>> = Vec::new();
        for (o, n) in old.iter().zip(new) {
            let reach = self.program.reach(&o.buffer);
            let swap = swap_for(o, n, align, reach)?;
            match swaps.iter().find(|s| s.old == swap.old) {
                Some(s) if s.new != swap.new || s.shift != swap.shift => {
                    return Err(Error::InvalidLayout {
                        what: n.what,
                        reason: "it shared a buffer with another tensor when prepared, and is \
                                 bound apart from it: bind both to one buffer at the same \
                                 shift, or prepare again"
                            .into(),
                    })
                }
                Some(_) => {}
                None => swaps.push(swap),
            }
        }
        Ok(swaps)
    }

    /// Writes the gradient into `grad`, a caller's tensor, from now on: packed in the input's
    /// shape, of the gradient's element type (f32, or the input's for
    /// [`GradMode::SeparateAsInput`]), at an offset that is a multiple of the device's
    /// `min_storage_buffer_offset_alignment`, in a buffer with `STORAGE` (and `COPY_SRC` for
    /// [`read_grad`](Self::read_grad)). The buffer xent made for it is released. For
    /// [`GradMode::Separate`] and [`GradMode::SeparateAsInput`] only.
    ///
    /// ```
    /// use xent::wgpu::{self, util::DeviceExt};
    /// use xent::{Context, GpuInput, GpuTargets, GpuTensor, GradMode, LogSoftmax};
    ///
    /// let ctx = Context::new()?;
    /// let x = ctx.device().create_buffer_init(&wgpu::util::BufferInitDescriptor {
    ///     label: None,
    ///     contents: xent::bytemuck::cast_slice(&[0.0f32, 0.0]),
    ///     usage: wgpu::BufferUsages::STORAGE,
    /// });
    /// let mine = ctx.device().create_buffer(&wgpu::BufferDescriptor {
    ///     label: Some("my gradient"),
    ///     size: 8,
    ///     usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
    ///     mapped_at_creation: false,
    /// });
    /// let input = GpuInput::new(&x, [1, 2]).with_grad(GradMode::Separate);
    /// let mut prepared = ctx.prepare(&LogSoftmax, input, GpuTargets::None)?;
    /// prepared.bind_grad(GpuTensor::new(&mine))?;
    /// prepared.run()?;
    /// assert_eq!(prepared.grad_buffer(), Some(&mine));
    /// // An upstream of ones: g - softmax * sum(g) = 1 - 0.5 * 2 = 0.
    /// assert_eq!(prepared.read_grad()?.unwrap(), vec![0.0, 0.0]);
    /// # Ok::<(), xent::Error>(())
    /// ```
    pub fn bind_grad(&mut self, grad: GpuTensor<'_>) -> Result<()> {
        let Some(out) = &self.grad else {
            return Err(Error::Misuse {
                what: "bind_grad",
                reason: "this loss was prepared without a gradient (GradMode::Off)".into(),
            });
        };
        if !out.packed
            || self
                .binds
                .as_ref()
                .is_some_and(|b| b.grad == GradMode::InPlace)
        {
            return Err(Error::Misuse {
                what: "bind_grad",
                reason: "an in-place gradient lies in the input; bind the input instead".into(),
            });
        }
        let old = Placed {
            what: "gradient",
            buffer: out.buffer.clone(),
            offset: out.offset,
            row_stride: None,
            dtype: out.dtype,
        };
        let new = Placed::of("gradient", &grad);
        self.swap_output(&old, &new)?;
        if let Some(out) = &mut self.grad {
            (out.buffer, out.offset) = (grad.buffer.clone(), grad.offset);
        }
        Ok(())
    }

    /// Writes the loss into `loss`, a caller's tensor of f32 (one value for `Mean` and `Sum`,
    /// one per row or element for `None`), from now on: at an offset that is a multiple of the
    /// device's `min_storage_buffer_offset_alignment`, in a buffer with `STORAGE` and
    /// `COPY_SRC` (the reads copy from it). The buffer xent made for it is released.
    ///
    /// ```
    /// # use xent::wgpu::{self, util::DeviceExt};
    /// # use xent::{Context, CrossEntropy, GpuInput, GpuTargets, GpuTensor};
    /// # let ctx = Context::new()?;
    /// # let init = |contents: &[u8]| ctx.device().create_buffer_init(&wgpu::util::BufferInitDescriptor {
    /// #     label: None, contents, usage: wgpu::BufferUsages::STORAGE });
    /// let (x, t) = (init(xent::bytemuck::cast_slice(&[0.0f32, 0.0])), init(xent::bytemuck::cast_slice(&[0i32])));
    /// let losses = ctx.device().create_buffer(&wgpu::BufferDescriptor {
    ///     label: Some("my losses"),
    ///     size: 512,
    ///     usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
    ///     mapped_at_creation: false,
    /// });
    /// let mut prepared = ctx.prepare(&CrossEntropy::default(), GpuInput::new(&x, [1, 2]), GpuTargets::indices(&t))?;
    /// prepared.bind_loss(GpuTensor::new(&losses).at(256))?; // this step's slot
    /// prepared.run()?;
    /// assert!((prepared.read_loss()?.scalar().unwrap() - 2f32.ln()).abs() < 1e-6);
    /// # Ok::<(), xent::Error>(())
    /// ```
    pub fn bind_loss(&mut self, loss: GpuTensor<'_>) -> Result<()> {
        if loss.dtype != Dtype::F32 || loss.row_stride.is_some() {
            return Err(Error::InvalidLayout {
                what: "loss",
                reason: "the loss is packed f32".into(),
            });
        }
        if !loss.buffer.usage().contains(wgpu::BufferUsages::COPY_SRC) {
            return Err(Error::BufferUsage {
                what: "loss",
                needed: "COPY_SRC",
                why: "the reads copy the loss out of it",
            });
        }
        let old = Placed {
            what: "loss",
            buffer: self.loss.clone(),
            offset: self.loss_at,
            row_stride: None,
            dtype: Dtype::F32,
        };
        let new = Placed::of("loss", &loss);
        self.swap_output(&old, &new)?;
        (self.loss, self.loss_at) = (loss.buffer.clone(), loss.offset);
        Ok(())
    }

    /// Moves an output xent owns (at offset 0 of its own buffer) to a caller's tensor.
    fn swap_output(&mut self, old: &Placed, new: &Placed) -> Result<()> {
        let align = u64::from(self.gpu.limits().min_storage_buffer_offset_alignment.max(4));
        if !new.offset.is_multiple_of(align) {
            return Err(Error::InvalidLayout {
                what: old.what,
                reason: format!(
                    "an offset of {} bytes is not a multiple of the adapter's storage-offset \
                     alignment ({align} bytes)",
                    new.offset
                ),
            });
        }
        let reach = self
            .program
            .reach(&old.buffer)
            .max(4 * self.output_words(old));
        let swap = swap_for(old, new, align, reach)?;
        self.program.swap(&self.gpu, &[swap]);
        Ok(())
    }

    /// The 4-byte words of the output `old` (the loss or the gradient).
    fn output_words(&self, old: &Placed) -> u64 {
        match &self.grad {
            Some(g) if g.buffer == old.buffer => g.words() as u64,
            _ => self.loss_len as u64,
        }
    }
}
