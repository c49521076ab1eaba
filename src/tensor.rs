//! [`GpuTensor`]: where a caller's matrix or vector lives inside a GPU buffer.

use crate::context::Context;
use crate::error::{Error, Result};
use crate::plan::check_binding;

/// A matrix or vector of 4-byte values (f32 or i32) inside a caller's GPU buffer: a byte
/// offset to its first element and, for a matrix, the distance between rows in elements.
/// A `&wgpu::Buffer` converts into a packed tensor at offset 0.
#[derive(Clone, Copy, Debug)]
pub struct GpuTensor<'a> {
    /// The buffer (created with `wgpu::BufferUsages::STORAGE`).
    pub buffer: &'a wgpu::Buffer,
    /// Byte offset of the first element; a multiple of 4.
    pub offset: u64,
    /// Elements from the start of one row to the next; `None` for packed rows.
    pub row_stride: Option<usize>,
}

impl<'a> GpuTensor<'a> {
    /// A packed tensor at the start of `buffer`.
    pub fn new(buffer: &'a wgpu::Buffer) -> Self {
        GpuTensor {
            buffer,
            offset: 0,
            row_stride: None,
        }
    }

    /// The same tensor starting `offset` bytes into the buffer.
    pub fn at(self, offset: u64) -> Self {
        GpuTensor { offset, ..self }
    }

    /// The same tensor with rows `row_stride` elements apart (a slice of a wider matrix).
    pub fn with_row_stride(self, row_stride: usize) -> Self {
        GpuTensor {
            row_stride: Some(row_stride),
            ..self
        }
    }
}

impl<'a> From<&'a wgpu::Buffer> for GpuTensor<'a> {
    fn from(buffer: &'a wgpu::Buffer) -> Self {
        GpuTensor::new(buffer)
    }
}

/// A tensor checked against its shape and bound as a window of its buffer: the binding starts
/// at the offset rounded down to the device's storage-offset alignment, and the kernel adds
/// `first` elements.
pub(crate) struct Window<'a> {
    pub(crate) binding: wgpu::BufferBinding<'a>,
    /// Element index of the tensor's first element within the binding.
    pub(crate) first: u32,
    /// Elements between rows.
    pub(crate) stride: u32,
}

impl<'a> GpuTensor<'a> {
    /// Checks this tensor holds `rows` rows of `cols` elements and binds it.
    pub(crate) fn window(
        &self,
        ctx: &Context,
        what: &'static str,
        rows: usize,
        cols: usize,
    ) -> Result<Window<'a>> {
        if !self.offset.is_multiple_of(4) {
            return Err(Error::InvalidOption {
                name: "offset",
                value: format!("{} bytes into the {what} buffer", self.offset),
                reason: "offsets must be multiples of 4 bytes".into(),
            });
        }
        let stride = self.row_stride.unwrap_or(cols);
        if stride < cols {
            return Err(Error::InvalidShape {
                reason: format!("{what} has rows of {cols} elements but a row stride of {stride}"),
            });
        }
        if !self.buffer.usage().contains(wgpu::BufferUsages::STORAGE) {
            return Err(Error::BufferUsage {
                what,
                needed: "STORAGE",
            });
        }
        let span = if rows == 0 {
            0
        } else {
            (rows - 1) * stride + cols
        };
        let end = self.offset + 4 * span as u64;
        if end > self.buffer.size() {
            return Err(Error::BufferTooSmall {
                what,
                needed: end,
                size: self.buffer.size(),
            });
        }
        let align = u64::from(ctx.limits().min_storage_buffer_offset_alignment.max(4));
        let start = self.offset / align * align;
        // Bindings cannot be empty: an empty tensor still binds 4 bytes (never read).
        let size = (end - start).max(4).min(self.buffer.size() - start);
        check_binding(what, size, ctx.limits())?;
        let first = (self.offset - start) / 4;
        Ok(Window {
            binding: wgpu::BufferBinding {
                buffer: self.buffer,
                offset: start,
                size: wgpu::BufferSize::new(size),
            },
            first: u32::try_from(first).unwrap_or(u32::MAX),
            stride: u32::try_from(stride).map_err(|_| Error::InvalidShape {
                reason: format!("{what}'s row stride {stride} does not fit in 32 bits"),
            })?,
        })
    }
}
