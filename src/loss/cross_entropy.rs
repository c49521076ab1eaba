//! Categorical cross-entropy, with class-index targets or probability targets.

use crate::context::Context;
use crate::error::Result;
use crate::gpu_buffer;
use crate::loss::launch::{self, GradRequest, LossOutputs};
use crate::loss::{validate, ClassIndex, CrossEntropyOptions, Loss, LossAndGrad, Reduction};
use crate::plan::{self, RowPlan};
use crate::shaders::{Kernel, PipelineKey};

/// Mirrors `Params` of shaders/cross_entropy.wgsl, shaders/cross_entropy_probs.wgsl (where
/// `ignore_index` is padding) and shaders/cross_entropy_denominator.wgsl (where `classes` is).
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    rows: u32,
    classes: u32,
    ignore_index: i32,
    smoothing: f32,
}

/// The i32 that stands for `ignore_index` on the GPU. Labels are checked on the host to be in
/// [0, C) or equal to `ignore_index`, so an `ignore_index` beyond i32 is mapped to i32::MIN
/// together with the rows that carry it.
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
    grad: bool,
    in_place: bool,
) -> Vec<(&'static str, u32)> {
    let mut c = launch::row_constants(plan.row_threads);
    c.extend(launch::loss_constants(options.reduction, grad));
    c.push(("HAS_WEIGHT", u32::from(options.weight.is_some())));
    c.push(("USE_Q", u32::from(use_q)));
    c.push(("IN_PLACE", u32::from(in_place)));
    c
}

/// Where the logits come from and where the gradient goes.
enum Gradient<'a> {
    /// Forward only.
    None,
    /// The gradient into a new buffer, scaled by the upstream gradient.
    Separate(&'a [f32]),
    /// The gradient over the logits, scaled by the upstream gradient.
    InPlace(&'a [f32]),
}

impl Gradient<'_> {
    fn request<'b>(&'b self, len: usize, logits: &'b wgpu::Buffer) -> Option<GradRequest<'b>> {
        match self {
            Gradient::None => None,
            Gradient::Separate(upstream) => Some(GradRequest {
                upstream,
                len,
                in_place: None,
            }),
            Gradient::InPlace(upstream) => Some(GradRequest {
                upstream,
                len,
                in_place: Some(logits),
            }),
        }
    }
}

impl Context {
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
        let labels = gpu_labels(targets, options.ignore_index);
        let (loss, _) = self.run_indices(logits, classes, rows, &labels, options, Gradient::None)?;
        Ok(loss)
    }

    /// [`Context::cross_entropy`] and its gradient with respect to the logits, in one pass
    /// over the logits (rows of up to a few thousand classes are read from memory once).
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
        let rows = validate::cross_entropy_indices(logits, classes, targets, options)?;
        let upstream = validate::upstream(upstream, options.reduction, rows, "row")?;
        let labels = gpu_labels(targets, options.ignore_index);
        let gradient = Gradient::Separate(&upstream);
        let (loss, grad) = self.run_indices(logits, classes, rows, &labels, options, gradient)?;
        Ok(LossAndGrad {
            loss,
            grad: grad.unwrap_or_default(),
        })
    }

    /// [`Context::cross_entropy_and_grad`] that writes the gradient over `logits`, so only one
    /// (N, C) buffer exists on the GPU: what large vocabularies need. The caller's logits are
    /// gone afterwards (on an error they may be left unchanged).
    pub fn cross_entropy_and_grad_in_place<L: ClassIndex>(
        &self,
        logits: &mut [f32],
        classes: usize,
        targets: &[L],
        options: &CrossEntropyOptions,
        upstream: Option<&[f32]>,
    ) -> Result<Loss> {
        let rows = validate::cross_entropy_indices(logits, classes, targets, options)?;
        let upstream = validate::upstream(upstream, options.reduction, rows, "row")?;
        let labels = gpu_labels(targets, options.ignore_index);
        let gradient = Gradient::InPlace(&upstream);
        let (loss, grad) = self.run_indices(logits, classes, rows, &labels, options, gradient)?;
        if let Some(grad) = grad {
            logits.copy_from_slice(&grad);
        }
        Ok(loss)
    }

    fn run_indices(
        &self,
        logits: &[f32],
        classes: usize,
        rows: usize,
        labels: &[i32],
        options: &CrossEntropyOptions,
        gradient: Gradient<'_>,
    ) -> Result<(Loss, Option<Vec<f32>>)> {
        self.checked(|| {
            let plan = plan::row_plan(rows, classes, self.limits())?;
            let logits_buf = gpu_buffer::upload(self, "logits", logits)?;
            let labels_buf = gpu_buffer::upload(self, "targets", labels)?;
            let weight_buf =
                gpu_buffer::upload(self, "weight", options.weight.as_deref().unwrap_or(&[]))?;
            let params = gpu_buffer::uniform(
                self,
                &Params {
                    rows: rows as u32,
                    classes: classes as u32,
                    ignore_index: gpu_ignore_index(options.ignore_index),
                    smoothing: options.label_smoothing,
                },
            );
            let request = gradient.request(logits.len(), &logits_buf);
            let grad = request.is_some();
            let in_place = matches!(gradient, Gradient::InPlace(_));
            let outputs = LossOutputs::new(self, options.reduction, rows, plan.grid, request)?;
            let mut encoder = launch::encoder(self);
            let denominator = if grad && options.reduction == Reduction::Mean {
                self.record_denominator(&mut encoder, &params, rows, &labels_buf, &weight_buf, options)?
            } else {
                gpu_buffer::output(self, "xent denominator placeholder", 1)?
            };
            let use_q = options.label_smoothing > 0.0;
            let key = PipelineKey::new(
                Kernel::CrossEntropy,
                constants(&plan, options, use_q, grad, in_place),
            );
            launch::dispatch(
                self,
                &mut encoder,
                &key,
                plan.grid,
                &[
                    &params,
                    &logits_buf,
                    &labels_buf,
                    &weight_buf,
                    &outputs.stage,
                    &outputs.upstream,
                    &denominator,
                    &outputs.grad_binding,
                ],
            )?;
            outputs.finish(self, encoder, options.reduction, rows, plan.grid)
        })
    }

    /// Records the mean's denominator (summed weight of the non-ignored targets) into a new
    /// one-element buffer; the gradient pass divides by it.
    fn record_denominator(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        params: &wgpu::Buffer,
        rows: usize,
        labels: &wgpu::Buffer,
        weight: &wgpu::Buffer,
        options: &CrossEntropyOptions,
    ) -> Result<wgpu::Buffer> {
        let grid = plan::elementwise_grid(rows, self.limits())?;
        let partials = gpu_buffer::output(self, "xent denominator partials", 2 * grid.groups as usize)?;
        let mut constants = launch::elementwise_constants();
        constants.push(("HAS_WEIGHT", u32::from(options.weight.is_some())));
        let key = PipelineKey::new(Kernel::CrossEntropyDenominator, constants);
        launch::dispatch(self, encoder, &key, grid, &[params, labels, weight, &partials])?;
        launch::reduce_pairs(self, encoder, partials, grid.groups as usize, false)
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
        let (loss, _) = self.run_probs(logits, classes, rows, targets, options, Gradient::None)?;
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
        let rows = validate::cross_entropy_probs(logits, classes, targets, options)?;
        let upstream = validate::upstream(upstream, options.reduction, rows, "row")?;
        let gradient = Gradient::Separate(&upstream);
        let (loss, grad) = self.run_probs(logits, classes, rows, targets, options, gradient)?;
        Ok(LossAndGrad {
            loss,
            grad: grad.unwrap_or_default(),
        })
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
        let rows = validate::cross_entropy_probs(logits, classes, targets, options)?;
        let upstream = validate::upstream(upstream, options.reduction, rows, "row")?;
        let gradient = Gradient::InPlace(&upstream);
        let (loss, grad) = self.run_probs(logits, classes, rows, targets, options, gradient)?;
        if let Some(grad) = grad {
            logits.copy_from_slice(&grad);
        }
        Ok(loss)
    }

    fn run_probs(
        &self,
        logits: &[f32],
        classes: usize,
        rows: usize,
        targets: &[f32],
        options: &CrossEntropyOptions,
        gradient: Gradient<'_>,
    ) -> Result<(Loss, Option<Vec<f32>>)> {
        self.checked(|| {
            let plan = plan::row_plan(rows, classes, self.limits())?;
            let logits_buf = gpu_buffer::upload(self, "logits", logits)?;
            let targets_buf = gpu_buffer::upload(self, "targets", targets)?;
            let weight_buf =
                gpu_buffer::upload(self, "weight", options.weight.as_deref().unwrap_or(&[]))?;
            let params = gpu_buffer::uniform(
                self,
                &Params {
                    rows: rows as u32,
                    classes: classes as u32,
                    ignore_index: 0,
                    smoothing: options.label_smoothing,
                },
            );
            let request = gradient.request(logits.len(), &logits_buf);
            let grad = request.is_some();
            let in_place = matches!(gradient, Gradient::InPlace(_));
            let outputs = LossOutputs::new(self, options.reduction, rows, plan.grid, request)?;
            let key = PipelineKey::new(
                Kernel::CrossEntropyProbs,
                constants(&plan, options, true, grad, in_place),
            );
            let mut encoder = launch::encoder(self);
            launch::dispatch(
                self,
                &mut encoder,
                &key,
                plan.grid,
                &[
                    &params,
                    &logits_buf,
                    &targets_buf,
                    &weight_buf,
                    &outputs.stage,
                    &outputs.upstream,
                    &outputs.grad_binding,
                ],
            )?;
            outputs.finish(self, encoder, options.reduction, rows, plan.grid)
        })
    }
}
