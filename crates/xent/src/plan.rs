//! Launch plans: how a problem is cut into workgroups and dispatches for an adapter's limits.
//!
//! The strategy, in one place:
//! - Row kernels (log-softmax, categorical cross-entropy) give each row `row_threads` threads,
//!   a power of two chosen so each thread reads about [`Tuning::row_elements_per_thread`]
//!   logits; a workgroup of [`WORKGROUP_SIZE`] threads then holds `WORKGROUP_SIZE /
//!   row_threads` rows.
//!   Short rows therefore share a workgroup (one thread per row for C <= 16 on a GPU) instead
//!   of leaving most of a workgroup idle. GPUs get 16 logits per thread (rows up to 4096 stay
//!   in registers); CPU adapters (lavapipe) 128, since every level of a row's tree reduction
//!   is a costly barrier there (measured on lavapipe at 2048 x 1000: 0.25 -> 0.58 of the read
//!   ceiling). A thread keeps its logits of a row in registers where they fit ([`CACHE`]), and
//!   fills only the slots the row needs ([`cache_slots`]).
//! - Where a row has a thread of its own, each thread handles [`Tuning::rows_per_thread`] rows
//!   one after another (8 on CPU adapters, 1 on GPUs) while the batch still fills the adapter,
//!   adding their (loss, weight) pairs in order before the workgroup's sum, so a workgroup's
//!   launch and barriers are shared by more rows.
//! - A batch of too few long rows to keep the adapter busy ([`Tuning::fill_workgroups`]) has
//!   its rows split: each row is cut into segments of at least `WORKGROUP_SIZE *
//!   row_elements_per_thread` logits (at most [`MAX_SEGMENTS`]), one workgroup each. A first
//!   dispatch reduces each segment to its log-sum-exp state; the second merges a row's states
//!   in segment order and computes the loss, the gradient or the log-softmax of each segment
//!   (C = 262144 with N = 4 makes 256 workgroups on a GPU instead of 4). Forward-only losses
//!   read the logits once either way; a gradient reads them twice where an unsplit row that
//!   fits in registers reads them once.
//! - The threads of a row merge their states in one fixed tree: through subgroup shuffles for
//!   the strides below the subgroup size where the device allows ([`Context::subgroup_size`](crate::Context::subgroup_size)),
//!   through workgroup memory (a barrier per level) above it or without subgroups. Both give
//!   the same bits. Rows of one thread merge nothing and build no subgroup code.
//! - Elementwise kernels (binary cross-entropy) give each workgroup a block of
//!   `WORKGROUP_SIZE * ELEMENTWISE_ITEMS` (4096) consecutive elements: the workgroup's sum
//!   costs one barrier per tree level, so larger blocks pay it less often (lavapipe, BCE with
//!   logits over 2^24: 0.31 -> 0.57 of the read ceiling going from 4 to 16 items per thread).
//! - Workgroup sums add groups of 16 values in order, then the group sums in order: two
//!   barriers, where a tree costs one per level (lavapipe, CE over 1048576 x 10: 0.19 -> 0.27
//!   of the read ceiling).
//! - Batch reductions sum blocks of `WORKGROUP_SIZE * ELEMENTWISE_ITEMS` partial results per
//!   pass, in a fixed order, until one is left.
//! - More workgroups than a dispatch dimension allows are laid out as a 2-D grid.
//! - A problem whose tensors do not fit one storage binding is cut into chunks of rows (or
//!   elements), one dispatch each, every tensor bound as a window over the chunk's part
//!   ([`chunks`]). Chunks are whole multiples of a workgroup's rows (or elements), so the
//!   workgroups and the batch reduction are exactly those of an uncut run: results are
//!   bit-identical. A single row larger than a binding is an error naming the limit.
//! - A host call whose buffers would exceed `max_buffer_size` runs in parts of whole rows (or
//!   elements), each a host call of its own, put together on the host (`host::parts`).

use crate::error::{Error, Result};

/// Loop iterations one invocation of a kernel may run, all its loops together. llvmpipe (the
/// driver under lavapipe and Mesa's GL) keeps one counter for every loop of an invocation and
/// silently ends them all once it passes 65535 (gallivm's `LP_MAX_TGSI_LOOP_ITERATIONS`): the
/// rest of a long row, product or sum is skipped and a wrong value comes out. Plans keep every
/// kernel within half of that, counting each loop's iterations as written (constant-bound
/// loops included: llvmpipe unrolls none of xent's), on every adapter, so that every adapter
/// runs the same dispatches and gives the same values. A GPU pays at most one more dispatch
/// (a product's depth cut into steps, a row cut into segments) where a loop would pass it.
pub(crate) const MAX_LOOP_TRIPS: u64 = 1 << 15;
/// Values a row thread reads per step of its statistics pass (`BLOCK` in
/// shaders/common/row_state.wgsl).
const ROW_BLOCK: u64 = 8;
/// The most segments a row is cut into so that its loops stay within [`MAX_LOOP_TRIPS`] (one
/// thread merges their states in order): rows of up to about 2.5 G logits.
pub(crate) const MAX_LONG_SEGMENTS: usize = 1024;
/// Threads per workgroup of every kernel.
pub(crate) const WORKGROUP_SIZE: u32 = 256;
/// Elements each thread of an elementwise or reduction kernel handles.
pub(crate) const ELEMENTWISE_ITEMS: u32 = 16;
/// The most segments a split row is cut into (one thread merges their states in order).
pub(crate) const MAX_SEGMENTS: usize = 64;
/// The most rows a thread of a row kernel handles ([`Tuning::rows_per_thread`]).
pub(crate) const MAX_ROWS_PER_THREAD: usize = 64;
/// Logits a thread of a row kernel can keep in registers (`CACHE` in
/// shaders/common/row_state.wgsl).
pub(crate) const CACHE: usize = 16;
/// Knobs of the launch plan. [`Tuning::for_device`] picks them by adapter type; a context can
/// run with others ([`Context::with_tuning`](crate::Context::with_tuning)) to benchmark them or to test every kernel path on
/// one adapter.
///
/// ```
/// let ctx = xent::Context::new()?;
/// // Merge the threads of a row through workgroup memory even where subgroups exist.
/// let plain = ctx.with_tuning(xent::Tuning { subgroups: false, ..ctx.tuning() });
/// assert_eq!(plain.subgroup_size(), None);
/// # Ok::<(), xent::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tuning {
    /// Logits each thread of a row kernel aims to read (at least 1). At most 16 per thread
    /// stay in registers between the statistics and gradient passes.
    pub row_elements_per_thread: usize,
    /// Plan as if the device allowed at most this many workgroups per dispatch dimension
    /// (`None`: the device's limit). Lets tests reach the 2-D grids of large problems with
    /// small ones.
    pub max_workgroups_per_dimension: Option<u32>,
    /// Plan as if a storage binding could hold at most this many bytes (`None`: the device's
    /// limit). Lets tests reach the size limits with small problems.
    pub max_storage_binding_bytes: Option<u64>,
    /// Plan as if no buffer could exceed this many bytes (`None`: the device's
    /// `max_buffer_size`). Lets tests cut host calls into parts with small problems.
    pub max_buffer_bytes: Option<u64>,
    /// Workgroups it takes to keep every core of the adapter busy: a row kernel over fewer
    /// rows than this splits long rows over several workgroups, each reducing a segment of
    /// at least `256 * row_elements_per_thread` logits; 0 or 1 never splits. Lets tests
    /// split rows of small problems.
    pub fill_workgroups: usize,
    /// Rows each thread handles, one after another, where a row has a thread of its own (rows
    /// of at most `row_elements_per_thread` logits), as long as the batch still makes
    /// `fill_workgroups` workgroups; 1 otherwise. A workgroup's fixed costs, its launch and the
    /// barriers of its (loss, weight) sum, are then shared by more rows. 0 counts as 1, and
    /// more than 64 as 64.
    pub rows_per_thread: usize,
    /// Merge the threads of a row with subgroup shuffles where the device allows it (see
    /// [`Context::subgroup_size`](crate::Context::subgroup_size)); `false` keeps to workgroup memory. Results are the same
    /// bits either way; this switch exists to compare and test the two.
    pub subgroups: bool,
}

impl Tuning {
    /// The knobs for an adapter type: 16 logits per thread, 1024 workgroups to fill the
    /// adapter and a row per thread on GPUs (an H100's 132 cores hold 8 workgroups of 256
    /// each); 128 logits per thread, 64 workgroups and 8 short rows per thread on CPU
    /// adapters, where a workgroup's launch and barriers are costly (lavapipe, 1048576 x 10,
    /// 8 rows per thread instead of 1: forward 125 -> 92 ms, with gradient 185 -> 155 ms). A
    /// CPU driver has only a few threads, but runs the SIMD batches of a workgroup one after
    /// another, each sweeping the workgroup's whole row (segment): shorter segments stay in
    /// cache (lavapipe, one row of 2^23 logits, 8 -> 64 segments: forward 72 -> 50 ms, with
    /// gradient 229 -> 132 ms).
    pub fn for_device(device_type: wgpu::DeviceType) -> Tuning {
        let cpu = device_type == wgpu::DeviceType::Cpu;
        Tuning {
            row_elements_per_thread: if cpu { 128 } else { 16 },
            fill_workgroups: if cpu { 64 } else { 1024 },
            rows_per_thread: if cpu { 8 } else { 1 },
            max_workgroups_per_dimension: None,
            max_storage_binding_bytes: None,
            max_buffer_bytes: None,
            subgroups: true,
        }
    }

    /// `device` limits lowered to this tuning's caps: the limits plans are made by.
    pub(crate) fn apply(&self, device: &wgpu::Limits) -> wgpu::Limits {
        let mut limits = device.clone();
        if let Some(cap) = self.max_workgroups_per_dimension {
            limits.max_compute_workgroups_per_dimension =
                limits.max_compute_workgroups_per_dimension.min(cap.max(1));
        }
        if let Some(cap) = self.max_storage_binding_bytes {
            limits.max_storage_buffer_binding_size =
                limits.max_storage_buffer_binding_size.min(cap.max(4));
        }
        if let Some(cap) = self.max_buffer_bytes {
            limits.max_buffer_size = limits.max_buffer_size.min(cap.max(4));
            limits.max_storage_buffer_binding_size = limits
                .max_storage_buffer_binding_size
                .min(limits.max_buffer_size);
        }
        limits
    }
}

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
            what: "the dispatch (split the batch)".into(),
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
    /// Logits per row.
    pub(crate) classes: usize,
    pub(crate) row_threads: u32,
    /// The subgroup size the row merge uses (0: workgroup memory only).
    pub(crate) subgroup: u32,
    /// Rows each thread handles (`ROWS_PER_THREAD`, see [`rows_per_thread`]).
    pub(crate) rows_per_thread: u32,
    /// Rows one workgroup handles (1 for split rows).
    pub(crate) rows_per_group: usize,
    /// Segments per row: 1, or a split row's workgroups (`SPLIT`).
    pub(crate) segments: u32,
    /// Logits per segment of a split row (the last may be shorter); `classes` otherwise.
    pub(crate) segment_len: u32,
    /// The register slots each thread fills with its logits (`CACHED`, see [`cache_slots`]).
    pub(crate) cache_slots: u32,
    /// The workgroups of the whole batch.
    pub(crate) grid: Grid,
}

impl RowPlan {
    /// The grid of a dispatch over `rows` rows (one chunk).
    pub(crate) fn grid_for(&self, rows: usize, limits: &wgpu::Limits) -> Result<Grid> {
        grid(self.groups_for(rows) as u64, limits)
    }

    /// Workgroups that `rows` rows take: a chunk's grid or, for the rows before a chunk (a
    /// multiple of `rows_per_group`), where its (loss, weight) pairs start.
    pub(crate) fn groups_for(&self, rows: usize) -> usize {
        rows.div_ceil(self.rows_per_group) * self.segments as usize
    }

    /// Whether rows are split (two dispatches, see the [module docs](crate::plan)).
    pub(crate) fn split(&self) -> bool {
        self.segments > 1
    }
}

/// Threads per row for rows of `classes` logits, each thread reading about `per_thread`.
pub(crate) fn row_threads(classes: usize, per_thread: usize) -> u32 {
    let wanted = classes.div_ceil(per_thread.max(1)).max(1);
    match wanted.checked_next_power_of_two() {
        Some(threads) if threads < WORKGROUP_SIZE as usize => threads as u32,
        _ => WORKGROUP_SIZE,
    }
}

/// The register slots a thread of a row of `row_threads` threads fills with its logits: the
/// fewest that hold the row, rounded up to a multiple of 4, or all [`CACHE`] where the row does
/// not fit (it is then read twice and the slots go unused). A slot past the row's end still
/// costs its masked loads and arithmetic on CPU drivers (lavapipe, 1048576 x 10: forward 139
/// -> 126 ms with 12 slots instead of 16); multiples of 4 keep the pipelines few.
pub(crate) fn cache_slots(classes: usize, row_threads: u32) -> u32 {
    let slots = classes.div_ceil(row_threads.max(1) as usize).max(1);
    if slots > CACHE {
        return CACHE as u32;
    }
    slots.next_multiple_of(4) as u32
}

/// Rows each thread of a row kernel over `rows` unsplit rows handles: [`Tuning::rows_per_thread`]
/// (at most [`MAX_ROWS_PER_THREAD`]) where a row has a thread of its own and the batch then
/// still makes [`Tuning::fill_workgroups`] workgroups, 1 otherwise (two values keep the
/// pipelines few).
pub(crate) fn rows_per_thread(rows: usize, row_threads: u32, tuning: &Tuning) -> usize {
    let per = tuning.rows_per_thread.clamp(1, MAX_ROWS_PER_THREAD);
    let groups = rows.div_ceil(WORKGROUP_SIZE as usize * per);
    if row_threads == 1 && groups >= tuning.fill_workgroups {
        per
    } else {
        1
    }
}

/// Segments to cut each of `rows` rows of `classes` logits into: enough workgroups to reach
/// `tuning.fill_workgroups`, each segment at least a workgroup's worth of logits
/// (`WORKGROUP_SIZE * row_elements_per_thread`), at most [`MAX_SEGMENTS`]. 1: no split.
pub(crate) fn segments(rows: usize, classes: usize, tuning: &Tuning) -> usize {
    let segment = (WORKGROUP_SIZE as usize).saturating_mul(tuning.row_elements_per_thread.max(1));
    let wanted = tuning.fill_workgroups.div_ceil(rows.max(1));
    wanted.min(classes / segment).clamp(1, MAX_SEGMENTS)
}

/// How a row kernel's rows lie and may be handled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RowLayout {
    /// Consecutive classes; long rows of a small batch may be split.
    Contiguous,
    /// Consecutive classes, never split (a kernel that keeps per-row state of its own).
    Whole,
    /// Classes that lie apart (the positions of an (N, C, d1, ..., dk) input): a thread per
    /// row, never split, so that neighbouring threads read neighbouring values.
    Strided,
}

/// The plan for a row kernel over `rows` rows of `classes` logits laid out as `layout`, for an
/// adapter's `limits` and `tuning`, merging rows through subgroups of `subgroup_size` where
/// one is given. Rows whose loops would pass [`MAX_LOOP_TRIPS`] per thread get more threads,
/// then (contiguous rows) more segments; a row that still would is an error naming the limit.
pub(crate) fn row_plan(
    rows: usize,
    classes: usize,
    layout: RowLayout,
    limits: &wgpu::Limits,
    tuning: Tuning,
    subgroup_size: Option<u32>,
) -> Result<RowPlan> {
    let strided = layout == RowLayout::Strided;
    let wanted = match layout {
        RowLayout::Contiguous => segments(rows, classes, &tuning),
        RowLayout::Whole | RowLayout::Strided => 1,
    };
    let (segment_len, segments) = cut_row(classes, wanted);
    let mut plan = if segments > 1 {
        row_shape(classes, (segments, segment_len), (WORKGROUP_SIZE, 1))
    } else {
        let threads = match strided {
            true => 1,
            false => row_threads(classes, tuning.row_elements_per_thread),
        };
        let per = rows_per_thread(rows, threads, &tuning);
        row_shape(classes, (1, classes), (threads, per))
    };
    // Too many loop iterations: one row a thread, then more threads a row.
    while row_trips(&plan) > MAX_LOOP_TRIPS && !plan.split() && plan.row_threads < WORKGROUP_SIZE {
        let threads = match plan.rows_per_thread {
            1 => plan.row_threads * 2,
            _ => plan.row_threads,
        };
        plan = row_shape(classes, (1, classes), (threads, 1));
    }
    // Then, where rows may be split, segments short enough.
    if row_trips(&plan) > MAX_LOOP_TRIPS && layout == RowLayout::Contiguous {
        let longest = longest_row(true);
        let (segment_len, segments) = cut_row(classes, classes.div_ceil(longest).max(wanted));
        if segments <= MAX_LONG_SEGMENTS {
            plan = row_shape(classes, (segments, segment_len), (WORKGROUP_SIZE, 1));
        }
    }
    let trips = row_trips(&plan);
    if trips > MAX_LOOP_TRIPS {
        return Err(Error::TooLarge {
            what: format!(
                "a row of {classes} logits ({} per workgroup at most, split into at most \
                 {MAX_LONG_SEGMENTS} segments where the kernel allows)",
                longest_row(false)
            ),
            needed: trips,
            limit_name: "loop iterations per invocation (llvmpipe ends loops past 65535)",
            limit: MAX_LOOP_TRIPS,
        });
    }
    plan.subgroup = match plan.row_threads {
        // A row of one thread merges nothing, so its kernel is built without subgroup code.
        1 => 0,
        _ => subgroup_size.unwrap_or(0),
    };
    plan.grid = grid(
        (rows.div_ceil(plan.rows_per_group) as u64).saturating_mul(u64::from(plan.segments)),
        limits,
    )?;
    Ok(plan)
}

/// Cuts a row of `classes` into about `wanted` equal segments but the last, none empty:
/// (segment length, segments).
fn cut_row(classes: usize, wanted: usize) -> (usize, usize) {
    if wanted <= 1 {
        return (classes, 1);
    }
    let len = classes.div_ceil(wanted).max(1);
    (len, classes.div_ceil(len))
}

/// A plan's shape (no grid yet, no subgroups): rows of `classes` logits in `segments` of
/// `segment_len`, `row_threads` threads a row, each handling `rows_per_thread` rows.
fn row_shape(
    classes: usize,
    (segments, segment_len): (usize, usize),
    (row_threads, rows_per_thread): (u32, usize),
) -> RowPlan {
    RowPlan {
        classes,
        row_threads,
        subgroup: 0,
        rows_per_thread: rows_per_thread as u32,
        rows_per_group: (WORKGROUP_SIZE / row_threads) as usize * rows_per_thread,
        segments: segments as u32,
        segment_len: u32::try_from(segment_len).unwrap_or(u32::MAX),
        cache_slots: cache_slots(classes, row_threads),
        grid: Grid {
            x: 0,
            y: 0,
            groups: 0,
        },
    }
}

/// An upper bound on the loop iterations one thread of a row kernel runs under `plan`, all its
/// loops counted as written (shaders/common/row_state.wgsl and the kernels' `row_pass`): a row
/// kept in registers runs four loops over its cache slots; a longer one a statistics pass (a
/// step of [`ROW_BLOCK`] values and two loops over them) and a gradient pass over its values.
/// A split row's two dispatches are counted together, with its segment merge; every plan adds
/// the row merge's levels and the workgroup's pair sum.
pub(crate) fn row_trips(plan: &RowPlan) -> u64 {
    let threads = u64::from(plan.row_threads.max(1));
    let len = match plan.split() {
        true => u64::from(plan.segment_len),
        false => plan.classes as u64,
    };
    let per_thread = len.div_ceil(threads);
    let slots = u64::from(plan.cache_slots);
    let pass = if !plan.split() && per_thread <= slots {
        4 * slots
    } else {
        per_thread.div_ceil(ROW_BLOCK) * (1 + 2 * ROW_BLOCK) + per_thread
    };
    let merges = 2 * u64::from(WORKGROUP_SIZE.ilog2() + 1) + u64::from(plan.segments) + 2 * 16;
    u64::from(plan.rows_per_thread.max(1)) * (pass + 1) + merges
}

/// The longest row (`split`: segment) a workgroup of [`WORKGROUP_SIZE`] threads handles
/// within [`MAX_LOOP_TRIPS`] (a split row with [`MAX_LONG_SEGMENTS`] segments to merge).
pub(crate) fn longest_row(split: bool) -> usize {
    let segments = if split { MAX_LONG_SEGMENTS } else { 1 };
    let fits = |len: usize| {
        let mut plan = row_shape(len, (segments, len), (WORKGROUP_SIZE, 1));
        plan.classes = len.saturating_mul(segments);
        row_trips(&plan) <= MAX_LOOP_TRIPS
    };
    // The largest length that fits, by bisection (trips grow with the length).
    let (mut lo, mut hi) = (1usize, u32::MAX as usize);
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        if fits(mid) {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    lo
}

/// The grid of an elementwise or reduction kernel over `len` items.
pub(crate) fn elementwise_grid(len: usize, limits: &wgpu::Limits) -> Result<Grid> {
    grid(
        (len as u64).div_ceil(u64::from(WORKGROUP_SIZE * ELEMENTWISE_ITEMS)),
        limits,
    )
}

/// Cuts `items` items (rows, or elements) into chunks whose every binding fits the device.
/// `item_bytes` lists the bytes one item takes in each binding that is cut (a caller's tensor
/// may start anywhere, so each window leaves room for the offset alignment); `owned_bytes`
/// those of xent's own outputs among them, whose windows must start at the device's storage
/// offset alignment exactly (kernels index them from 0). Chunks other than the last hold a
/// multiple of `granule` items (whole workgroups), and of what keeps every owned window
/// aligned.
pub(crate) fn chunks(
    items: usize,
    item_bytes: &[u64],
    owned_bytes: &[u64],
    granule: usize,
    limits: &wgpu::Limits,
) -> Result<Vec<std::ops::Range<usize>>> {
    let align = u64::from(limits.min_storage_buffer_offset_alignment.max(4));
    let granule = owned_bytes.iter().fold(granule.max(1) as u64, |g, &b| {
        lcm(g, align / gcd(align, b.max(1)))
    });
    let widest = item_bytes
        .iter()
        .chain(owned_bytes)
        .copied()
        .max()
        .unwrap_or(0)
        .max(1);
    let slack = align + 4;
    let room = limits.max_storage_buffer_binding_size.saturating_sub(slack);
    let fits = room / widest;
    if fits >= items as u64 {
        return Ok(std::iter::once(0..items).collect());
    }
    let per = fits / granule * granule;
    if per == 0 {
        return Err(Error::TooLarge {
            what: format!(
                "the smallest chunk a dispatch takes ({granule} rows of {widest} bytes: a \
                 workgroup's rows, or one sample of a K-dimensional input)"
            ),
            needed: granule * widest + slack,
            limit_name: "max_storage_buffer_binding_size",
            limit: limits.max_storage_buffer_binding_size,
        });
    }
    let per = per as usize;
    Ok((0..items)
        .step_by(per)
        .map(|start| start..(start + per).min(items))
        .collect())
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

fn lcm(a: u64, b: u64) -> u64 {
    a / gcd(a, b) * b
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
    check_buffer(what, bytes, limits)
}

/// Checks that a buffer of `bytes` fits the device (bound in windows, it may be larger than
/// one binding).
pub(crate) fn check_buffer(what: &str, bytes: u64, limits: &wgpu::Limits) -> Result<()> {
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

/// Consecutive ranges of `block` items covering `len`.
pub(crate) fn ranges(len: usize, block: usize) -> impl Iterator<Item = std::ops::Range<usize>> {
    (0..len)
        .step_by(block)
        .map(move |start| start..(start + block).min(len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_threads_follow_the_row_length() {
        let gpu = Tuning::for_device(wgpu::DeviceType::DiscreteGpu).row_elements_per_thread;
        assert_eq!(row_threads(1, gpu), 1);
        assert_eq!(row_threads(16, gpu), 1);
        assert_eq!(row_threads(17, gpu), 2);
        assert_eq!(row_threads(1000, gpu), 64);
        assert_eq!(row_threads(32768, gpu), 256);
        let cpu = Tuning::for_device(wgpu::DeviceType::Cpu).row_elements_per_thread;
        assert_eq!(row_threads(1000, cpu), 8);
        assert_eq!(row_threads(32768, cpu), 256);
    }

    #[test]
    fn cache_slots_hold_the_row_in_multiples_of_four() {
        assert_eq!(cache_slots(1, 1), 4);
        assert_eq!(cache_slots(10, 1), 12);
        assert_eq!(cache_slots(16, 1), 16);
        assert_eq!(cache_slots(1000, 64), 16);
        assert_eq!(cache_slots(1000, 128), 8);
        // Rows that do not fit keep every slot (they are read twice, the slots unused).
        assert_eq!(cache_slots(17, 1), CACHE as u32);
        assert_eq!(cache_slots(262_144, 256), CACHE as u32);
        // A row that fits CACHE slots still fits the slots it gets.
        for threads in [1u32, 2, 8, 64, 256] {
            for classes in 1..=CACHE * threads as usize {
                let slots = cache_slots(classes, threads) as usize;
                assert!(
                    slots.is_multiple_of(4) && slots <= CACHE,
                    "{classes} {threads}: {slots}"
                );
                assert!(
                    slots * threads as usize >= classes,
                    "{classes} {threads}: {slots}"
                );
            }
        }
    }

    #[test]
    fn only_batches_that_still_fill_the_adapter_take_several_rows_per_thread() {
        let cpu = Tuning::for_device(wgpu::DeviceType::Cpu);
        // 8 rows per thread: 2048 rows a workgroup, 64 workgroups from 63 * 2048 + 1 rows.
        assert_eq!(rows_per_thread(1 << 20, 1, &cpu), 8);
        assert_eq!(rows_per_thread(63 * 2048 + 1, 1, &cpu), 8);
        assert_eq!(rows_per_thread(63 * 2048, 1, &cpu), 1);
        // Rows of several threads take one row per thread.
        assert_eq!(rows_per_thread(1 << 20, 2, &cpu), 1);
        let gpu = Tuning::for_device(wgpu::DeviceType::DiscreteGpu);
        assert_eq!(rows_per_thread(1 << 22, 1, &gpu), 1);
        let huge = Tuning {
            rows_per_thread: usize::MAX,
            fill_workgroups: 0,
            ..cpu
        };
        assert_eq!(rows_per_thread(10, 1, &huge), MAX_ROWS_PER_THREAD);
        let zero = Tuning {
            rows_per_thread: 0,
            ..huge
        };
        assert_eq!(rows_per_thread(10, 1, &zero), 1);
    }

    #[test]
    fn only_too_few_long_rows_are_split() {
        let gpu = Tuning::for_device(wgpu::DeviceType::DiscreteGpu);
        // 4 rows of 262144: 256 workgroups to fill 1024 would be wanted, 64 is the cap.
        assert_eq!(segments(4, 262_144, &gpu), MAX_SEGMENTS);
        // 64 rows of 32768: 16 wanted; segments of at least 4096 logits allow 8.
        assert_eq!(segments(64, 32_768, &gpu), 8);
        // Enough rows, or rows too short for two segments: no split.
        assert_eq!(segments(8192, 32_768, &gpu), 1);
        assert_eq!(segments(4, 8191, &gpu), 1);
        assert_eq!(segments(0, 262_144, &gpu), MAX_SEGMENTS);
        let cpu = Tuning::for_device(wgpu::DeviceType::Cpu);
        // Segments of at least 32768 logits.
        assert_eq!(segments(4, 262_144, &cpu), 8);
        assert_eq!(segments(1, 1 << 22, &cpu), MAX_SEGMENTS);
        assert_eq!(segments(8, 1 << 22, &cpu), 8);
        assert_eq!(segments(64, 1 << 22, &cpu), 1);
        let never = Tuning {
            fill_workgroups: 0,
            ..cpu
        };
        assert_eq!(segments(1, 1 << 22, &never), 1);
        // The tuning the split tests use: 3 rows of 5000 make 4 segments.
        let tests = Tuning {
            row_elements_per_thread: 4,
            fill_workgroups: 64,
            ..cpu
        };
        assert_eq!(segments(3, 5000, &tests), 4);
    }

    #[test]
    fn every_row_plan_stays_within_the_loop_budget() {
        let limits = wgpu::Limits::default();
        let cpu = Tuning::for_device(wgpu::DeviceType::Cpu);
        let gpu = Tuning::for_device(wgpu::DeviceType::DiscreteGpu);
        // Tunings that would give one thread long rows, or never split them.
        let greedy = Tuning {
            row_elements_per_thread: 1 << 20,
            rows_per_thread: 64,
            fill_workgroups: 0,
            ..cpu
        };
        let longest = longest_row(false);
        assert!(longest > 2_000_000, "{longest}");
        for tuning in [cpu, gpu, greedy] {
            for rows in [1, 64, 70_000] {
                for classes in [1, 17, 65_537, 1 << 22, (1 << 24) + 3, 1 << 31] {
                    for layout in [RowLayout::Contiguous, RowLayout::Whole, RowLayout::Strided] {
                        let case = format!("{rows} x {classes} {layout:?} {tuning:?}");
                        match row_plan(rows, classes, layout, &limits, tuning, Some(32)) {
                            Ok(plan) => {
                                assert!(row_trips(&plan) <= MAX_LOOP_TRIPS, "{case}: {plan:?}");
                                assert!(plan.segments as usize <= MAX_LONG_SEGMENTS, "{case}");
                                assert_eq!(plan.classes, classes);
                            }
                            // Only rows that cannot be split may be too long, and only
                            // past what one workgroup takes.
                            Err(Error::TooLarge { .. }) => {
                                assert!(layout != RowLayout::Contiguous, "{case}");
                                assert!(classes > longest, "{case}");
                            }
                            Err(e) => panic!("{case}: {e}"),
                        }
                    }
                }
            }
        }
        // A loop-bound split keeps at least the segments that fill the adapter.
        let plan = row_plan(1, 1 << 26, RowLayout::Contiguous, &limits, cpu, None).unwrap();
        assert_eq!(plan.segments as usize, MAX_SEGMENTS);
        let plan = row_plan(64, 1 << 26, RowLayout::Contiguous, &limits, cpu, None).unwrap();
        assert!(plan.segments > 1 && u64::from(plan.segment_len) <= longest as u64);
        // Strided rows past a thread's budget get more threads.
        let plan = row_plan(2, 70_000, RowLayout::Strided, &limits, cpu, None).unwrap();
        assert!(plan.row_threads > 1, "{plan:?}");
    }

    #[test]
    fn chunks_fit_the_binding_and_keep_outputs_aligned() {
        let limits = wgpu::Limits {
            max_storage_buffer_binding_size: 1 << 20,
            min_storage_buffer_offset_alignment: 256,
            ..wgpu::Limits::default()
        };
        // Everything fits: one chunk.
        assert_eq!(
            chunks(100, &[1200], &[4], 8, &limits).unwrap(),
            vec![0..100]
        );
        // 1200-byte rows: 873 fit; 256-byte alignment of 4-byte outputs needs multiples of 64.
        let cut = chunks(3000, &[1200], &[4, 1200], 8, &limits).unwrap();
        assert_eq!(cut[0], 0..832);
        assert_eq!(cut.last().unwrap().end, 3000);
        assert!(cut.windows(2).all(|w| w[0].end == w[1].start));
        for range in &cut {
            assert!(range.len() as u64 * 1200 + 260 <= 1 << 20);
            assert_eq!(range.start * 4 % 256, 0);
        }
        // Whole workgroups of 1024 elements.
        let cut = chunks(1_000_000, &[4], &[4], 1024, &limits).unwrap();
        assert!(cut.iter().all(|r| r.start % 1024 == 0));
        // A device with 16-byte alignment takes rows of up to nearly a binding / 4.
        let fine = wgpu::Limits {
            min_storage_buffer_offset_alignment: 16,
            ..limits.clone()
        };
        assert!(
            chunks(10, &[200_000], &[4, 200_000], 1, &fine)
                .unwrap()
                .len()
                > 1
        );
        // Rows too wide for one granule of them: an error naming the limit.
        assert!(matches!(
            chunks(10, &[600_000], &[4], 1, &limits),
            Err(Error::TooLarge {
                limit_name: "max_storage_buffer_binding_size",
                ..
            })
        ));
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
