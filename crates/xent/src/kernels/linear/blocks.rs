//! How fused linear cross-entropy cuts its (N, V) logits into blocks of tokens by classes.

use super::product::TILE;
use crate::error::{Error, Result};
use crate::loss::linear::LinearShape;
use crate::plan;

/// Classes a block keeps at least (when the budget allows): blocks of many tokens by few
/// classes would run many short products.
const MIN_CLASS_BLOCK: usize = 1024;

/// Token blocks (when there are several) are a multiple of this many tokens: 256 bytes of f32
/// per token, the largest storage-offset alignment WebGPU allows, so that the windows of a
/// block's losses and upstream gradients start where a binding may.
pub(super) const TOKEN_ALIGN: usize = 64;

/// Blocks a problem may be cut into: a larger count means a budget too small for its size.
/// Each block records about ten dispatches, some 30 KB of host memory with their parameters
/// and bind groups (measured on lavapipe: 4096 blocks of (64, 1, 65536) take 115 MB more than
/// one), so the cap bounds that at about 120 MB.
const MAX_BLOCKS: usize = 1 << 12;

/// The block of `nb` tokens by `vb` classes a problem is cut into: the largest that fits
/// `budget` bytes and every binding, with at least [`MIN_CLASS_BLOCK`] classes where the
/// budget allows, class blocks a multiple of the tile, and token blocks (when there are
/// several) a multiple of [`TOKEN_ALIGN`] so that each one's per-token windows are aligned.
pub(super) fn blocks(
    shape: LinearShape,
    budget: u64,
    limits: &wgpu::Limits,
) -> Result<(usize, usize)> {
    let LinearShape { rows, dim, classes } = shape;
    let binding = limits
        .max_storage_buffer_binding_size
        .min(limits.max_buffer_size)
        / 4;
    let binding = usize::try_from(binding).unwrap_or(usize::MAX);
    let cap = usize::try_from(budget / 4)
        .unwrap_or(usize::MAX)
        .min(binding);
    // Rows of D features one binding holds (hidden, classifier and their gradients).
    let feature_rows = binding / dim;
    let max_side = TILE * limits.max_compute_workgroups_per_dimension as usize;
    // Classes one workgroup's row pass takes within its loop budget (rows are not split).
    let row_classes = plan::longest_row(false);
    let too_small = |reason: String| Error::InvalidOption {
        name: "block_bytes",
        value: budget.to_string(),
        reason,
    };
    if rows.checked_mul(classes).is_some_and(|all| all <= cap)
        && rows.max(classes) <= feature_rows.min(max_side)
        && classes <= row_classes
    {
        return Ok((rows, classes));
    }
    // Room for at least TOKEN_ALIGN tokens (or all of them) per block.
    let min_rows = rows.min(TOKEN_ALIGN);
    let mut vb = classes
        .min((cap / rows).max(MIN_CLASS_BLOCK.min(cap / min_rows)))
        .min(feature_rows)
        .min(max_side)
        .min(row_classes)
        .max(1);
    if vb < classes && vb >= TILE {
        vb = vb / TILE * TILE;
    }
    let mut nb = rows.min(cap / vb).min(feature_rows).min(max_side);
    if nb < rows {
        nb = nb / TOKEN_ALIGN * TOKEN_ALIGN;
    }
    if nb == 0 {
        return Err(too_small(format!(
            "a block of {rows} x {classes} logits needs room for {min_rows} tokens of one class \
             ({} bytes), each row of {dim} features within a binding of {} bytes",
            4 * min_rows,
            4 * binding
        )));
    }
    let count = rows.div_ceil(nb).saturating_mul(classes.div_ceil(vb));
    if count > MAX_BLOCKS {
        return Err(too_small(format!(
            "{rows} x {classes} logits would be cut into {count} blocks of {nb} x {vb} (at \
             most {MAX_BLOCKS}): give a larger budget"
        )));
    }
    Ok((nb, vb))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::linear::product::{COLUMN_SUM_ROWS, PRODUCT_DEPTH};

    fn limits() -> wgpu::Limits {
        wgpu::Limits {
            max_storage_buffer_binding_size: 128 << 20,
            ..wgpu::Limits::default()
        }
    }

    #[test]
    fn blocks_fit_the_budget() {
        let shape = LinearShape {
            rows: 2048,
            dim: 128,
            classes: 131072,
        };
        let (nb, vb) = blocks(shape, 64 << 20, &limits()).unwrap();
        assert_eq!((nb, vb), (2048, 8192));
        assert!((nb * vb * 4) as u64 <= 64 << 20);
        // A small problem is one block.
        let small = LinearShape {
            rows: 37,
            dim: 5,
            classes: 300,
        };
        assert_eq!(blocks(small, 64 << 20, &limits()).unwrap(), (37, 300));
        // A small budget cuts tokens and classes.
        let wide = LinearShape {
            rows: 37,
            dim: 5,
            classes: 2500,
        };
        assert_eq!(blocks(wide, 40 << 10, &limits()).unwrap(), (37, 256));
        // Several token blocks: multiples of TOKEN_ALIGN.
        let long = LinearShape {
            rows: 129,
            dim: 64,
            classes: 1100,
        };
        assert_eq!(blocks(long, 256 << 10, &limits()).unwrap(), (64, 1024));
    }

    /// Loop iterations of one product thread over a depth of `k` (shaders/matmul.wgsl): per
    /// step of 32, its inner loop of 32 and two staging steps, then the 4 x 4 stores.
    fn product_trips(k: usize) -> u64 {
        (k.div_ceil(32) * (32 + 2 + 1) + 4 * 5) as u64
    }

    #[test]
    fn product_and_column_sum_dispatches_stay_within_the_loop_budget() {
        assert!(product_trips(PRODUCT_DEPTH) <= plan::MAX_LOOP_TRIPS);
        assert!((COLUMN_SUM_ROWS + COLUMN_SUM_ROWS / 32) as u64 <= plan::MAX_LOOP_TRIPS);
        // A vocabulary past the longest row one workgroup takes is cut into class blocks.
        let wide = LinearShape {
            rows: 3,
            dim: 2,
            classes: 4_194_247,
        };
        let (nb, vb) = blocks(wide, 64 << 20, &limits()).unwrap();
        assert_eq!(nb, 3);
        assert!(vb <= plan::longest_row(false) && vb < wide.classes, "{vb}");
    }

    #[test]
    fn blocks_refuse_a_budget_below_one_logit_or_too_many_blocks() {
        let shape = LinearShape {
            rows: 2048,
            dim: 128,
            classes: 131072,
        };
        assert!(blocks(shape, 3, &limits()).is_err());
        assert!(blocks(shape, 255, &limits()).is_err());
        assert!(blocks(shape, 1024, &limits()).is_err());
    }
}
