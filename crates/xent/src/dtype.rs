//! [`Dtype`]: the element types of inputs and gradients on the GPU.

/// Element types of logits (and BCE inputs) and of gradients on the GPU. Arithmetic is always
/// f32; f16 and bf16 are converted on load and store.
///
/// ```
/// use xent::{Dtype, GpuTensor};
/// # let ctx = xent::Context::new()?;
/// # let buffer = ctx.device().create_buffer(&xent::wgpu::BufferDescriptor {
/// #     label: None, size: 64, usage: xent::wgpu::BufferUsages::STORAGE, mapped_at_creation: false });
/// let half = GpuTensor::new(&buffer).with_dtype(Dtype::F16); // needs the device's SHADER_F16
/// assert_eq!(Dtype::default(), Dtype::F32);
/// # Ok::<(), xent::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Dtype {
    /// 32-bit float.
    #[default]
    F32,
    /// 16-bit IEEE float (the device needs `wgpu::Features::SHADER_F16`).
    F16,
    /// bfloat16, two per 32-bit word (the low half holds the even element); WGSL has no bf16,
    /// so kernels unpack it.
    Bf16,
}

impl Dtype {
    /// Every element type.
    pub const ALL: [Dtype; 3] = [Dtype::F32, Dtype::F16, Dtype::Bf16];

    /// Bytes per element.
    pub fn size(self) -> u64 {
        match self {
            Dtype::F32 => 4,
            Dtype::F16 | Dtype::Bf16 => 2,
        }
    }
}

/// Element types of a kernel's input (logits, or BCE's input) and of its gradient.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct Types {
    pub(crate) input: Dtype,
    pub(crate) grad: Dtype,
}
