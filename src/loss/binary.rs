//! Binary cross-entropy, on probabilities and with logits.

use crate::context::Context;
use crate::error::Result;
use crate::gpu_buffer;
use crate::loss::launch::{self, GradRequest, LossOutputs};
use crate::loss::{validate, BceOptions, BceWithLogitsOptions, Loss, LossAndGrad, Reduction};
use crate::plan;
use crate::shaders::{Kernel, PipelineKey};

/// Mirrors `Params` of shaders/bce.wgsl and shaders/bce_logits.wgsl.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    len: u32,
    last_dim: u32,
    _pad: [u32; 2],
}

/// One BCE launch: which kernel, its inputs, and the optional extra (pos_weight) binding.
struct BceLaunch<'a> {
    kernel: Kernel,
    input: &'a [f32],
    target: &'a [f32],
    weight: Option<&'a [f32]>,
    pos_weight: Option<&'a [f32]>,
    last_dim: usize,
    reduction: Reduction,
}

impl Context {
    /// Binary cross-entropy on probabilities `input` in [0, 1] against `target` of the same
    /// length (the seed's formula (2)), as `torch.nn.functional.binary_cross_entropy`:
    /// `l_i = -w_i (t_i max(log p_i, -100) + (1 - t_i) max(log(1 - p_i), -100))`.
    /// Targets may be soft. `Mean` averages over all elements (NaN for an empty input).
    ///
    /// Errors: lengths that differ, a probability outside [0, 1] or NaN, a weight of the wrong
    /// length or not finite.
    pub fn binary_cross_entropy(
        &self,
        input: &[f32],
        target: &[f32],
        options: &BceOptions,
    ) -> Result<Loss> {
        validate::bce(input, target, options)?;
        Ok(self.run_bce(&bce_launch(input, target, options), None)?.0)
    }

    /// [`Context::binary_cross_entropy`] and its gradient with respect to `input`:
    /// `s w_i (p_i - t_i) / max((1 - p_i) p_i, 1e-12)` (PyTorch's clamp), with `s` the upstream
    /// value (divided by the element count for `Mean`). `upstream`: one value for `Mean` and
    /// `Sum`, one per element for `None`; `None` means ones.
    pub fn binary_cross_entropy_and_grad(
        &self,
        input: &[f32],
        target: &[f32],
        options: &BceOptions,
        upstream: Option<&[f32]>,
    ) -> Result<LossAndGrad> {
        validate::bce(input, target, options)?;
        let upstream = validate::upstream(upstream, options.reduction, input.len(), "element")?;
        let (loss, grad) = self.run_bce(&bce_launch(input, target, options), Some(&upstream))?;
        Ok(LossAndGrad {
            loss,
            grad: grad.unwrap_or_default(),
        })
    }

    /// Binary cross-entropy with logits `input` against `target` of the same length, as
    /// `torch.nn.functional.binary_cross_entropy_with_logits`:
    /// `l_i = w_i ((1 - t_i) x_i - q_i logsigmoid(x_i))`, `q_i = 1 + (pos_weight_d - 1) t_i`
    /// with `d` the index in the last dimension. Stable for any finite input.
    /// `Mean` averages over all elements (NaN for an empty input).
    ///
    /// Errors: lengths that differ, an input length that is not a multiple of pos_weight's,
    /// a weight or pos_weight of the wrong length or not finite.
    pub fn binary_cross_entropy_with_logits(
        &self,
        input: &[f32],
        target: &[f32],
        options: &BceWithLogitsOptions,
    ) -> Result<Loss> {
        let last_dim = validate::bce_with_logits(input, target, options)?;
        let launch = bce_logits_launch(input, target, options, last_dim);
        Ok(self.run_bce(&launch, None)?.0)
    }

    /// [`Context::binary_cross_entropy_with_logits`] and its gradient with respect to `input`:
    /// `s w_i ((pos_weight_d t_i + 1 - t_i) sigmoid(x_i) - pos_weight_d t_i)`, with `s` the
    /// upstream value (divided by the element count for `Mean`). `upstream`: one value for
    /// `Mean` and `Sum`, one per element for `None`; `None` means ones.
    pub fn binary_cross_entropy_with_logits_and_grad(
        &self,
        input: &[f32],
        target: &[f32],
        options: &BceWithLogitsOptions,
        upstream: Option<&[f32]>,
    ) -> Result<LossAndGrad> {
        let last_dim = validate::bce_with_logits(input, target, options)?;
        let upstream = validate::upstream(upstream, options.reduction, input.len(), "element")?;
        let launch = bce_logits_launch(input, target, options, last_dim);
        let (loss, grad) = self.run_bce(&launch, Some(&upstream))?;
        Ok(LossAndGrad {
            loss,
            grad: grad.unwrap_or_default(),
        })
    }

    fn run_bce(
        &self,
        job: &BceLaunch<'_>,
        upstream: Option<&[f32]>,
    ) -> Result<(Loss, Option<Vec<f32>>)> {
        self.checked(|| {
            let len = job.input.len();
            let grid = plan::elementwise_grid(len, self.limits())?;
            let input_buf = gpu_buffer::upload(self, "input", job.input)?;
            let target_buf = gpu_buffer::upload(self, "target", job.target)?;
            let weight_buf = gpu_buffer::upload(self, "weight", job.weight.unwrap_or(&[]))?;
            let params = gpu_buffer::uniform(
                self,
                &Params {
                    len: len as u32,
                    last_dim: job.last_dim as u32,
                    _pad: [0; 2],
                },
            );
            let request = upstream.map(|upstream| GradRequest {
                upstream,
                len,
                in_place: None,
            });
            let outputs = LossOutputs::new(self, job.reduction, len, grid, request)?;
            let mut constants = launch::elementwise_constants();
            constants.extend(launch::loss_constants(job.reduction, upstream.is_some()));
            constants.push(("HAS_WEIGHT", u32::from(job.weight.is_some())));
            let pos_weight_buf;
            let mut buffers = vec![&params, &input_buf, &target_buf, &weight_buf];
            if job.kernel == Kernel::BceLogits {
                constants.push(("HAS_POS_WEIGHT", u32::from(job.pos_weight.is_some())));
                pos_weight_buf =
                    gpu_buffer::upload(self, "pos_weight", job.pos_weight.unwrap_or(&[]))?;
                buffers.push(&pos_weight_buf);
            }
            buffers.extend([&outputs.stage, &outputs.upstream, &outputs.grad_binding]);
            let key = PipelineKey::new(job.kernel, constants);
            let mut encoder = launch::encoder(self);
            launch::dispatch(self, &mut encoder, &key, grid, &buffers)?;
            outputs.finish(self, encoder, job.reduction, len, grid)
        })
    }
}

fn bce_launch<'a>(input: &'a [f32], target: &'a [f32], options: &'a BceOptions) -> BceLaunch<'a> {
    BceLaunch {
        kernel: Kernel::Bce,
        input,
        target,
        weight: options.weight.as_deref(),
        pos_weight: None,
        last_dim: 1,
        reduction: options.reduction,
    }
}

fn bce_logits_launch<'a>(
    input: &'a [f32],
    target: &'a [f32],
    options: &'a BceWithLogitsOptions,
    last_dim: usize,
) -> BceLaunch<'a> {
    BceLaunch {
        kernel: Kernel::BceLogits,
        input,
        target,
        weight: options.weight.as_deref(),
        pos_weight: options.pos_weight.as_deref(),
        last_dim,
        reduction: options.reduction,
    }
}
