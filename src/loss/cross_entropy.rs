//! Categorical cross-entropy, with class-index targets or probability targets.

use crate::context::Context;
use crate::error::Result;
use crate::gpu_buffer;
use crate::loss::{launch, validate, ClassIndex, CrossEntropyOptions, Loss, Reduction};
use crate::plan;
use crate::shaders::{Kernel, PipelineKey};

/// Mirrors `Params` of shaders/cross_entropy_forward.wgsl and
/// shaders/cross_entropy_probs_forward.wgsl (where `ignore_index` is padding).
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    rows: u32,
    classes: u32,
    ignore_index: i32,
    smoothing: f32,
}

/// Checks the options shared by both target kinds.
fn validate_options(options: &CrossEntropyOptions, classes: usize) -> Result<()> {
    validate::label_smoothing(options.label_smoothing)?;
    validate::weights(
        "weight",
        options.weight.as_deref(),
        classes,
        "one weight per class",
    )
}

/// The i32 that stands for `ignore_index` on the GPU. Labels are checked on the host to be in
/// [0, C) or equal to `ignore_index`, so an `ignore_index` beyond i32 is mapped to i32::MIN
/// together with the rows that carry it.
fn gpu_ignore_index(ignore_index: i64) -> i32 {
    i32::try_from(ignore_index).unwrap_or(i32::MIN)
}

/// Row-kernel constants shared by both target kinds.
fn constants(
    row_threads: u32,
    options: &CrossEntropyOptions,
    use_q: bool,
) -> Vec<(&'static str, u32)> {
    let mut c = launch::row_constants(row_threads);
    c.push(("HAS_WEIGHT", u32::from(options.weight.is_some())));
    c.push(("USE_Q", u32::from(use_q)));
    c.push((
        "PER_ROW_OUTPUT",
        u32::from(options.reduction == Reduction::None),
    ));
    c
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
        let rows = validate::rows_of(logits, classes)?;
        validate::length("targets", targets.len(), rows, "one class index per row")?;
        validate_options(options, classes)?;
        validate::labels(targets, classes, options.ignore_index)?;
        let ignore = gpu_ignore_index(options.ignore_index);
        let labels: Vec<i32> = targets
            .iter()
            .map(|l| match l.to_i64() {
                v if v == options.ignore_index => ignore,
                v => v as i32,
            })
            .collect();
        self.checked(|| {
            let plan = plan::row_plan(rows, classes, self.limits())?;
            let logits_buf = gpu_buffer::upload(self, "logits", logits)?;
            let labels_buf = gpu_buffer::upload(self, "targets", &labels)?;
            let weight_buf =
                gpu_buffer::upload(self, "weight", options.weight.as_deref().unwrap_or(&[]))?;
            let out_len = launch::stage_len(options.reduction, rows, plan.grid);
            let out = gpu_buffer::output(self, "cross_entropy", out_len)?;
            let params = gpu_buffer::uniform(
                self,
                &Params {
                    rows: rows as u32,
                    classes: classes as u32,
                    ignore_index: ignore,
                    smoothing: options.label_smoothing,
                },
            );
            let use_q = options.label_smoothing > 0.0;
            let key = PipelineKey::new(
                Kernel::CrossEntropyForward,
                constants(plan.row_threads, options, use_q),
            );
            let mut encoder = launch::encoder(self);
            launch::dispatch(
                self,
                &mut encoder,
                &key,
                plan.grid,
                &[&params, &logits_buf, &labels_buf, &weight_buf, &out],
            )?;
            launch::finish_loss(self, encoder, out, options.reduction, rows, plan.grid)
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
        let rows = validate::rows_of(logits, classes)?;
        validate::length(
            "targets",
            targets.len(),
            logits.len(),
            "probability targets have the logits' shape (N, C)",
        )?;
        validate_options(options, classes)?;
        self.checked(|| {
            let plan = plan::row_plan(rows, classes, self.limits())?;
            let logits_buf = gpu_buffer::upload(self, "logits", logits)?;
            let targets_buf = gpu_buffer::upload(self, "targets", targets)?;
            let weight_buf =
                gpu_buffer::upload(self, "weight", options.weight.as_deref().unwrap_or(&[]))?;
            let out_len = launch::stage_len(options.reduction, rows, plan.grid);
            let out = gpu_buffer::output(self, "cross_entropy", out_len)?;
            let params = gpu_buffer::uniform(
                self,
                &Params {
                    rows: rows as u32,
                    classes: classes as u32,
                    ignore_index: 0,
                    smoothing: options.label_smoothing,
                },
            );
            let key = PipelineKey::new(
                Kernel::CrossEntropyProbsForward,
                constants(plan.row_threads, options, true),
            );
            let mut encoder = launch::encoder(self);
            launch::dispatch(
                self,
                &mut encoder,
                &key,
                plan.grid,
                &[&params, &logits_buf, &targets_buf, &weight_buf, &out],
            )?;
            launch::finish_loss(self, encoder, out, options.reduction, rows, plan.grid)
        })
    }
}
