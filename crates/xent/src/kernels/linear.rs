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

use crate::dtype::{Dtype, Types};
use crate::error::{Error, Result};
use crate::gpu::buffers;
use crate::gpu::program::{whole, Program};
use crate::gpu::tensor::{GpuTensor, Window};
use crate::gpu::Gpu;
use crate::kernels::cross_entropy::{
    constants, denominator, params_buffer, push_label_status, weight_buffer, ChunkPos,
    SHARD_STATE_LEN,
};
use crate::kernels::launch::{self, merge_states, Named};
use crate::kernels::outputs::LossBuffers;
use crate::kernels::shaders::{Kernel, KernelKey};
use crate::loss::call::ClassShape;
use crate::loss::linear::LinearShape;
use crate::loss::GradMode;
use crate::loss::{CrossEntropy, Reduction};
use crate::plan::{self, Grid, RowLayout, RowPlan, WORKGROUP_SIZE};
use crate::prepared::{GradOut, PreparedLoss, StatusKind, TargetStatus};

/// The tile of C each matmul workgroup computes (shaders/matmul.wgsl), a side.
const TILE: usize = 64;

/// The depth (K) one product dispatch runs: its loop steps TK = 32 deep, each with a loop of
/// TK and two staging steps, so 16384 make 512 x 35 iterations, within
/// [`plan::MAX_LOOP_TRIPS`]. A deeper product is several dispatches, each adding its part.
const PRODUCT_DEPTH: usize = 1 << 14;

/// The rows one column-sum dispatch adds (one loop iteration each and one per block of 32,
/// within [`plan::MAX_LOOP_TRIPS`]); more rows are several dispatches, each adding its part.
const COLUMN_SUM_ROWS: usize = 1 << 14;

/// Classes a block keeps at least (when the budget allows): blocks of many tokens by few
/// classes would run many short products.
const MIN_CLASS_BLOCK: usize = 1024;

/// Token blocks (when there are several) are a multiple of this many tokens: 256 bytes of f32
/// per token, the largest storage-offset alignment WebGPU allows, so that the windows of a
/// block's losses and upstream gradients start where a binding may.
const TOKEN_ALIGN: usize = 64;

/// Blocks a problem may be cut into: a larger count means a budget too small for its size.
/// Each block records about ten dispatches, some 30 KB of host memory with their parameters
/// and bind groups (measured on lavapipe: 4096 blocks of (64, 1, 65536) take 115 MB more than
/// one), so the cap bounds that at about 120 MB.
const MAX_BLOCKS: usize = 1 << 12;

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

crate::gpu::params::wgsl_params! {
    /// Mirrors `Params` of shaders/matmul.wgsl.
    struct MatmulParams mirrors ["matmul.wgsl"] {
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
}

/// A matrix operand bound as a window, with the element strides of its two indices (row
/// index, column index of the operand as the product reads it).
pub(crate) struct Operand<'a> {
    window: Window<'a>,
    strides: (u32, u32),
    dtype: Dtype,
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
        Ok(Operand {
            window,
            strides,
            dtype: tensor.dtype,
        })
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
pub(crate) struct Product<'a, 'b> {
    dims: (usize, usize, usize),
    a: &'b Operand<'a>,
    b: &'b Operand<'a>,
    bias: Option<&'b Window<'a>>,
    c: &'b Window<'a>,
    accumulate: bool,
}

impl Product<'_, '_> {
    /// The kernel parameters of the part of the product that starts `skip` along A's rows
    /// (column sums) and `depth.start` along the inner dimension, `depth.len()` deep (`rows` rows).
    fn params(
        &self,
        gpu: &Gpu,
        (skip, rows): (usize, usize),
        depth: std::ops::Range<usize>,
    ) -> Result<wgpu::Buffer> {
        let (_, n, _) = self.dims;
        let (a_i, a_k) = self.a.strides;
        let b_k = self.b.strides.0;
        // Offsets within windows the tensors' checks sized, so within u32.
        let offset = |first: u32, steps: usize, stride: u32| -> Result<u32> {
            steps
                .checked_mul(stride as usize)
                .and_then(|o| o.checked_add(first as usize))
                .and_then(|o| u32::try_from(o).ok())
                .ok_or_else(|| Error::TooLarge {
                    what: "an operand of the product".into(),
                    needed: u64::MAX,
                    limit_name: "u32 element index",
                    limit: u64::from(u32::MAX),
                })
        };
        let a_first = offset(self.a.window.first, skip, a_i)?;
        buffers::uniform(
            gpu,
            &MatmulParams {
                m: rows as u32,
                n: n as u32,
                k: depth.len() as u32,
                bias_first: self.bias.map_or(0, |b| b.first),
                a_first: offset(a_first, depth.start, a_k)?,
                a_i,
                a_k,
                b_first: offset(self.b.window.first, depth.start, b_k)?,
                b_k,
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

    /// Adds the product's dispatches: a workgroup per TILE x TILE of C, one dispatch per
    /// [`PRODUCT_DEPTH`] of the inner dimension (the first writes or adds as the product does,
    /// with the bias; the others add).
    fn push(&self, gpu: &Gpu, program: &mut Program, placeholder: &wgpu::Buffer) -> Result<()> {
        let (m, n, depth) = self.dims;
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
        for (part, range) in ranges(depth.max(1), PRODUCT_DEPTH).enumerate() {
            let first = part == 0;
            let constants = vec![
                ("ACCUMULATE", u32::from(self.accumulate || !first)),
                ("HAS_BIAS", u32::from(self.bias.is_some() && first)),
                ("A_K_FAST", u32::from(self.a.strides.1 == 1)),
                ("B_K_FAST", u32::from(self.b.strides.0 == 1)),
            ];
            let key = KernelKey::typed(Kernel::Matmul, constants, self.types());
            let range = range.start..range.end.min(depth);
            let params = self.params(gpu, (0, m), range)?;
            let bindings = self.bindings(&params, placeholder);
            launch::dispatch(gpu, program, &key, grid, &bindings)?;
        }
        Ok(())
    }

    /// The operands' element types as the product kernel takes them (A as the input, B and
    /// the bias as the gradient slot; see `Kernel::Matmul`).
    fn types(&self) -> Types {
        Types {
            input: self.a.dtype,
            grad: self.b.dtype,
        }
    }

    /// Adds the column sums of A (m x n, as `a` reads it) into C's first row: a thread per
    /// column, one dispatch per [`COLUMN_SUM_ROWS`] rows (the first writes or adds as the
    /// product does, the others add).
    fn push_column_sums(
        &self,
        gpu: &Gpu,
        program: &mut Program,
        placeholder: &wgpu::Buffer,
    ) -> Result<()> {
        let (m, n, _) = self.dims;
        let grid = plan::grid(n.div_ceil(WORKGROUP_SIZE as usize) as u64, gpu.limits())?;
        // No rows still write (zeros) where the product writes.
        for (part, rows) in ranges(m.max(1), COLUMN_SUM_ROWS).enumerate() {
            let rows = rows.start..rows.end.min(m);
            let constants = vec![("ACCUMULATE", u32::from(self.accumulate || part > 0))];
            let key = KernelKey {
                entry: "column_sums",
                ..KernelKey::typed(Kernel::Matmul, constants, self.types())
            };
            let params = self.params(gpu, (rows.start, rows.len()), 0..0)?;
            let bindings = self.bindings(&params, placeholder);
            launch::dispatch(gpu, program, &key, grid, &bindings)?;
        }
        Ok(())
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

/// Consecutive ranges of `block` items covering `len`.
fn ranges(len: usize, block: usize) -> impl Iterator<Item = std::ops::Range<usize>> {
    (0..len)
        .step_by(block)
        .map(move |start| start..(start + block).min(len))
}

/// Checks the caller's tensors against the shape; returns the labels' tensor checked as
/// 4-byte values.
fn check_tensors<'a>(
    gpu: &Gpu,
    tensors: &LinearTensors<'a>,
    shape: LinearShape,
) -> Result<GpuTensor<'a>> {
    let LinearShape { rows, dim, classes } = shape;
    let f16 = [
        Some(&tensors.hidden),
        Some(&tensors.classifier),
        tensors.bias.as_ref(),
    ]
    .into_iter()
    .flatten()
    .any(|t| t.dtype == Dtype::F16);
    if f16 && !gpu.device().features().contains(wgpu::Features::SHADER_F16) {
        return Err(Error::UnsupportedAdapter {
            adapter: gpu.info().name.clone(),
            reason: "f16 needs wgpu::Features::SHADER_F16, which this device lacks".into(),
        });
    }
    tensors.hidden.check_extent("hidden", rows, dim)?;
    tensors
        .classifier
        .check_extent("classifier", classes, dim)?;
    if let Some(bias) = &tensors.bias {
        if bias.dtype != tensors.classifier.dtype {
            return Err(Error::UnsupportedDtype {
                what: "bias",
                dtype: bias.dtype,
                reason: format!(
                    "the bias takes the classifier's element type ({:?}), as a Linear layer's",
                    tensors.classifier.dtype
                ),
            });
        }
        bias.check_extent("bias", 1, classes)?;
    }
    let labels = tensors.labels.four_byte("targets")?;
    labels.check_extent("targets", rows, 1)?;
    Ok(labels)
}

/// Prepares fused linear cross-entropy on the caller's tensors (f32, f16 or bf16, accumulated
/// in f32; gradients f32), with `options` over V
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
    let labels = check_tensors(gpu, &tensors, shape)?;
    if shape.rows == 0 {
        return prepare_empty(gpu, shape, options, (grads, tensors.bias.is_some()));
    }
    let (nb, vb) = blocks(shape, budget, gpu.limits())?;
    let token_blocks: Vec<_> = ranges(shape.rows, nb).collect();
    let class_blocks: Vec<_> = ranges(shape.classes, vb).collect();
    let run = LinearRun::new(gpu, (tensors, labels), shape, options, (nb, vb))?;
    // The loss pass of each token block runs on the first class block's plan.
    let loss_grids = token_blocks
        .iter()
        .map(|t| {
            run.plan(t.len(), class_blocks[0].len())?
                .grid_for(t.len(), gpu.limits())
        })
        .collect::<Result<Vec<_>>>()?;
    let groups: u32 = loss_grids.iter().map(|g| g.groups).sum();
    let mode = match grads {
        true => GradMode::InPlace,
        false => GradMode::Off,
    };
    let block = GpuTensor::new(&run.block);
    let mut loss_buffers = LossBuffers::new(
        gpu,
        options.reduction,
        shape.rows,
        loss_grids[0],
        mode,
        nb * vb,
        &block,
    )?;
    loss_buffers.set_groups(gpu, groups)?;
    let discard = buffers::work(
        gpu,
        "xent discarded losses",
        match options.reduction {
            Reduction::None => nb,
            Reduction::Mean | Reduction::Sum => 2 * groups as usize,
        },
    )?;
    let out_grads = match grads {
        false => None,
        true => Some(LinearGrads::new(gpu, shape, tensors.bias.is_some())?),
    };

    let mut program = loss_buffers.program();
    program.clear(&run.status.buffer);
    if grads && options.reduction == Reduction::Mean {
        let vocab = ClassShape::rows(shape.rows, shape.classes);
        let weights = (options, &run.weight);
        denominator(gpu, &mut program, vocab, &run.labels, weights, &run.scratch)?;
    }
    let mut pair_base = 0;
    for (t, (tokens, loss_grid)) in token_blocks.iter().zip(&loss_grids).enumerate() {
        let at = TokenBlock::new(&run, t, tokens.clone())?;
        run.forward(&mut program, &at, &class_blocks, &discard)?;
        let [out, upstream, _] = loss_buffers.chunk(tokens.clone(), 1);
        run.loss(
            &mut program,
            &at,
            &class_blocks[0],
            (out.1, upstream.1.clone()),
            pair_base,
        )?;
        pair_base += loss_grid.groups as usize;
        if let Some(out_grads) = &out_grads {
            run.backward(
                &mut program,
                &at,
                &class_blocks,
                (upstream.1, &discard),
                out_grads,
            )?;
        }
    }
    let mut prepared = loss_buffers.finish(gpu, program)?;
    // The logits block is not a result.
    prepared.grad = None;
    Ok((prepared.watch(run.status), out_grads))
}

/// Fused linear cross-entropy of no tokens, as PyTorch gives it: a mean of NaN (0 / 0), a sum
/// of 0, no unreduced losses, no hidden gradient, and zero classifier and bias gradients.
fn prepare_empty(
    gpu: &Gpu,
    shape: LinearShape,
    options: &CrossEntropy,
    (grads, bias): (bool, bool),
) -> Result<(PreparedLoss, Option<LinearGrads>)> {
    let mode = match grads {
        true => GradMode::InPlace,
        false => GradMode::Off,
    };
    let none = buffers::work(gpu, "xent logits block", 1)?;
    let grid = Grid {
        x: 1,
        y: 1,
        groups: 0,
    };
    let block = GpuTensor::new(&none);
    let loss_buffers = LossBuffers::new(gpu, options.reduction, 0, grid, mode, 0, &block)?;
    let mut program = loss_buffers.program();
    let out_grads = match grads {
        false => None,
        true => Some(LinearGrads::new(gpu, shape, bias)?),
    };
    if let Some(g) = &out_grads {
        program.clear(&g.classifier.buffer);
        if let Some(b) = &g.bias {
            program.clear(&b.buffer);
        }
    }
    let mut prepared = loss_buffers.finish(gpu, program)?;
    prepared.grad = None;
    Ok((prepared, out_grads))
}

impl LinearGrads {
    /// Gradient buffers for `shape`, the bias's with `bias`.
    fn new(gpu: &Gpu, shape: LinearShape, bias: bool) -> Result<LinearGrads> {
        let LinearShape { rows, dim, classes } = shape;
        Ok(LinearGrads {
            hidden: owned_grad(gpu, "xent hidden gradient", rows * dim)?,
            classifier: owned_grad(gpu, "xent classifier gradient", classes * dim)?,
            bias: match bias {
                true => Some(owned_grad(gpu, "xent bias gradient", classes)?),
                false => None,
            },
        })
    }
}

/// What every pass of a fused linear cross-entropy binds: the caller's tensors, the block of
/// logits, the rows' merged states, the row kernels' scratch, and the buffers a pass binds
/// without using.
struct LinearRun<'a, 'g> {
    gpu: &'g Gpu,
    tensors: LinearTensors<'a>,
    labels: GpuTensor<'a>,
    shape: LinearShape,
    options: &'g CrossEntropy,
    /// Reduction none: the states' pass writes no loss.
    state_options: CrossEntropy,
    block: wgpu::Buffer,
    merged: wgpu::Buffer,
    scratch: wgpu::Buffer,
    /// Where the row kernel leaves a row's state in `scratch` (an f32 index).
    lse_first: usize,
    weight: wgpu::Buffer,
    /// Bindings a pass does not use: one read, one written (a dispatch cannot bind one buffer
    /// both ways).
    placeholder: wgpu::Buffer,
    sink: wgpu::Buffer,
    /// The bad labels of the loss pass, read with the loss; and where the other passes, which
    /// see the same labels, record theirs.
    status: TargetStatus,
    discard_status: TargetStatus,
}

/// One block of tokens: its rows, its hidden states and labels bound, where its states sit.
struct TokenBlock<'a> {
    index: usize,
    tokens: std::ops::Range<usize>,
    hidden: Operand<'a>,
    labels: Window<'a>,
}

impl<'a> TokenBlock<'a> {
    fn new(run: &LinearRun<'a, '_>, index: usize, tokens: std::ops::Range<usize>) -> Result<Self> {
        let dim = run.shape.dim;
        let hidden = Operand::rows(run.gpu, "hidden", &run.tensors.hidden, tokens.clone(), dim)?;
        let labels = run
            .labels
            .rows_window(run.gpu.limits(), "targets", tokens.clone(), 1)?;
        Ok(TokenBlock {
            index,
            tokens,
            hidden,
            labels,
        })
    }

    /// Bytes of the block's states, and where they start in the merged states.
    fn states(&self) -> (u64, u64) {
        let row = (4 * SHARD_STATE_LEN) as u64;
        (
            row * self.tokens.len() as u64,
            row * self.tokens.start as u64,
        )
    }
}

impl<'a, 'g> LinearRun<'a, 'g> {
    fn new(
        gpu: &'g Gpu,
        (tensors, labels): (LinearTensors<'a>, GpuTensor<'a>),
        shape: LinearShape,
        options: &'g CrossEntropy,
        (nb, vb): (usize, usize),
    ) -> Result<Self> {
        let block = buffers::work(gpu, "xent logits block", nb * vb)?;
        let merged = buffers::work(gpu, "xent row states", shape.rows * SHARD_STATE_LEN)?;
        plan::check_binding("row states", merged.size(), gpu.limits())?;
        let plan = launch::row_plan(gpu, nb, vb.min(shape.classes), RowLayout::Whole)?;
        let largest = std::iter::once(0..nb).collect::<Vec<_>>();
        let (scratch, lse_first) = launch::scratch(gpu, &plan, &largest, SHARD_STATE_LEN)?;
        let kind = || StatusKind::Labels {
            classes: shape.classes,
            ignore_index: options.ignore_index,
        };
        Ok(LinearRun {
            gpu,
            tensors,
            labels,
            shape,
            options,
            state_options: CrossEntropy {
                reduction: Reduction::None,
                ..options.clone()
            },
            block,
            merged,
            scratch,
            lse_first,
            weight: weight_buffer(gpu, options)?,
            placeholder: buffers::output(gpu, "xent placeholder", 1)?,
            sink: buffers::output(gpu, "xent unused output", 1)?,
            status: TargetStatus::new(gpu, kind())?,
            discard_status: TargetStatus::new(gpu, kind())?,
        })
    }

    /// The row kernels' plan over a block of `rows` x `classes`.
    fn plan(&self, rows: usize, classes: usize) -> Result<RowPlan> {
        launch::row_plan(self.gpu, rows, classes, RowLayout::Whole)
    }

    /// Where the row kernel reads and writes the block's states: the scratch tail.
    fn tail(&self) -> (&wgpu::Buffer, u64) {
        (&self.scratch, 4 * self.lse_first as u64)
    }

    /// Adds the product making the logits of `at`'s tokens and the classes `classes` in the
    /// block buffer.
    fn logits(
        &self,
        program: &mut Program,
        at: &TokenBlock<'a>,
        classes: &std::ops::Range<usize>,
    ) -> Result<()> {
        let (limits, dim) = (self.gpu.limits(), self.shape.dim);
        let w = Operand::rows(
            self.gpu,
            "classifier",
            &self.tensors.classifier,
            classes.clone(),
            dim,
        )?
        .transposed();
        let bias = match &self.tensors.bias {
            Some(b) => Some(b.window(limits, "bias", 1, self.shape.classes)?),
            None => None,
        };
        let bias = bias.map(|b| Window {
            first: b.first + classes.start as u32,
            ..b
        });
        let n = at.tokens.len();
        let out = GpuTensor::new(&self.block).window(limits, "logits block", n, classes.len())?;
        Product {
            dims: (n, classes.len(), dim),
            a: &at.hidden,
            b: &w,
            bias: bias.as_ref(),
            c: &out,
            accumulate: false,
        }
        .push(self.gpu, program, &self.placeholder)
    }

    /// Adds a cross-entropy row pass over the block buffer: `at`'s tokens, the classes
    /// `classes`.
    fn row_pass(
        &self,
        program: &mut Program,
        at: &TokenBlock<'a>,
        classes: &std::ops::Range<usize>,
        pass: Pass<'_>,
    ) -> Result<()> {
        let (gpu, limits) = (self.gpu, self.gpu.limits());
        let (n, c) = (at.tokens.len(), classes.len());
        let plan = self.plan(n, c)?;
        let x = GpuTensor::new(&self.block).window(limits, "logits block", n, c)?;
        let chunk = ChunkPos {
            rows: at.tokens.clone(),
            pair_base: pass.pair_base,
            total_rows: self.shape.rows,
            segments: (plan.segments, plan.segment_len),
            lse_first: self.lse_first,
            vocab: (classes.start, self.shape.classes),
        };
        let shape = ClassShape::rows(n, c);
        let params = params_buffer(gpu, shape, pass.options, &x, &at.labels, &chunk)?;
        let constants = constants(
            (&plan, shape),
            pass.options,
            (pass.use_q, pass.shard),
            pass.mode,
        );
        let key = KernelKey::new(Kernel::CrossEntropy, constants);
        let bindings = [
            ("params", whole(&params)),
            ("x_data", x.binding),
            ("labels", at.labels.binding.clone()),
            ("weight", whole(&self.weight)),
            ("out", pass.out),
            ("upstream", pass.upstream),
            ("grad_data", whole(&self.sink)),
            ("status", whole(pass.status)),
            ("scratch", whole(&self.scratch)),
        ];
        launch::push_rows(gpu, program, &plan, &key, n, &bindings)?;
        if pass.report {
            let labels = at.labels.binding.clone();
            push_label_status(gpu, program, &params, labels, pass.status)?;
        }
        Ok(())
    }

    /// Forward: each class block's logits and states, folded into `at`'s merged states in
    /// class order.
    fn forward(
        &self,
        program: &mut Program,
        at: &TokenBlock<'a>,
        class_blocks: &[std::ops::Range<usize>],
        discard: &wgpu::Buffer,
    ) -> Result<()> {
        let (bytes, first) = at.states();
        for (k, classes) in class_blocks.iter().enumerate() {
            self.logits(program, at, classes)?;
            let pass = Pass {
                options: &self.state_options,
                use_q: true,
                shard: 1,
                mode: GradMode::Off,
                out: whole(discard),
                upstream: whole(&self.placeholder),
                status: &self.discard_status.buffer,
                pair_base: 0,
                report: false,
            };
            self.row_pass(program, at, classes, pass)?;
            if k == 0 {
                program.copy(self.tail(), (&self.merged, first), bytes);
            } else {
                let rows = &at.tokens;
                let block = (whole(&self.scratch), self.lse_first / SHARD_STATE_LEN);
                let merged = (whole(&self.merged), rows.start);
                merge_states(self.gpu, program, block, merged, rows.len())?;
            }
            // A host run submits a block at a time.
            program.cut();
        }
        Ok(())
    }

    /// The loss: each row's loss from its merged state into `out` (pairs from `pair_base` when
    /// reduced), bad labels recorded; leaves the merged states in the scratch tail.
    fn loss(
        &self,
        program: &mut Program,
        at: &TokenBlock<'a>,
        classes: &std::ops::Range<usize>,
        (out, upstream): (wgpu::BufferBinding<'_>, wgpu::BufferBinding<'_>),
        pair_base: usize,
    ) -> Result<()> {
        let (bytes, first) = at.states();
        program.copy((&self.merged, first), self.tail(), bytes);
        let pass = Pass {
            options: self.options,
            use_q: self.options.label_smoothing > 0.0,
            shard: 2,
            mode: GradMode::Off,
            out,
            upstream,
            status: &self.status.buffer,
            pair_base,
            report: true,
        };
        self.row_pass(program, at, classes, pass)
    }

    /// Backward: each class block's logits again (unless one block holds all of them), their
    /// gradient in place, and its share of the three gradients.
    fn backward(
        &self,
        program: &mut Program,
        at: &TokenBlock<'a>,
        class_blocks: &[std::ops::Range<usize>],
        (upstream, discard): (wgpu::BufferBinding<'_>, &wgpu::Buffer),
        grads: &LinearGrads,
    ) -> Result<()> {
        let (gpu, limits, dim) = (self.gpu, self.gpu.limits(), self.shape.dim);
        let (n, block) = (at.tokens.len(), GpuTensor::new(&self.block));
        for (k, classes) in class_blocks.iter().enumerate() {
            if class_blocks.len() > 1 {
                self.logits(program, at, classes)?;
            }
            let pass = Pass {
                options: self.options,
                use_q: self.options.label_smoothing > 0.0,
                shard: 2,
                mode: GradMode::InPlace,
                out: whole(discard),
                upstream: upstream.clone(),
                status: &self.discard_status.buffer,
                pair_base: 0,
                report: false,
            };
            self.row_pass(program, at, classes, pass)?;
            let c = classes.len();
            let g = Operand::rows(gpu, "logits block", &block, 0..n, c)?;
            let w = Operand::rows(
                gpu,
                "classifier",
                &self.tensors.classifier,
                classes.clone(),
                dim,
            )?;
            let hidden_grad = GpuTensor::new(&grads.hidden.buffer);
            let dh = hidden_grad.rows_window(limits, "hidden gradient", at.tokens.clone(), dim)?;
            // dH[tokens] (+)= G W[classes]: the first class block writes.
            Product {
                dims: (n, dim, c),
                a: &g,
                b: &w,
                bias: None,
                c: &dh,
                accumulate: k > 0,
            }
            .push(gpu, program, &self.placeholder)?;
            // dW[classes] (+)= G^T H[tokens]: the first token block writes.
            let gt = Operand::rows(gpu, "logits block", &block, 0..n, c)?.transposed();
            let classifier_grad = GpuTensor::new(&grads.classifier.buffer);
            let dw =
                classifier_grad.rows_window(limits, "classifier gradient", classes.clone(), dim)?;
            Product {
                dims: (c, dim, n),
                a: &gt,
                b: &at.hidden,
                bias: None,
                c: &dw,
                accumulate: at.index > 0,
            }
            .push(gpu, program, &self.placeholder)?;
            if let Some(db) = &grads.bias {
                let db = GpuTensor::new(&db.buffer).rows_window(
                    limits,
                    "bias gradient",
                    classes.clone(),
                    1,
                )?;
                // db[classes] (+)= the column sums of G.
                Product {
                    dims: (n, c, 0),
                    a: &g,
                    b: &g,
                    bias: None,
                    c: &db,
                    accumulate: at.index > 0,
                }
                .push_column_sums(gpu, program, &self.placeholder)?;
            }
            program.cut();
        }
        Ok(())
    }
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

/// A gradient buffer xent owns, f32, packed.
fn owned_grad(gpu: &Gpu, what: &str, len: usize) -> Result<GradOut> {
    Ok(GradOut {
        buffer: buffers::work(gpu, what, len)?,
        offset: 0,
        len,
        dtype: Dtype::F32,
        packed: true,
    })
}

/// The composed linear cross-entropy the fused one is measured against (benchmarks): the whole
/// (N, V) logits in one buffer, made by the same product kernel in blocks of tokens that fit a
/// binding, xent's cross-entropy with its gradient written over them, then the two backward
/// products and the bias sums over the same blocks.
#[cfg(feature = "bench")]
#[cfg_attr(target_arch = "wasm32", allow(dead_code))]
pub(crate) struct Composed {
    forward: Program,
    loss: PreparedLoss,
    backward: Program,
    /// The whole logits, and the gradients (kept alive with the programs that write them).
    _buffers: Vec<wgpu::Buffer>,
}

#[cfg(feature = "bench")]
#[cfg_attr(target_arch = "wasm32", allow(dead_code))]
impl Composed {
    /// Records the whole composition.
    pub(crate) fn record(&self, encoder: &mut wgpu::CommandEncoder) {
        self.forward.record(encoder);
        self.loss.record(encoder);
        self.backward.record(encoder);
    }
}

/// Prepares [`Composed`] on the caller's tensors (as [`prepare_linear`]).
#[cfg(feature = "bench")]
#[cfg_attr(target_arch = "wasm32", allow(dead_code))]
pub(crate) fn prepare_composed(
    gpu: &Gpu,
    tensors: LinearTensors<'_>,
    shape: LinearShape,
    options: &CrossEntropy,
    grads: bool,
) -> Result<Composed> {
    let LinearShape { rows, dim, classes } = shape;
    let labels = check_tensors(gpu, &tensors, shape)?;
    let limits = gpu.limits();
    let logits = buffers::work(gpu, "xent whole logits", rows.saturating_mul(classes))?;
    let logits_tensor = GpuTensor::new(&logits);
    let binding = (limits.max_storage_buffer_binding_size / 4) as usize;
    let mut nb = rows.min(binding / classes.max(dim)).min(TILE * 65535);
    if nb < rows {
        nb = nb / TOKEN_ALIGN * TOKEN_ALIGN;
    }
    if nb == 0 {
        return Err(Error::TooLarge {
            what: "a row of the whole logits".into(),
            needed: 4 * classes as u64,
            limit_name: "max_storage_buffer_binding_size",
            limit: limits.max_storage_buffer_binding_size,
        });
    }
    let placeholder = buffers::output(gpu, "xent placeholder", 1)?;
    let mode = if grads {
        GradMode::InPlace
    } else {
        GradMode::Off
    };
    let loss = crate::kernels::cross_entropy::prepare_cross_entropy(
        gpu,
        logits_tensor,
        crate::kernels::cross_entropy::CategoricalTargets::Indices(labels),
        ClassShape::rows(rows, classes),
        options,
        mode,
    )?;
    let gh = buffers::work(gpu, "xent hidden gradient", rows * dim)?;
    let gw = buffers::work(gpu, "xent classifier gradient", classes * dim)?;
    let gb = buffers::work(gpu, "xent bias gradient", classes)?;
    let (mut forward, mut backward) = (Program::default(), Program::default());
    let all_classes = Operand::rows(gpu, "classifier", &tensors.classifier, 0..classes, dim)?;
    let bias = match &tensors.bias {
        Some(b) => Some(b.window(limits, "bias", 1, classes)?),
        None => None,
    };
    for (t, tokens) in ranges(rows, nb).enumerate() {
        let n = tokens.len();
        let hidden = Operand::rows(gpu, "hidden", &tensors.hidden, tokens.clone(), dim)?;
        let block = logits_tensor.rows_window(limits, "logits", tokens.clone(), classes)?;
        let w_t =
            Operand::rows(gpu, "classifier", &tensors.classifier, 0..classes, dim)?.transposed();
        Product {
            dims: (n, classes, dim),
            a: &hidden,
            b: &w_t,
            bias: bias.as_ref(),
            c: &block,
            accumulate: false,
        }
        .push(gpu, &mut forward, &placeholder)?;
        if !grads {
            continue;
        }
        let g = Operand::rows(gpu, "logits", &logits_tensor, tokens.clone(), classes)?;
        let dh = GpuTensor::new(&gh).rows_window(limits, "hidden gradient", tokens.clone(), dim)?;
        Product {
            dims: (n, dim, classes),
            a: &g,
            b: &all_classes,
            bias: None,
            c: &dh,
            accumulate: false,
        }
        .push(gpu, &mut backward, &placeholder)?;
        let dw = GpuTensor::new(&gw).window(limits, "classifier gradient", classes, dim)?;
        let gt =
            Operand::rows(gpu, "logits", &logits_tensor, tokens.clone(), classes)?.transposed();
        Product {
            dims: (classes, dim, n),
            a: &gt,
            b: &hidden,
            bias: None,
            c: &dw,
            accumulate: t > 0,
        }
        .push(gpu, &mut backward, &placeholder)?;
        let db = GpuTensor::new(&gb).window(limits, "bias gradient", 1, classes)?;
        Product {
            dims: (n, classes, 0),
            a: &g,
            b: &g,
            bias: None,
            c: &db,
            accumulate: t > 0,
        }
        .push_column_sums(gpu, &mut backward, &placeholder)?;
    }
    Ok(Composed {
        forward,
        loss,
        backward,
        _buffers: vec![logits, gh, gw, gb],
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
