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

mod blocks;
#[cfg(feature = "bench")]
mod composed;
mod product;

use crate::plan::ranges;
use blocks::blocks;
#[cfg(feature = "bench")]
pub(crate) use composed::{prepare_composed, Composed};
#[cfg(feature = "bench")]
pub(crate) use product::MatmulParams;
use product::{Operand, Product};

use crate::dtype::Dtype;
use crate::error::{Error, Result};
use crate::gpu::buffers;
use crate::gpu::program::{whole, Program};
use crate::gpu::tensor::{GpuTensor, Window};
use crate::gpu::Gpu;
use crate::kernels::cross_entropy::{
    constants, denominator, params_buffer, push_label_status, weight_buffer, ChunkPos,
    SHARD_STATE_LEN,
};
use crate::kernels::launch::{self, merge_states};
use crate::kernels::outputs::LossBuffers;
use crate::kernels::shaders::{Kernel, KernelKey};
use crate::loss::call::ClassShape;
use crate::loss::linear::LinearShape;
use crate::loss::GradMode;
use crate::loss::{CrossEntropy, Reduction};
use crate::plan::{self, Grid, RowLayout, RowPlan};
use crate::prepared::{GradOut, PreparedLoss, StatusKind, TargetStatus};

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

/// Checks the caller's tensors against the shape; returns the labels' tensor checked as
/// 4-byte values.
pub(super) fn check_tensors<'a>(
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
