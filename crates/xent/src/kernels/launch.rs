//! What every loss kernel's launch shares: dispatches, override constants, the row kernels'
//! scratch and split rows, and the batch reduction.

use crate::error::{Error, Operation, Result};
use crate::gpu::buffers;
use crate::gpu::program::{whole, Program};
use crate::gpu::Gpu;
use crate::kernels::shaders::{Kernel, KernelKey};
use crate::loss::Reduction;
use crate::plan::{self, Grid, RowPlan, ELEMENTWISE_ITEMS, WORKGROUP_SIZE};

/// A buffer for the binding of a kernel's slot of this name.
pub(crate) type Named<'b> = (&'static str, wgpu::BufferBinding<'b>);

/// Adds a dispatch of `key` over `grid` to `program`, each buffer bound to the slot of its name
/// (in the order of the kernel's binding table, see `Kernel::bindings`), compiling its pipeline
/// on first use.
pub(crate) fn dispatch(
    gpu: &Gpu,
    program: &mut Program,
    key: &KernelKey,
    grid: Grid,
    named: &[Named<'_>],
) -> Result<()> {
    if grid.groups == 0 {
        return Ok(());
    }
    let slots = key.slots();
    let unbound = |what: String| Error::Gpu {
        operation: Operation::Prepare,
        kernel: Some(key.kernel.file()),
        message: what,
    };
    if named.len() != slots.len() {
        return Err(unbound(format!(
            "{} buffers for {} bindings",
            named.len(),
            slots.len()
        )));
    }
    let buffers = slots
        .iter()
        .map(|slot| {
            named
                .iter()
                .find(|(name, _)| *name == slot.name)
                .map(|(_, b)| b.clone())
                .ok_or_else(|| unbound(format!("no buffer for the binding {}", slot.name)))
        })
        .collect::<Result<Vec<_>>>()?;
    program.push(gpu, &key.compile(gpu)?, grid, &buffers);
    Ok(())
}

/// The plan of a row kernel over `rows` rows of `classes` logits laid out as `layout` on
/// `gpu` (see [`plan::row_plan`]).
pub(crate) fn row_plan(
    gpu: &Gpu,
    rows: usize,
    classes: usize,
    layout: plan::RowLayout,
) -> Result<RowPlan> {
    let subgroups = gpu.subgroup_size();
    plan::row_plan(rows, classes, layout, gpu.limits(), gpu.tuning(), subgroups)
}

/// Override constants every row kernel takes; a `SUBGROUP` above 0 also builds the kernel
/// with subgroup shuffles.
pub(crate) fn row_constants(plan: &RowPlan) -> Vec<(&'static str, u32)> {
    vec![
        ("WG", WORKGROUP_SIZE),
        ("ROW_THREADS", plan.row_threads),
        ("SUBGROUP", plan.subgroup),
        ("SPLIT", u32::from(plan.split())),
        ("CACHED", plan.cache_slots),
        ("ROWS_PER_THREAD", plan.rows_per_thread),
    ]
}

/// A row kernel's `scratch` binding (see shaders/common/row_state.wgsl): one vec4 for the
/// mean's denominator, then room for the segment states of the largest of `chunks` of rows
/// when rows are split, then `tail_per_row` f32 per row of the largest chunk (cross-entropy's
/// log-sum-exp output, shaders/common/z_loss.wgsl, or its shard states,
/// shaders/cross_entropy.wgsl). Returns the buffer and the f32 index where that tail starts (a
/// multiple of 4).
pub(crate) fn scratch(
    gpu: &Gpu,
    plan: &RowPlan,
    chunks: &[std::ops::Range<usize>],
    tail_per_row: usize,
) -> Result<(wgpu::Buffer, usize)> {
    let rows = chunks.iter().map(|c| c.len()).max().unwrap_or(0);
    let states = if plan.split() {
        rows * plan.segments as usize
    } else {
        0
    };
    let tail_first = 4 * (1 + states);
    let tail = rows.saturating_mul(tail_per_row);
    let buffer = buffers::output(gpu, "xent row scratch", tail_first + tail)?;
    Ok((buffer, tail_first))
}

/// Adds a row kernel's dispatch over a chunk of `rows` rows, buffers bound by slot name: for
/// split rows, the segment states' dispatch first.
pub(crate) fn push_rows(
    gpu: &Gpu,
    program: &mut Program,
    plan: &RowPlan,
    key: &KernelKey,
    rows: usize,
    buffers: &[Named<'_>],
) -> Result<()> {
    let grid = plan.grid_for(rows, gpu.limits())?;
    if plan.split() {
        dispatch(gpu, program, &key.segment_states(), grid, buffers)?;
    }
    dispatch(gpu, program, key, grid, buffers)
}

/// Override constants every elementwise kernel takes.
pub(crate) fn elementwise_constants() -> Vec<(&'static str, u32)> {
    vec![("WG", WORKGROUP_SIZE), ("ITEMS", ELEMENTWISE_ITEMS)]
}

/// Override constants shared by the loss kernels: whether the loss is reduced, and whether
/// they write the gradient. (Mean or sum is a kernel parameter: one pipeline serves both.)
pub(crate) fn loss_constants(reduction: Reduction, grad: bool) -> [(&'static str, u32); 2] {
    [
        ("REDUCED", u32::from(reduction != Reduction::None)),
        ("GRAD", u32::from(grad)),
    ]
}

crate::gpu::params::wgsl_params! {
    /// Mirrors `Params` of shaders/reduce_pairs.wgsl.
    struct ReduceParams mirrors ["reduce_pairs.wgsl"] {
        len: u32,
        _pad: [u32; 3],
    }
}

/// Adds the deterministic reduction of `count` (loss, weight) pairs in `pairs` down to one
/// loss: the summed loss, or with `mean` the summed loss over the summed weight. Returns the
/// buffer whose first f32 will hold it: `into`, or a new one-element buffer.
pub(crate) fn reduce_pairs(
    gpu: &Gpu,
    program: &mut Program,
    pairs: wgpu::Buffer,
    count: usize,
    mean: bool,
    into: Option<&wgpu::Buffer>,
) -> Result<wgpu::Buffer> {
    let block = (WORKGROUP_SIZE * ELEMENTWISE_ITEMS) as usize;
    let mut pairs = pairs;
    let mut count = count;
    loop {
        let last = count <= block;
        let grid = if last {
            plan::grid(1, gpu.limits())?
        } else {
            plan::elementwise_grid(count, gpu.limits())?
        };
        let out = match (last, into) {
            (true, Some(into)) => into.clone(),
            (true, None) => buffers::output(gpu, "xent batch sum", 1)?,
            (false, _) => buffers::output(gpu, "xent partial sums", 2 * grid.groups as usize)?,
        };
        let params = buffers::uniform(
            gpu,
            &ReduceParams {
                len: count as u32,
                _pad: [0; 3],
            },
        )?;
        let mut constants = elementwise_constants();
        constants.push(("FINAL", u32::from(last)));
        constants.push(("MEAN", u32::from(mean)));
        let key = KernelKey::new(Kernel::ReducePairs, constants);
        dispatch(
            gpu,
            program,
            &key,
            grid,
            &[
                ("params", whole(&params)),
                ("pairs", whole(&pairs)),
                ("out", whole(&out)),
            ],
        )?;
        if last {
            return Ok(out);
        }
        pairs = out;
        count = grid.groups as usize;
    }
}

crate::gpu::params::wgsl_params! {
    /// Mirrors `Params` of shaders/merge_states.wgsl.
    struct MergeParams mirrors ["merge_states.wgsl"] {
        rows: u32,
        block_first: u32,
        merged_first: u32,
        _pad: u32,
    }
}

/// Adds the fold of `rows` row states of `states` (a binding and the index, in states, of its
/// first row's) into the running states `merged` (the same), in place
/// (shaders/merge_states.wgsl): the merge of fused linear cross-entropy's class blocks and of
/// a vocabulary split's shards. A state is 4 f32.
pub(crate) fn merge_states(
    gpu: &Gpu,
    program: &mut Program,
    (states, block_first): (wgpu::BufferBinding<'_>, usize),
    (merged, merged_first): (wgpu::BufferBinding<'_>, usize),
    rows: usize,
) -> Result<()> {
    let index = |i: usize| {
        u32::try_from(i).map_err(|_| Error::InvalidShape {
            reason: format!("a row state index of {i} does not fit in 32 bits"),
        })
    };
    let params = buffers::uniform(
        gpu,
        &MergeParams {
            rows: index(rows)?,
            block_first: index(block_first)?,
            merged_first: index(merged_first)?,
            _pad: 0,
        },
    )?;
    let grid = plan::grid(rows.div_ceil(WORKGROUP_SIZE as usize) as u64, gpu.limits())?;
    let key = KernelKey::new(Kernel::MergeStates, vec![("WG", WORKGROUP_SIZE)]);
    let bindings = [
        ("params", whole(&params)),
        ("states", states),
        ("merged", merged),
    ];
    dispatch(gpu, program, &key, grid, &bindings)
}
