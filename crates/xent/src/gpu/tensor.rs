//! [`GpuTensor`]: where a caller's matrix or vector lives inside a GPU buffer.

use crate::dtype::Dtype;
use crate::error::{Error, Result};
use crate::plan::check_binding;

/// A matrix or vector inside a caller's GPU buffer: a byte offset to its first element, for a
/// matrix the distance between rows in elements, and the element type (f32 unless set; class
/// indices are i32 and targets f32 whatever this says). A `&wgpu::Buffer` converts into a
/// packed f32 tensor at offset 0.
///
/// ```
/// use xent::wgpu::{self, util::DeviceExt};
/// use xent::{Context, Dtype, GpuInput, GpuTargets, GpuTensor, LogSoftmax};
///
/// let ctx = Context::new()?;
/// // Two rows of 3 bf16 logits (two per u32, low half first), each row padded to 4 elements,
/// // after an 8-byte header of other data.
/// let bf16 = |x: f32| (x.to_bits() >> 16) as u16;
/// let mut words = vec![0u16; 4];
/// for row in [[1.0f32, 2.0, 3.0], [0.5, 0.5, 0.5]] {
///     words.extend(row.map(bf16));
///     words.push(0);
/// }
/// let buffer = ctx.device().create_buffer_init(&wgpu::util::BufferInitDescriptor {
///     label: None,
///     contents: xent::bytemuck::cast_slice(&words),
///     usage: wgpu::BufferUsages::STORAGE,
/// });
/// let logits = GpuTensor::new(&buffer).at(8).with_row_stride(4).with_dtype(Dtype::Bf16);
/// let prepared = ctx.prepare(&LogSoftmax, GpuInput::new(logits, [2, 3]), GpuTargets::None)?;
/// prepared.run()?;
/// let logp = prepared.read_loss()?;
/// assert!((logp.values()[3] + 3f32.ln()).abs() < 1e-6); // uniform row: -ln 3
/// # Ok::<(), xent::Error>(())
/// ```
#[derive(Clone, Copy, Debug)]
pub struct GpuTensor<'a> {
    /// The buffer (created with `wgpu::BufferUsages::STORAGE`).
    pub buffer: &'a wgpu::Buffer,
    /// Byte offset of the first element; a multiple of the element size.
    pub offset: u64,
    /// Elements from the start of one row to the next; `None` for packed rows.
    pub row_stride: Option<usize>,
    /// The element type (logits and BCE inputs only).
    pub dtype: Dtype,
}

impl<'a> GpuTensor<'a> {
    /// A packed tensor at the start of `buffer`.
    pub fn new(buffer: &'a wgpu::Buffer) -> Self {
        GpuTensor {
            buffer,
            offset: 0,
            row_stride: None,
            dtype: Dtype::F32,
        }
    }

    /// The same tensor with elements of type `dtype`.
    pub fn with_dtype(self, dtype: Dtype) -> Self {
        GpuTensor { dtype, ..self }
    }

    /// The same tensor starting `offset` bytes into the buffer.
    pub fn at(self, offset: u64) -> Self {
        GpuTensor { offset, ..self }
    }

    /// The same tensor with rows `row_stride` elements apart (a slice of a wider matrix). For a
    /// K-dimensional (N, C, d1, ..., dk) input, a row is a sample: its C x d1 x ... x dk
    /// values are consecutive, and samples lie `row_stride` elements apart.
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
    /// Checks a tensor that must hold 4-byte values (targets, class indices) says so.
    pub(crate) fn four_byte(self, what: &'static str) -> Result<Self> {
        if self.dtype != Dtype::F32 {
            return Err(Error::UnsupportedDtype {
                what,
                dtype: self.dtype,
                reason: format!(
                    "{what} are f32 (class indices i32); only logits and BCE inputs take f16 or \
                     bf16"
                ),
            });
        }
        Ok(self)
    }

    /// Bytes from one row of `cols` elements to the next.
    pub(crate) fn row_bytes(&self, cols: usize) -> u64 {
        self.dtype
            .size()
            .saturating_mul(self.row_stride.unwrap_or(cols) as u64)
    }

    /// Checks this tensor holds rows `rows` (of `cols` elements) and binds just those: the
    /// window of one chunk.
    pub(crate) fn rows_window(
        &self,
        limits: &wgpu::Limits,
        what: &'static str,
        rows: std::ops::Range<usize>,
        cols: usize,
    ) -> Result<Window<'a>> {
        // Within the extent checked before (rows of a chunk of a checked tensor).
        let part = GpuTensor {
            offset: self.offset + rows.start as u64 * self.row_bytes(cols),
            ..*self
        };
        part.window(limits, what, rows.len(), cols)
    }

    /// Checks this tensor's layout and that its buffer holds `rows` rows of `cols` elements
    /// (with `STORAGE`); returns the byte just past its last element. Sizes are computed with
    /// checked arithmetic: no caller value overflows. Called before anything is allocated for
    /// the tensor, so a buffer smaller than its declared shape costs nothing.
    pub(crate) fn check_extent(&self, what: &'static str, rows: usize, cols: usize) -> Result<u64> {
        let size = self.dtype.size();
        if !self.offset.is_multiple_of(size) {
            return Err(Error::InvalidLayout {
                what,
                reason: format!(
                    "an offset of {} bytes is not a multiple of the {size}-byte element size",
                    self.offset
                ),
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
                why: "every buffer a kernel binds needs",
            });
        }
        let too_small = |needed| Error::BufferTooSmall {
            what,
            needed,
            size: self.buffer.size(),
        };
        let span = match rows.checked_sub(1) {
            None => Some(0),
            Some(before_last) => before_last
                .checked_mul(stride)
                .and_then(|n| n.checked_add(cols)),
        };
        let end = span
            .and_then(|span| size.checked_mul(span as u64))
            .and_then(|bytes| self.offset.checked_add(bytes))
            .ok_or_else(|| too_small(u64::MAX))?;
        if end > self.buffer.size() {
            return Err(too_small(end));
        }
        // Bindings hold whole 4-byte words: 2-byte elements ending mid-word need the word.
        let words = end.next_multiple_of(4);
        if words > self.buffer.size() {
            return Err(Error::InvalidLayout {
                what,
                reason: format!(
                    "its {:?} values end at byte {end} of a buffer of {} bytes, and kernels \
                     bind whole 4-byte words: make the buffer {words} bytes (pad it)",
                    self.dtype,
                    self.buffer.size()
                ),
            });
        }
        Ok(end)
    }

    /// Checks this tensor holds `rows` rows of `cols` elements and binds it.
    pub(crate) fn window(
        &self,
        limits: &wgpu::Limits,
        what: &'static str,
        rows: usize,
        cols: usize,
    ) -> Result<Window<'a>> {
        let size = self.dtype.size();
        let end = self.check_extent(what, rows, cols)?;
        let stride = self.row_stride.unwrap_or(cols);
        let align = u64::from(limits.min_storage_buffer_offset_alignment.max(4));
        let start = self.offset / align * align;
        // Bindings cannot be empty and hold whole words: round up to 4 bytes (never read past
        // the tensor's last element).
        let bound = (end - start)
            .max(4)
            .next_multiple_of(4)
            .min(self.buffer.size() - start);
        check_binding(what, bound, limits)?;
        let first = (self.offset - start) / size;
        Ok(Window {
            binding: wgpu::BufferBinding {
                buffer: self.buffer,
                offset: start,
                size: wgpu::BufferSize::new(bound),
            },
            first: u32::try_from(first).unwrap_or(u32::MAX),
            stride: u32::try_from(stride).map_err(|_| Error::InvalidShape {
                reason: format!("{what}'s row stride {stride} does not fit in 32 bits"),
            })?,
        })
    }
}
