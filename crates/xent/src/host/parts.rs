//! Host calls larger than one GPU buffer: the batch is run in parts of whole rows (or
//! elements), one after another, and the parts' results are put together on the host.
//!
//! A tensor lives in one buffer, and no buffer may exceed the device's `max_buffer_size`
//! (2 GiB on lavapipe). The host path therefore cuts a batch whose inputs, or whose outputs
//! read back together, would exceed it into parts that fit, and runs each part as a host call
//! of its own:
//! - per-row and per-element values (`Reduction::None` losses, log-softmax, every gradient of
//!   `None` and `Sum`) depend on their own row or element only, so they are the bits of an
//!   uncut run;
//! - `Sum` adds the parts' f32 sums in order in f64 and rounds once; `Mean` divides that by the
//!   batch's denominator, computed on the host in f64 (the summed weight of the non-ignored
//!   targets, the row count, or the element count), and runs the parts as `Sum` with the
//!   upstream gradient divided by it. These agree with an uncut run to f32 rounding of the
//!   batch sum, not bit for bit.

use std::ops::Range;

use crate::error::{Error, Result};

/// A host call's batch as the parts see it: its items (rows, or elements), what one item
/// takes on the GPU, and what every part's length must be a multiple of.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Batch {
    pub(crate) items: usize,
    /// Bytes of an item in the largest of its input buffers (logits, targets, weights,
    /// upstream gradient).
    pub(crate) largest_input: u64,
    /// Bytes of an item's outputs (loss and gradient), read back through one buffer.
    pub(crate) outputs: u64,
    /// Parts hold a multiple of this many items (BCE's pos_weight length, else 1).
    pub(crate) multiple: usize,
    /// Upstream gradient values per item when it is given per item (`Reduction::None`): 1,
    /// or C for log-softmax, whose upstream has the logits' shape.
    pub(crate) upstream_per_item: usize,
}

/// The parts a host call runs in: one part when every buffer fits `max_buffer_size`, else
/// parts of a multiple of `batch.multiple` items (the last one shorter). An error when not
/// even that many items fit.
pub(crate) fn parts(batch: Batch, limits: &wgpu::Limits) -> Result<Vec<Range<usize>>> {
    let items = batch.items;
    let per_item = batch.largest_input.max(batch.outputs).max(1);
    let limit = limits.max_buffer_size;
    if (items as u64).saturating_mul(per_item) <= limit {
        return Ok(std::iter::once(0..items).collect());
    }
    let multiple = batch.multiple.max(1) as u64;
    let per_part = limit / per_item / multiple * multiple;
    if per_part == 0 {
        return Err(Error::TooLarge {
            what: format!("a part of {multiple} items of {per_item} bytes"),
            needed: multiple.saturating_mul(per_item),
            limit_name: "max_buffer_size",
            limit,
        });
    }
    let per_part = per_part as usize;
    Ok((0..items)
        .step_by(per_part)
        .map(|start| start..(start + per_part).min(items))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max_buffer_size: u64) -> wgpu::Limits {
        wgpu::Limits {
            max_buffer_size,
            ..wgpu::Limits::default()
        }
    }

    fn batch(largest_input: u64, outputs: u64, multiple: usize) -> Batch {
        Batch {
            items: 1000,
            largest_input,
            outputs,
            multiple,
            upstream_per_item: 1,
        }
    }

    #[test]
    fn one_part_when_everything_fits() {
        let got = parts(batch(400, 404, 64), &limits(404_000)).unwrap();
        assert_eq!(got, vec![0..1000]);
    }

    #[test]
    fn parts_are_multiples_and_fit() {
        let got = parts(batch(400, 4, 64), &limits(100_000)).unwrap();
        // 250 rows fit; 192 is the largest multiple of 64 below.
        assert_eq!(got.len(), 6);
        assert!(got[..5].iter().all(|r| r.len() == 192));
        assert_eq!(got[5], 960..1000);
    }

    #[test]
    fn an_item_too_large_is_an_error() {
        let err = parts(batch(400, 800, 4), &limits(3000)).unwrap_err();
        assert!(matches!(
            err,
            Error::TooLarge {
                limit_name: "max_buffer_size",
                ..
            }
        ));
    }
}
