//! Fused linear cross-entropy: the loss of logits `hidden classifier^T + bias` and the
//! gradients of hidden, classifier and bias, never holding more logits than one block.
//!
//! The (N, V) logits are cut into blocks of `nb` tokens by `vb` classes that fit the block
//! budget. For each block of tokens:
//! 1. forward: each block of classes' logits is computed into the block buffer
//!    (shaders/matmul.wgsl), reduced to per-row states over its classes by the cross-entropy
//!    kernel (`SHARD` 1, shaders/cross_entropy.wgsl), and folded into the rows' running states
//!    in class order (shaders/merge_states.wgsl);
//! 2. loss: the cross-entropy kernel (`SHARD` 2, no gradient) forms each row's loss from its
//!    merged state, with every option, into the batch's (loss, weight) pairs;
//! 3. backward (with gradients): each block of classes' logits is computed again (unless one
//!    block holds all of them), the cross-entropy kernel (`SHARD` 2) writes the logits'
//!    gradient over them, and three products add its share: dH[tokens] += G W[classes],
//!    dW[classes] += G^T H[tokens], db[classes] += column sums of G.
//!
//! Every sum runs in a fixed order (blocks one after another, each value one thread's sum),
//! so repeated runs give the same bits. Device memory beyond inputs and gradients: the block
//! (at most `nb vb` f32), 16 bytes of state per token and the row kernels' small buffers.

use crate::error::{Error, Result};
use crate::gpu::buffers;
use crate::gpu::program::{whole, Program};
use crate::gpu::tensor::{GpuTensor, Window};
use crate::gpu::Gpu;
use crate::kernels::cross_entropy::{
    constants, denominator, params_buffer, weight_buffer, ChunkPos, SHARD_STATE_LEN,
};
use crate::kernels::launch::{self, Named};
use crate::kernels::outputs::LossBuffers;
use crate::kernels::shaders::{Kernel, KernelKey};
use crate::loss::call::ClassShape;
use crate::loss::linear::LinearShape;
use crate::loss::{CrossEntropy, Reduction};
use crate::plan::{self, Grid, RowLayout, WORKGROUP_SIZE};
use crate::prepared::{GradMode, GradOut, PreparedLoss, StatusKind, TargetStatus};
use crate::Dtype;

/// The tile of C each matmul workgroup computes (shaders/matmul.wgsl), a side.
const TILE: usize = 64;

/// Classes a block keeps at least (when the budget allows): blocks of many tokens by few
/// classes would run many short products.
const MIN_CLASS_BLOCK: usize = 1024;

/// Token blocks (when there are several) are a multiple of this many tokens: 256 bytes of f32
/// per token, the largest storage-offset alignment WebGPU allows, so that the windows of a
/// block's losses and upstream gradients start where a binding may.
const TOKEN_ALIGN: usize = 64;

/// Blocks a problem may be cut into: a larger count means a budget too small for its size.
const MAX_BLOCKS: usize = 1 << 16;

/// The caller's tensors: hidden (N, D), classifier (V, D), bias (V), labels (N) i32.
#[derive(Clone, Copy)]
pub(crate) struct LinearTensors<'a> {
    pub(crate) hidden: GpuTensor<'a>,
    pub(crate) classifier: GpuTensor<'a>,
    pub(crate) bias: Option<GpuTensor<'a>>,
    pub(crate) labels: GpuTensor<'a>,
}

/// The gradients xent owns: hidden (N, D), classifier (V, D), bias (V) with a bias.
pub(crate) struct LinearGrads {
    pub(crate) hidden: GradOut,
    pub(crate) classifier: GradOut,
    pub(crate) bias: Option<GradOut>,
}

/// Mirrors `Params` of shaders/matmul.wgsl.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct MatmulParams {
    m: u32,
    n: u32,
    k: u32,
    bias_first: u32,
    a_first: u32,
    a_i: u32,
    a_k: u32,
    b_first: u32,
    b_k: u32,
    b_j: u32,
    c_first: u32,
    c_i: u32,
}

/// Mirrors `Params` of shaders/merge_states.wgsl.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct MergeParams {
    rows: u32,
    block_first: u32,
    merged_first: u32,
    _pad: u32,
}

/// A matrix operand bound as a window, with the element strides of its two indices (row
/// index, column index of the operand as the product reads it).
struct Operand<'a> {
    window: Window<'a>,
    strides: (u32, u32),
}

impl<'a> Operand<'a> {
    /// Rows `rows` of a row-major tensor of `cols` columns, read as stored.
    fn rows(
        gpu: &Gpu,
        what: &'static str,
        tensor: &GpuTensor<'a>,
        rows: std::ops::Range<usize>,
        cols: usize,
    ) -> Result<Operand<'a>> {
        let window = tensor.rows_window(gpu.limits(), what, rows, cols)?;
        let strides = (window.stride, 1);
        Ok(Operand { window, strides })
    }

    /// The same operand read transposed.
    fn transposed(self) -> Operand<'a> {
        let (i, k) = self.strides;
        Operand {
            strides: (k, i),
            ..self
        }
    }
}

/// One product C (m x n) (+)= A (m x k) B (k x n) (+ bias) (see shaders/matmul.wgsl).
struct Product<'a, 'b> {
    dims: (usize, usize, usize),
    a: &'b Operand<'a>,
    b: &'b Operand<'a>,
    bias: Option<&'b Window<'a>>,
    c: &'b Window<'a>,
    accumulate: bool,
}

impl Product<'_, '_> {
    /// The product's kernel parameters.
    fn params(&self, gpu: &Gpu) -> Result<wgpu::Buffer> {
        let (m, n, k) = self.dims;
        buffers::uniform(
            gpu,
            &MatmulParams {
                m: m as u32,
                n: n as u32,
                k: k as u32,
                bias_first: self.bias.map_or(0, |b| b.first),
                a_first: self.a.window.first,
                a_i: self.a.strides.0,
                a_k: self.a.strides.1,
                b_first: self.b.window.first,
                b_k: self.b.strides.0,
                b_j: self.b.strides.1,
                c_first: self.c.first,
                c_i: self.c.stride,
            },
        )
    }

    /// The product's bindings: a placeholder for an absent bias.
    fn bindings<'p>(
        &'p self,
        params: &'p wgpu::Buffer,
        placeholder: &'p wgpu::Buffer,
    ) -> [Named<'p>; 5] {
        let bias = self
            .bias
            .map_or_else(|| whole(placeholder), |b| b.binding.clone());
        [
            ("params", whole(params)),
            ("a", self.a.window.binding.clone()),
            ("b", self.b.window.binding.clone()),
            ("bias", bias),
            ("c", self.c.binding.clone()),
        ]
    }

    /// Adds the product's dispatch: a workgroup per TILE x TILE of C.
    fn push(&self, gpu: &Gpu, program: &mut Program, placeholder: &wgpu::Buffer) -> Result<()> {
        let (m, n, _) = self.dims;
        let (x, y) = (n.div_ceil(TILE), m.div_ceil(TILE));
        let max = gpu.limits().max_compute_workgroups_per_dimension as usize;
        if x > max || y > max {
            return Err(Error::TooLarge {
                what: "a block of the product".into(),
                needed: x.max(y) as u64,
                limit_name: "max_compute_workgroups_per_dimension",
                limit: max as u64,
            });
        }
        let grid = Grid {
            x: x as u32,
            y: y as u32,
            groups: (x * y) as u32,
        };
        let constants = vec![
            ("ACCUMULATE", u32::from(self.accumulate)),
            ("HAS_BIAS", u32::from(self.bias.is_some())),
            ("A_K_FAST", u32::from(self.a.strides.1 == 1)),
            ("B_K_FAST", u32::from(self.b.strides.0 == 1)),
        ];
        let key = KernelKey::new(Kernel::Matmul, constants);
        let params = self.params(gpu)?;
        let bindings = self.bindings(&params, placeholder);
        launch::dispatch(gpu, program, &key, grid, &bindings)
    }

    /// Adds the column sums of A (m x n, as `a` reads it) into C's first row: a thread per
    /// column.
    fn push_column_sums(
        &self,
        gpu: &Gpu,
        program: &mut Program,
        placeholder: &wgpu::Buffer,
    ) -> Result<()> {
        let (_, n, _) = self.dims;
        let grid = plan::grid(n.div_ceil(WORKGROUP_SIZE as usize) as u64, gpu.limits())?;
        let constants = vec![("ACCUMULATE", u32::from(self.accumulate))];
        let key = KernelKey {
            entry: "column_sums",
            ..KernelKey::new(Kernel::Matmul, constants)
        };
        let params = self.params(gpu)?;
        let bindings = self.bindings(&params, placeholder);
        launch::dispatch(gpu, program, &key, grid, &bindings)
    }
}

/// The block of `nb` tokens by `vb` classes a problem is cut into: the largest that fits
/// `budget` bytes and every binding, with at least [`MIN_CLASS_BLOCK`] classes where the
/// budget allows, class blocks a multiple of the tile, and token blocks (when there are
/// several) a multiple of [`TOKEN_ALIGN`] so that each one's per-token windows are aligned.
pub(crate) fn blocks(
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
    let too_small = |reason: String| Error::InvalidOption {
        name: "block_bytes",
        value: budget.to_string(),
        reason,
    };
    if rows.checked_mul(classes).is_some_and(|all| all <= cap)
        && rows.max(classes) <= feature_rows.min(max_side)
    {
        return Ok((rows, classes));
    }
    // Room for at least TOKEN_ALIGN tokens (or all of them) per block.
    let min_rows = rows.min(TOKEN_ALIGN);
    let mut vb = classes
        .min((cap / rows).max(MIN_CLASS_BLOCK.min(cap / min_rows)))
        .min(feature_rows)
        .min(max_side)
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

/// Consecutive ranges of `block` items covering `len`.
fn ranges(len: usize, block: usize) -> impl Iterator<Item = std::ops::Range<usize>> {
    (0..len)
        .step_by(block)
        .map(move |start| start..(start + block).min(len))
}

/// Checks the caller's tensors against the shape; returns the labels' tensor checked as
/// 4-byte values.
fn check_tensors<'a>(tensors: &LinearTensors<'a>, shape: LinearShape) -> Result<GpuTensor<'a>> {
    let LinearShape { rows, dim, classes } = shape;
    let f32_only = |what: &'static str, t: &GpuTensor<'_>| {
        if t.dtype != Dtype::F32 {
            return Err(Error::UnsupportedDtype {
                what,
                dtype: t.dtype,
                reason: "fused linear cross-entropy takes f32 hidden states, classifier and bias"
                    .into(),
            });
        }
        Ok(())
    };
    f32_only("hidden", &tensors.hidden)?;
    f32_only("classifier", &tensors.classifier)?;
    tensors.hidden.check_extent("hidden", rows, dim)?;
    tensors
        .classifier
        .check_extent("classifier", classes, dim)?;
    if let Some(bias) = &tensors.bias {
        f32_only("bias", bias)?;
        bias.check_extent("bias", 1, classes)?;
    }
    let labels = tensors.labels.four_byte("targets")?;
    labels.check_extent("targets", rows, 1)?;
    Ok(labels)
}

/// Prepares fused linear cross-entropy on the caller's tensors (f32), with `options` over V
/// classes, the gradients of hidden, classifier and bias when `grads`, in blocks of at most
/// `budget` bytes of logits.
pub(crate) fn prepare_linear(
    gpu: &Gpu,
    tensors: LinearTensors<'_>,
    shape: LinearShape,
    options: &CrossEntropy,
    grads: bool,
    budget: u64,
) -> Result<(PreparedLoss, Option<LinearGrads>)> {
    let LinearShape { rows, dim, classes } = shape;
    let labels = check_tensors(&tensors, shape)?;
    let (nb, vb) = blocks(shape, budget, gpu.limits())?;
    let limits = gpu.limits();

    let block = buffers::work(gpu, "xent logits block", nb * vb)?;
    let block_tensor = GpuTensor::new(&block);
    let merged = buffers::work(gpu, "xent row states", rows * SHARD_STATE_LEN)?;
    plan::check_binding("row states", merged.size(), limits)?;
    let weight = weight_buffer(gpu, options)?;
    // Bindings a pass does not use: one read, one written (a dispatch cannot bind one buffer
    // both ways).
    let placeholder = buffers::output(gpu, "xent placeholder", 1)?;
    let sink = buffers::output(gpu, "xent unused output", 1)?;
    let status = TargetStatus::new(
        gpu,
        StatusKind::Labels {
            classes,
            ignore_index: options.ignore_index,
        },
    )?;
    // Where the gradient passes, which also write (identical) losses, put theirs.
    let discard_status = TargetStatus::new(
        gpu,
        StatusKind::Labels {
            classes,
            ignore_index: options.ignore_index,
        },
    )?;

    let token_blocks: Vec<_> = ranges(rows, nb).collect();
    let class_blocks: Vec<_> = ranges(classes, vb).collect();
    let plan_of =
        |rows: usize, classes: usize| launch::row_plan(gpu, rows, classes, RowLayout::Whole);
    // The loss pass of each token block runs on the first class block's plan.
    let loss_grids = token_blocks
        .iter()
        .map(|t| plan_of(t.len(), class_blocks[0].len())?.grid_for(t.len(), limits))
        .collect::<Result<Vec<_>>>()?;
    let groups: u32 = loss_grids.iter().map(|g| g.groups).sum();
    let mode = match grads {
        true => GradMode::InPlace,
        false => GradMode::Off,
    };
    let first_grid = loss_grids[0];
    let mut loss_buffers = LossBuffers::new(
        gpu,
        options.reduction,
        rows,
        first_grid,
        mode,
        nb * vb,
        &block_tensor,
    )?;
    loss_buffers.set_groups(gpu, groups)?;
    let discard_len = match options.reduction {
        Reduction::None => nb,
        Reduction::Mean | Reduction::Sum => 2 * groups as usize,
    };
    let discard = buffers::work(gpu, "xent discarded losses", discard_len)?;
    let plan0 = plan_of(nb, class_blocks[0].len())?;
    let largest = std::iter::once(0..nb).collect::<Vec<_>>();
    let (scratch, lse_first) = launch::scratch(gpu, &plan0, &largest, SHARD_STATE_LEN)?;
    let tail = (&scratch, 4 * lse_first as u64);

    let out_grads = match grads {
        false => None,
        true => Some(LinearGrads {
            hidden: owned_grad(gpu, "xent hidden gradient", rows * dim)?,
            classifier: owned_grad(gpu, "xent classifier gradient", classes * dim)?,
            bias: match tensors.bias {
                Some(_) => Some(owned_grad(gpu, "xent bias gradient", classes)?),
                None => None,
            },
        }),
    };

    let mut program = loss_buffers.program();
    program.clear(&status.buffer);
    if grads && options.reduction == Reduction::Mean {
        let vocab = ClassShape::rows(rows, classes);
        denominator(
            gpu,
            &mut program,
            vocab,
            &labels,
            (options, &weight),
            &scratch,
        )?;
    }
    let state_options = CrossEntropy {
        reduction: Reduction::None,
        ..options.clone()
    };
    let status_key = KernelKey::new(Kernel::LabelStatus, Vec::new());
    let mut pair_base = 0;
    for (t, (tokens, loss_grid)) in token_blocks.iter().zip(&loss_grids).enumerate() {
        let n = tokens.len();
        let hidden = Operand::rows(gpu, "hidden", &tensors.hidden, tokens.clone(), dim)?;
        let y = labels.rows_window(limits, "targets", tokens.clone(), 1)?;
        let state_bytes = (4 * SHARD_STATE_LEN * n) as u64;
        let merged_at = (&merged, (4 * SHARD_STATE_LEN * tokens.start) as u64);
        let row_pass =
            |program: &mut Program, classes_at: &std::ops::Range<usize>, pass: Pass<'_>| {
                let c = classes_at.len();
                let plan = plan_of(n, c)?;
                let x = block_tensor.window(limits, "logits block", n, c)?;
                let chunk = ChunkPos {
                    rows: tokens.clone(),
                    pair_base: pass.pair_base,
                    total_rows: rows,
                    segments: (plan.segments, plan.segment_len),
                    lse_first,
                    vocab: (classes_at.start, classes),
                };
                let shape = ClassShape::rows(n, c);
                let params = params_buffer(gpu, shape, pass.options, &x, &y, &chunk)?;
                let key = KernelKey::new(
                    Kernel::CrossEntropy,
                    constants(
                        (&plan, shape),
                        pass.options,
                        (pass.use_q, pass.shard),
                        pass.mode,
                    ),
                );
                let bindings = [
                    ("params", whole(&params)),
                    ("x_data", x.binding),
                    ("labels", y.binding.clone()),
                    ("weight", whole(&weight)),
                    ("out", pass.out),
                    ("upstream", pass.upstream),
                    ("grad_data", whole(&sink)),
                    ("status", whole(pass.status)),
                    ("scratch", whole(&scratch)),
                ];
                launch::push_rows(gpu, program, &plan, &key, n, &bindings)?;
                if pass.report {
                    let status_bindings = [
                        ("params", whole(&params)),
                        ("labels", y.binding.clone()),
                        ("status", whole(pass.status)),
                    ];
                    let one = plan::grid(1, limits)?;
                    launch::dispatch(gpu, program, &status_key, one, &status_bindings)?;
                }
                Ok::<(), Error>(())
            };
        let logits = |program: &mut Program, classes_at: &std::ops::Range<usize>| {
            let c = classes_at.len();
            let w = Operand::rows(
                gpu,
                "classifier",
                &tensors.classifier,
                classes_at.clone(),
                dim,
            )?
            .transposed();
            let bias = match &tensors.bias {
                Some(b) => Some(b.window(limits, "bias", 1, classes)?),
                None => None,
            };
            let bias = bias.map(|b| Window {
                first: b.first + classes_at.start as u32,
                ..b
            });
            let out = block_tensor.window(limits, "logits block", n, c)?;
            Product {
                dims: (n, c, dim),
                a: &hidden,
                b: &w,
                bias: bias.as_ref(),
                c: &out,
                accumulate: false,
            }
            .push(gpu, program, &placeholder)
        };

        // 1. Forward: each class block's states, folded in class order.
        for (k, classes_at) in class_blocks.iter().enumerate() {
            logits(&mut program, classes_at)?;
            let pass = Pass {
                options: &state_options,
                use_q: true,
                shard: 1,
                mode: GradMode::Off,
                out: whole(&discard),
                upstream: whole(&placeholder),
                status: &discard_status.buffer,
                pair_base: 0,
                report: false,
            };
            row_pass(&mut program, classes_at, pass)?;
            if k == 0 {
                program.copy(tail, merged_at, state_bytes);
            } else {
                merge(gpu, &mut program, (&scratch, lse_first), (&merged, tokens))?;
            }
        }
        // 2. The loss of each row from its merged state.
        program.copy(merged_at, tail, state_bytes);
        let [out, upstream, _] = loss_buffers.chunk(tokens.clone(), 1);
        let use_q = options.label_smoothing > 0.0;
        let pass = Pass {
            options,
            use_q,
            shard: 2,
            mode: GradMode::Off,
            out: out.1,
            upstream: upstream.1.clone(),
            status: &status.buffer,
            pair_base,
            report: true,
        };
        row_pass(&mut program, &class_blocks[0], pass)?;
        pair_base += loss_grid.groups as usize;
        let Some(out_grads) = &out_grads else {
            continue;
        };
        // 3. Backward: each class block's gradient of the logits, then its products.
        for (k, classes_at) in class_blocks.iter().enumerate() {
            if class_blocks.len() > 1 {
                logits(&mut program, classes_at)?;
            }
            let pass = Pass {
                options,
                use_q,
                shard: 2,
                mode: GradMode::InPlace,
                out: whole(&discard),
                upstream: upstream.1.clone(),
                status: &discard_status.buffer,
                pair_base: 0,
                report: false,
            };
            row_pass(&mut program, classes_at, pass)?;
            let c = classes_at.len();
            let g = Operand::rows(gpu, "logits block", &block_tensor, 0..n, c)?;
            let w = Operand::rows(
                gpu,
                "classifier",
                &tensors.classifier,
                classes_at.clone(),
                dim,
            )?;
            let dh = GpuTensor::new(&out_grads.hidden.buffer).rows_window(
                limits,
                "hidden gradient",
                tokens.clone(),
                dim,
            )?;
            Product {
                dims: (n, dim, c),
                a: &g,
                b: &w,
                bias: None,
                c: &dh,
                accumulate: k > 0,
            }
            .push(gpu, &mut program, &placeholder)?;
            let gt = Operand::rows(gpu, "logits block", &block_tensor, 0..n, c)?.transposed();
            let dw = GpuTensor::new(&out_grads.classifier.buffer).rows_window(
                limits,
                "classifier gradient",
                classes_at.clone(),
                dim,
            )?;
            Product {
                dims: (c, dim, n),
                a: &gt,
                b: &hidden,
                bias: None,
                c: &dw,
                accumulate: t > 0,
            }
            .push(gpu, &mut program, &placeholder)?;
            if let Some(db) = &out_grads.bias {
                let db = GpuTensor::new(&db.buffer).rows_window(
                    limits,
                    "bias gradient",
                    classes_at.clone(),
                    1,
                )?;
                // Column sums of G (n x c) into db's window.
                Product {
                    dims: (n, c, 0),
                    a: &g,
                    b: &g,
                    bias: None,
                    c: &db,
                    accumulate: t > 0,
                }
                .push_column_sums(gpu, &mut program, &placeholder)?;
            }
        }
    }
    let mut prepared = loss_buffers.finish(gpu, program)?;
    // The logits block is not a result.
    prepared.grad = None;
    Ok((prepared.watch(status), out_grads))
}

/// One cross-entropy row pass over a block of logits.
struct Pass<'p> {
    options: &'p CrossEntropy,
    use_q: bool,
    /// The kernel's `SHARD`: 1 states, 2 loss and gradient from merged states.
    shard: u32,
    mode: GradMode,
    out: wgpu::BufferBinding<'p>,
    upstream: wgpu::BufferBinding<'p>,
    status: &'p wgpu::Buffer,
    pair_base: usize,
    /// Whether the pass records bad labels for reading (the loss pass only: the others would
    /// count each row again).
    report: bool,
}

/// Folds the states a row pass left in the scratch tail into `rows` of `merged`.
fn merge(
    gpu: &Gpu,
    program: &mut Program,
    (scratch, lse_first): (&wgpu::Buffer, usize),
    (merged, rows): (&wgpu::Buffer, &std::ops::Range<usize>),
) -> Result<()> {
    let params = buffers::uniform(
        gpu,
        &MergeParams {
            rows: rows.len() as u32,
            block_first: (lse_first / SHARD_STATE_LEN) as u32,
            merged_first: rows.start as u32,
            _pad: 0,
        },
    )?;
    let grid = plan::grid(
        rows.len().div_ceil(WORKGROUP_SIZE as usize) as u64,
        gpu.limits(),
    )?;
    let key = KernelKey::new(Kernel::MergeStates, vec![("WG", WORKGROUP_SIZE)]);
    let bindings = [
        ("params", whole(&params)),
        ("states", whole(scratch)),
        ("merged", whole(merged)),
    ];
    launch::dispatch(gpu, program, &key, grid, &bindings)
}

/// A gradient buffer xent owns, f32, packed.
fn owned_grad(gpu: &Gpu, what: &str, len: usize) -> Result<GradOut> {
    Ok(GradOut {
        buffer: buffers::work(gpu, what, len)?,
        len,
        dtype: Dtype::F32,
        packed: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
