//! Categorical cross-entropy, with class-index targets or probability targets.

use crate::context::Context;
use crate::error::{Error, Result};
use crate::gpu_buffer;
use crate::loss::launch::{self, whole, Program};
use crate::loss::parts::Batch;
use crate::loss::{validate, ClassIndex, CrossEntropyOptions, Loss, LossAndGrad, Reduction};
use crate::plan::{self, RowPlan, ELEMENTWISE_ITEMS, WORKGROUP_SIZE};
use crate::prepared::{GradMode, HostKey, LabelStatus, LossBuffers, PreparedLoss};
use crate::shaders::{Kernel, PipelineKey};
use crate::tensor::{GpuTensor, Window};

/// Mirrors `Params` of shaders/common/categorical_params.wgsl, shared by every categorical
/// kernel.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    rows: u32,
    classes: u32,
    ignore_index: i32,
    smoothing: f32,
    x_first: u32,
    x_stride: u32,
    t_first: u32,
    t_stride: u32,
    row_base: u32,
    pair_base: u32,
    total_rows: u32,
    reduction: u32,
    segments: u32,
    segment_len: u32,
    _pad: [u32; 2],
}

/// Where one dispatch (a chunk of rows) sits in the whole batch.
struct ChunkPos {
    rows: std::ops::Range<usize>,
    /// Index of the chunk's first (loss, weight) pair in the pair buffer.
    pair_base: usize,
    /// Rows of the whole batch.
    total_rows: usize,
    /// Segments per row and logits per segment (1 and C unless rows are split).
    segments: (u32, u32),
}

/// The i32 that stands for `ignore_index` on the GPU, where labels are i32. An `ignore_index`
/// beyond i32 is mapped to i32::MIN (host labels equal to it are mapped there too).
fn gpu_ignore_index(ignore_index: i64) -> i32 {
    i32::try_from(ignore_index).unwrap_or(i32::MIN)
}

/// Checked host labels as the GPU's i32, with `ignore_index` rows mapped to [`gpu_ignore_index`].
fn gpu_labels<L: ClassIndex>(targets: &[L], ignore_index: i64) -> Vec<i32> {
    let ignore = gpu_ignore_index(ignore_index);
    targets
        .iter()
        .map(|l| match l.to_i64() {
            v if v == ignore_index => ignore,
            v => v as i32,
        })
        .collect()
}

/// Row-kernel constants shared by both target kinds.
fn constants(
    plan: &RowPlan,
    options: &CrossEntropyOptions,
    use_q: bool,
    mode: GradMode,
) -> Vec<(&'static str, u32)> {
    let mut c = launch::row_constants(plan);
    c.extend(launch::loss_constants(
        options.reduction,
        mode != GradMode::Off,
    ));
    c.push(("HAS_WEIGHT", u32::from(options.weight.is_some())));
    c.push(("USE_Q", u32::from(use_q)));
    c.push(("IN_PLACE", u32::from(mode == GradMode::InPlace)));
    c
}

/// Checks a prepared categorical loss's shape and options; returns the logit count.
fn check_prepared(rows: usize, classes: usize, options: &CrossEntropyOptions) -> Result<usize> {
    if classes == 0 {
        return Err(Error::InvalidShape {
            reason: "the number of classes must be at least 1".into(),
        });
    }
    validate::label_smoothing(options.label_smoothing)?;
    validate::weights(
        "weight",
        options.weight.as_deref(),
        classes,
        "one weight per class",
    )?;
    rows.checked_mul(classes)
        .ok_or_else(|| Error::InvalidShape {
            reason: format!("{rows} x {classes} logits overflow"),
        })
}

/// Replaces the caller's logits by their in-place gradient.
fn copy_gradient(logits: &mut [f32], grad: &[f32]) -> Result<()> {
    if grad.len() != logits.len() {
        return Err(Error::Readback(format!(
            "the in-place gradient came back with {} values for {} logits",
            grad.len(),
            logits.len()
        )));
    }
    logits.copy_from_slice(grad);
    Ok(())
}

/// The key under which a host call's prepared loss is kept for reuse.
fn host_key(
    loss: &str,
    rows: usize,
    classes: usize,
    options: &CrossEntropyOptions,
    mode: GradMode,
    ctx: &Context,
) -> HostKey {
    let shape = format!(
        "{loss} {rows}x{classes} {mode:?} ignore {} smoothing {} {:?} weight {} {:?}",
        options.ignore_index,
        options.label_smoothing.to_bits(),
        options.reduction,
        options.weight.is_some(),
        ctx.tuning()
    );
    HostKey::new(shape, &[options.weight.as_deref()])
}

/// A categorical host call's batch of `rows` rows: a row's logits are its largest input
/// (probability targets are as large); its loss (`None`) and gradient are read back.
fn host_batch(rows: usize, classes: usize, reduction: Reduction, mode: GradMode) -> Batch {
    let row = 4 * classes as u64;
    let loss = if reduction == Reduction::None { 4 } else { 0 };
    let grad = if mode == GradMode::Off { 0 } else { row };
    Batch {
        items: rows,
        largest_input: row,
        outputs: loss + grad,
        multiple: 1,
        upstream_per_item: 1,
    }
}

/// The class weights on the GPU (a placeholder when there are none).
fn weight_buffer(ctx: &Context, options: &CrossEntropyOptions) -> Result<wgpu::Buffer> {
    gpu_buffer::upload(ctx, "weight", options.weight.as_deref().unwrap_or(&[]))
}

/// The kernel parameters of one chunk, with the element positions of the logits' and targets'
/// windows.
fn params_buffer(
    ctx: &Context,
    classes: usize,
    options: &CrossEntropyOptions,
    logits: &Window<'_>,
    targets: &Window<'_>,
    chunk: &ChunkPos,
) -> Result<wgpu::Buffer> {
    gpu_buffer::uniform(
        ctx,
        &Params {
            rows: chunk.rows.len() as u32,
            classes: classes as u32,
            ignore_index: gpu_ignore_index(options.ignore_index),
            smoothing: options.label_smoothing,
            x_first: logits.first,
            x_stride: logits.stride,
            t_first: targets.first,
            t_stride: targets.stride,
            row_base: chunk.rows.start as u32,
            pair_base: chunk.pair_base as u32,
            total_rows: chunk.total_rows as u32,
            reduction: options.reduction.shader_code(),
            segments: chunk.segments.0,
            segment_len: chunk.segments.1,
            _pad: [0; 2],
        },
    )
}

/// The chunks of rows a categorical loss is dispatched in: every binding of a chunk (logits,
/// targets with `target_row_bytes` per row, and xent's outputs) fits the device.
fn row_chunks(
    ctx: &Context,
    plan: &RowPlan,
    rows: usize,
    classes: usize,
    logits: &GpuTensor<'_>,
    target_row_bytes: u64,
    buffers: &LossBuffers,
) -> Result<Vec<std::ops::Range<usize>>> {
    let callers = [logits.row_bytes(classes), target_row_bytes];
    let owned = buffers.item_bytes(classes);
    plan::chunks(rows, &callers, &owned, plan.rows_per_group, ctx.limits())
}

impl Context {
    /// Prepares class-index cross-entropy on GPU buffers: `logits` holds (rows, classes) f32
    /// (row-major, at any 4-byte offset, rows optionally strided: a slice of a larger buffer),
    /// `targets` one i32 (or u32 below 2^31) class index per row. Targets cannot be checked on
    /// the host; the kernel checks them: a row whose target is outside [0, C) and not
    /// `ignore_index` gets a NaN loss (and NaN gradient), never a plausible value, and is
    /// recorded so that [`PreparedLoss::read_loss`], [`PreparedLoss::read_grad`] and
    /// [`PreparedLoss::check_labels`] return [`Error::LabelOutOfRange`]. An in-place gradient follows the logits'
    /// layout; a separate one is packed (rows, classes). See [`Context::cross_entropy`] for
    /// the semantics and [`PreparedLoss`] for running it.
    pub fn prepare_cross_entropy<'a>(
        &self,
        logits: impl Into<GpuTensor<'a>>,
        targets: impl Into<GpuTensor<'a>>,
        rows: usize,
        classes: usize,
        options: &CrossEntropyOptions,
        grad: GradMode,
    ) -> Result<PreparedLoss> {
        self.checked(|| {
            let len = check_prepared(rows, classes, options)?;
            let logits = logits.into();
            let targets = targets.into().four_byte("targets")?;
            let plan = plan::row_plan(rows, classes, self)?;
            let weight = weight_buffer(self, options)?;
            let buffers =
                LossBuffers::new(self, options.reduction, rows, plan.grid, grad, len, &logits)?;
            let target_bytes = targets.row_bytes(1);
            let chunks = row_chunks(self, &plan, rows, classes, &logits, target_bytes, &buffers)?;
            let scratch = launch::scratch(self, &plan, &chunks)?;
            let mut program = buffers.program();
            let status =
                gpu_buffer::upload(self, "xent label status", &[0u32; LabelStatus::WORDS])?;
            program.clear(&status);
            if grad != GradMode::Off && options.reduction == Reduction::Mean {
                let shape = (rows, classes);
                self.denominator(&mut program, shape, &targets, options, &weight, &scratch)?;
            }
            let use_q = options.label_smoothing > 0.0;
            let key = PipelineKey::typed(
                Kernel::CrossEntropy,
                constants(&plan, options, use_q, grad),
                buffers.types,
            );
            let status_key = PipelineKey::new(Kernel::LabelStatus, Vec::new());
            for range in chunks {
                let (x, y, params) =
                    self.chunk_inputs(&plan, rows, range.clone(), (&logits, &targets, 1), options)?;
                let [out, upstream, grad_part] = buffers.chunk(range.clone(), classes);
                launch::push_rows(
                    self,
                    &mut program,
                    &plan,
                    &key,
                    range.len(),
                    &[
                        whole(&params),
                        x.binding,
                        y.binding.clone(),
                        whole(&weight),
                        out,
                        upstream,
                        grad_part,
                        whole(&status),
                        whole(&scratch),
                    ],
                )?;
                program.push(
                    self,
                    &status_key,
                    plan::grid(1, self.limits())?,
                    &[whole(&params), y.binding, whole(&status)],
                )?;
            }
            let status = LabelStatus {
                buffer: status,
                classes,
                ignore_index: options.ignore_index,
            };
            Ok(buffers.finish(self, program)?.watch_labels(status))
        })
    }

    /// Categorical cross-entropy of an (N, C) batch of logits (row-major, `classes` = C)
    /// against N class-index targets, as `torch.nn.functional.cross_entropy`.
    ///
    /// Per row, `l_n = -w[y_n] * logp[n, y_n]` (with label smoothing `e`:
    /// `(1 - e) * that + (e / C) * -sum_c w[c] logp[n, c]`); rows whose target equals
    /// `ignore_index` give 0. `Mean` divides the sum by the summed weight of the non-ignored
    /// targets, so it is NaN when every row is ignored or N = 0 (as PyTorch).
    ///
    /// Errors: logits not a multiple of C, a target outside [0, C) that is not `ignore_index`,
    /// a weight of the wrong length or not finite, `label_smoothing` outside [0, 1].
    pub fn cross_entropy<L: ClassIndex>(
        &self,
        logits: &[f32],
        classes: usize,
        targets: &[L],
        options: &CrossEntropyOptions,
    ) -> Result<Loss> {
        let rows = validate::cross_entropy_indices(logits, classes, targets, options)?;
        let (loss, _) =
            self.host_indices(logits, classes, rows, targets, options, None, GradMode::Off)?;
        Ok(loss)
    }

    /// [`Context::cross_entropy`] and its gradient with respect to the logits, in one pass
    /// over the logits (rows of up to 16 logits per thread are read from memory once).
    ///
    /// `upstream` is the gradient flowing into the loss: one value for `Mean` and `Sum`, one
    /// per row for `None`; `None` means ones. The gradient is
    /// `s ((1 - e) w_y (softmax - onehot(y)) + (e / C) (W softmax - w))` per row, with `s` the
    /// upstream value (divided by the mean's denominator for `Mean`) and `W = sum w`; rows
    /// with an ignored target get exactly 0. When every row is ignored, `Mean` gives a NaN
    /// loss and an all-zero gradient, as PyTorch.
    pub fn cross_entropy_and_grad<L: ClassIndex>(
        &self,
        logits: &[f32],
        classes: usize,
        targets: &[L],
        options: &CrossEntropyOptions,
        upstream: Option<&[f32]>,
    ) -> Result<LossAndGrad> {
        let (loss, grad) = self.indices_with_grad(
            logits,
            classes,
            targets,
            options,
            upstream,
            GradMode::Separate,
        )?;
        Ok(LossAndGrad { loss, grad })
    }

    /// [`Context::cross_entropy_and_grad`] that writes the gradient over `logits`, so only one
    /// (N, C) buffer exists on the GPU: what large vocabularies need. The caller's logits are
    /// gone afterwards (on an error they are left unchanged).
    pub fn cross_entropy_and_grad_in_place<L: ClassIndex>(
        &self,
        logits: &mut [f32],
        classes: usize,
        targets: &[L],
        options: &CrossEntropyOptions,
        upstream: Option<&[f32]>,
    ) -> Result<Loss> {
        let (loss, grad) = self.indices_with_grad(
            logits,
            classes,
            targets,
            options,
            upstream,
            GradMode::InPlace,
        )?;
        copy_gradient(logits, &grad)?;
        Ok(loss)
    }

    /// The gradient forms of class-index cross-entropy: validation, then the host path.
    fn indices_with_grad<L: ClassIndex>(
        &self,
        logits: &[f32],
        classes: usize,
        targets: &[L],
        options: &CrossEntropyOptions,
        upstream: Option<&[f32]>,
        mode: GradMode,
    ) -> Result<(Loss, Vec<f32>)> {
        let rows = validate::cross_entropy_indices(logits, classes, targets, options)?;
        let upstream = validate::upstream(upstream, options.reduction, rows, "row")?;
        let (loss, grad) = self.host_indices(
            logits,
            classes,
            rows,
            targets,
            options,
            Some(&upstream),
            mode,
        )?;
        Ok((loss, grad.unwrap_or_default()))
    }

    /// The host path of class-index cross-entropy: upload, prepare, run, read back; in parts
    /// when the batch does not fit one buffer (see `loss::parts`).
    #[allow(clippy::too_many_arguments)]
    fn host_indices<L: ClassIndex>(
        &self,
        logits: &[f32],
        classes: usize,
        rows: usize,
        targets: &[L],
        options: &CrossEntropyOptions,
        upstream: Option<&[f32]>,
        mode: GradMode,
    ) -> Result<(Loss, Option<Vec<f32>>)> {
        let denominator = || {
            targets
                .iter()
                .map(|l| l.to_i64())
                .filter(|&l| l != options.ignore_index)
                .map(|l| {
                    options
                        .weight
                        .as_ref()
                        .map_or(1.0, |w| f64::from(w[l as usize]))
                })
                .sum()
        };
        self.host_in_parts(
            host_batch(rows, classes, options.reduction, mode),
            options.reduction,
            upstream,
            denominator,
            |part, reduction, upstream| {
                let labels = gpu_labels(&targets[part.clone()], options.ignore_index);
                let options = CrossEntropyOptions {
                    reduction,
                    ..options.clone()
                };
                let key = host_key("ce", part.len(), classes, &options, mode, self);
                let inputs = [
                    (
                        "logits",
                        bytemuck::cast_slice(&logits[part.start * classes..part.end * classes]),
                    ),
                    ("targets", bytemuck::cast_slice(&labels)),
                ];
                self.run_host(key, &inputs, upstream, |b| {
                    self.prepare_cross_entropy(&b[0], &b[1], part.len(), classes, &options, mode)
                })
            },
        )
    }

    /// Prepares probability-target cross-entropy on GPU buffers: `logits` and `targets` each
    /// hold (rows, classes) f32 row-major, at any 4-byte offset, rows optionally strided. See
    /// [`Context::cross_entropy_probs`] for the semantics and [`PreparedLoss`] for running it.
    pub fn prepare_cross_entropy_probs<'a>(
        &self,
        logits: impl Into<GpuTensor<'a>>,
        targets: impl Into<GpuTensor<'a>>,
        rows: usize,
        classes: usize,
        options: &CrossEntropyOptions,
        grad: GradMode,
    ) -> Result<PreparedLoss> {
        self.checked(|| {
            let len = check_prepared(rows, classes, options)?;
            let logits = logits.into();
            let targets = targets.into().four_byte("targets")?;
            let plan = plan::row_plan(rows, classes, self)?;
            let weight = weight_buffer(self, options)?;
            let buffers =
                LossBuffers::new(self, options.reduction, rows, plan.grid, grad, len, &logits)?;
            let target_bytes = targets.row_bytes(classes);
            let chunks = row_chunks(self, &plan, rows, classes, &logits, target_bytes, &buffers)?;
            let scratch = launch::scratch(self, &plan, &chunks)?;
            let mut program = buffers.program();
            let key = PipelineKey::typed(
                Kernel::CrossEntropyProbs,
                constants(&plan, options, true, grad),
                buffers.types,
            );
            for range in chunks {
                let (x, t, params) = self.chunk_inputs(
                    &plan,
                    rows,
                    range.clone(),
                    (&logits, &targets, classes),
                    options,
                )?;
                let [out, upstream, grad_part] = buffers.chunk(range.clone(), classes);
                launch::push_rows(
                    self,
                    &mut program,
                    &plan,
                    &key,
                    range.len(),
                    &[
                        whole(&params),
                        x.binding,
                        t.binding,
                        whole(&weight),
                        out,
                        upstream,
                        grad_part,
                        whole(&scratch),
                    ],
                )?;
            }
            buffers.finish(self, program)
        })
    }

    /// Categorical cross-entropy of an (N, C) batch of logits against (N, C) probability
    /// targets (the seed's formula (1)), as `torch.nn.functional.cross_entropy` with a float
    /// target: `l_n = -sum_c w[c] t'[n, c] logp[n, c]` with `t' = (1 - e) t + e / C`.
    /// `Mean` divides by N (not by the weights); `ignore_index` does not apply. Targets are
    /// not checked (PyTorch does not either): a target of 0 at a -inf logit gives NaN, as
    /// `0 * -inf` does in PyTorch.
    ///
    /// Errors: logits or targets not (N, C), a weight of the wrong length or not finite,
    /// `label_smoothing` outside [0, 1].
    pub fn cross_entropy_probs(
        &self,
        logits: &[f32],
        classes: usize,
        targets: &[f32],
        options: &CrossEntropyOptions,
    ) -> Result<Loss> {
        let rows = validate::cross_entropy_probs(logits, classes, targets, options)?;
        let (loss, _) =
            self.host_probs(logits, classes, rows, targets, options, None, GradMode::Off)?;
        Ok(loss)
    }

    /// [`Context::cross_entropy_probs`] and its gradient with respect to the logits,
    /// `s (softmax * sum_c q_c - q)` per row with `q = w t'` and `s` the upstream value
    /// (divided by N for `Mean`). `upstream`: one value for `Mean` and `Sum`, one per row for
    /// `None`; `None` means ones.
    pub fn cross_entropy_probs_and_grad(
        &self,
        logits: &[f32],
        classes: usize,
        targets: &[f32],
        options: &CrossEntropyOptions,
        upstream: Option<&[f32]>,
    ) -> Result<LossAndGrad> {
        let (loss, grad) = self.probs_with_grad(
            logits,
            classes,
            targets,
            options,
            upstream,
            GradMode::Separate,
        )?;
        Ok(LossAndGrad { loss, grad })
    }

    /// [`Context::cross_entropy_probs_and_grad`] that writes the gradient over `logits`.
    pub fn cross_entropy_probs_and_grad_in_place(
        &self,
        logits: &mut [f32],
        classes: usize,
        targets: &[f32],
        options: &CrossEntropyOptions,
        upstream: Option<&[f32]>,
    ) -> Result<Loss> {
        let (loss, grad) = self.probs_with_grad(
            logits,
            classes,
            targets,
            options,
            upstream,
            GradMode::InPlace,
        )?;
        copy_gradient(logits, &grad)?;
        Ok(loss)
    }

    /// The gradient forms of probability-target cross-entropy: validation, then the host path.
    fn probs_with_grad(
        &self,
        logits: &[f32],
        classes: usize,
        targets: &[f32],
        options: &CrossEntropyOptions,
        upstream: Option<&[f32]>,
        mode: GradMode,
    ) -> Result<(Loss, Vec<f32>)> {
        let rows = validate::cross_entropy_probs(logits, classes, targets, options)?;
        let upstream = validate::upstream(upstream, options.reduction, rows, "row")?;
        let (loss, grad) = self.host_probs(
            logits,
            classes,
            rows,
            targets,
            options,
            Some(&upstream),
            mode,
        )?;
        Ok((loss, grad.unwrap_or_default()))
    }

    /// The host path of probability-target cross-entropy: upload, prepare, run, read back;
    /// in parts when the batch does not fit one buffer (see `loss::parts`).
    #[allow(clippy::too_many_arguments)]
    fn host_probs(
        &self,
        logits: &[f32],
        classes: usize,
        rows: usize,
        targets: &[f32],
        options: &CrossEntropyOptions,
        upstream: Option<&[f32]>,
        mode: GradMode,
    ) -> Result<(Loss, Option<Vec<f32>>)> {
        self.host_in_parts(
            host_batch(rows, classes, options.reduction, mode),
            options.reduction,
            upstream,
            || rows as f64,
            |part, reduction, upstream| {
                let options = CrossEntropyOptions {
                    reduction,
                    ..options.clone()
                };
                let key = host_key("ce_probs", part.len(), classes, &options, mode, self);
                let values = part.start * classes..part.end * classes;
                let inputs = [
                    ("logits", bytemuck::cast_slice(&logits[values.clone()])),
                    ("targets", bytemuck::cast_slice(&targets[values])),
                ];
                self.run_host(key, &inputs, upstream, |b| {
                    self.prepare_cross_entropy_probs(
                        &b[0],
                        &b[1],
                        part.len(),
                        classes,
                        &options,
                        mode,
                    )
                })
            },
        )
    }
}

impl Context {
    /// Adds the denominator of the mean of class-index cross-entropy over (rows, classes) (the
    /// summed weight of the non-ignored targets), in chunks of whole blocks of the targets; it
    /// ends in the first f32 of `into`.
    fn denominator(
        &self,
        program: &mut Program,
        (rows, classes): (usize, usize),
        targets: &GpuTensor<'_>,
        options: &CrossEntropyOptions,
        weight: &wgpu::Buffer,
        into: &wgpu::Buffer,
    ) -> Result<()> {
        let block = (WORKGROUP_SIZE * ELEMENTWISE_ITEMS) as usize;
        let chunks = plan::chunks(rows, &[targets.row_bytes(1)], &[], block, self.limits())?;
        let grids = chunks
            .iter()
            .map(|r| plan::elementwise_grid(r.len(), self.limits()))
            .collect::<Result<Vec<_>>>()?;
        let groups: usize = grids.iter().map(|g| g.groups as usize).sum();
        let partials = gpu_buffer::output(self, "xent denominator partials", 2 * groups)?;
        let mut constants = launch::elementwise_constants();
        constants.push(("HAS_WEIGHT", u32::from(options.weight.is_some())));
        let key = PipelineKey::new(Kernel::CrossEntropyDenominator, constants);
        let mut pair_base = 0;
        for (range, grid) in chunks.iter().zip(grids) {
            let y = targets.rows_window(self, "targets", range.clone(), 1)?;
            let chunk = ChunkPos {
                rows: range.clone(),
                pair_base,
                total_rows: rows,
                segments: (1, classes as u32),
            };
            let params = params_buffer(self, classes, options, &y, &y, &chunk)?;
            let bindings = [whole(&params), y.binding, whole(weight), whole(&partials)];
            program.push(self, &key, grid, &bindings)?;
            pair_base += grid.groups as usize;
        }
        launch::reduce_pairs(self, program, partials, groups, false, Some(into))?;
        Ok(())
    }

    /// The windows of one chunk of rows of the logits and of the targets (`target_cols` per
    /// row), and the chunk's kernel parameters.
    fn chunk_inputs<'a>(
        &self,
        plan: &RowPlan,
        total_rows: usize,
        rows: std::ops::Range<usize>,
        (logits, targets, target_cols): (&GpuTensor<'a>, &GpuTensor<'a>, usize),
        options: &CrossEntropyOptions,
    ) -> Result<(Window<'a>, Window<'a>, wgpu::Buffer)> {
        let classes = plan.classes;
        let x = logits.rows_window(self, "logits", rows.clone(), classes)?;
        let t = targets.rows_window(self, "targets", rows.clone(), target_cols)?;
        let chunk = ChunkPos {
            pair_base: plan.groups_for(rows.start),
            rows,
            total_rows,
            segments: (plan.segments, plan.segment_len),
        };
        let params = params_buffer(self, classes, options, &x, &t, &chunk)?;
        Ok((x, t, params))
    }
}
