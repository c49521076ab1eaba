//! Launch plans: how a problem is cut into workgroups and dispatches for an adapter's limits.
//!
//! The strategy, in one place:
//! - Row kernels (log-softmax, categorical cross-entropy) give each row `row_threads` threads,
//!   a power of two chosen so each thread reads about [`ELEMENTS_PER_THREAD`] logits; a
//!   workgroup of [`WORKGROUP_SIZE`] threads then holds `WORKGROUP_SIZE / row_threads` rows.
//!   Short rows therefore share a workgroup (one thread per row for C <= 16) instead of
//!   leaving most of a workgroup idle.
//! - Elementwise kernels (binary cross-entropy) give each workgroup a block of
//!   `WORKGROUP_SIZE * ELEMENTWISE_ITEMS` consecutive elements.
//! - Batch reductions sum blocks of `WORKGROUP_SIZE * ELEMENTWISE_ITEMS` partial results per
//!   pass, in a fixed order, until one is left.
//! - More workgroups than a dispatch dimension allows are laid out as a 2-D grid.

use crate::error::{Error, Result};

/// Threads per workgroup of every kernel.
pub(crate) const WORKGROUP_SIZE: u32 = 256;
/// Elements each thread of an elementwise or reduction kernel handles.
pub(crate) const ELEMENTWISE_ITEMS: u32 = 4;
/// Logits each thread of a row kernel aims to read.
pub(crate) const ELEMENTS_PER_THREAD: usize = 16;

/// A dispatch of `groups` workgroups laid out as `x * y >= groups`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Grid {
    pub(crate) x: u32,
    pub(crate) y: u32,
    pub(crate) groups: u32,
}

/// Lays out `groups` workgroups within the device's per-dimension limit.
pub(crate) fn grid(groups: u64, limits: &wgpu::Limits) -> Result<Grid> {
    let max = u64::from(limits.max_compute_workgroups_per_dimension.max(1));
    let x = groups.clamp(1, max);
    let y = groups.div_ceil(x).max(1);
    if y > max || groups > u64::from(u32::MAX) {
        return Err(Error::TooLarge {
            what: "the dispatch".into(),
            needed: groups,
            limit_name: "max_compute_workgroups_per_dimension (squared)",
            limit: max * max,
        });
    }
    Ok(Grid {
        x: x as u32,
        y: y as u32,
        groups: groups as u32,
    })
}

/// How a row kernel covers an (N, C) batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RowPlan {
    pub(crate) row_threads: u32,
    pub(crate) grid: Grid,
}

/// Threads per row for rows of `classes` logits.
pub(crate) fn row_threads(classes: usize) -> u32 {
    let wanted = classes.div_ceil(ELEMENTS_PER_THREAD).max(1);
    (wanted.next_power_of_two() as u32).min(WORKGROUP_SIZE)
}

/// The plan for a row kernel over `rows` rows of `classes` logits.
pub(crate) fn row_plan(rows: usize, classes: usize, limits: &wgpu::Limits) -> Result<RowPlan> {
    let row_threads = row_threads(classes);
    let rows_per_group = (WORKGROUP_SIZE / row_threads) as u64;
    let grid = grid((rows as u64).div_ceil(rows_per_group), limits)?;
    Ok(RowPlan { row_threads, grid })
}

/// The grid of an elementwise or reduction kernel over `len` items.
pub(crate) fn elementwise_grid(len: usize, limits: &wgpu::Limits) -> Result<Grid> {
    grid(
        (len as u64).div_ceil(u64::from(WORKGROUP_SIZE * ELEMENTWISE_ITEMS)),
        limits,
    )
}

/// Checks that one storage binding of `bytes` fits the device.
pub(crate) fn check_binding(what: &str, bytes: u64, limits: &wgpu::Limits) -> Result<()> {
    let binding = limits.max_storage_buffer_binding_size;
    if bytes > binding {
        return Err(Error::TooLarge {
            what: what.to_string(),
            needed: bytes,
            limit_name: "max_storage_buffer_binding_size",
            limit: binding,
        });
    }
    if bytes > limits.max_buffer_size {
        return Err(Error::TooLarge {
            what: what.to_string(),
            needed: bytes,
            limit_name: "max_buffer_size",
            limit: limits.max_buffer_size,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_threads_follow_the_row_length() {
        assert_eq!(row_threads(1), 1);
        assert_eq!(row_threads(16), 1);
        assert_eq!(row_threads(17), 2);
        assert_eq!(row_threads(1000), 64);
        assert_eq!(row_threads(32768), 256);
    }

    #[test]
    fn grids_fold_into_two_dimensions() {
        let limits = wgpu::Limits {
            max_compute_workgroups_per_dimension: 100,
            ..wgpu::Limits::default()
        };
        assert_eq!(
            grid(0, &limits).unwrap(),
            Grid {
                x: 1,
                y: 1,
                groups: 0
            }
        );
        assert_eq!(
            grid(100, &limits).unwrap(),
            Grid {
                x: 100,
                y: 1,
                groups: 100
            }
        );
        assert_eq!(
            grid(101, &limits).unwrap(),
            Grid {
                x: 100,
                y: 2,
                groups: 101
            }
        );
        assert!(matches!(grid(10_001, &limits), Err(Error::TooLarge { .. })));
    }
}
