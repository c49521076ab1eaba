//! Binary cross-entropy, on probabilities and with logits.

use crate::context::Context;
use crate::error::Result;
use crate::gpu_buffer;
use crate::loss::{launch, validate, BceOptions, BceWithLogitsOptions, Loss, Reduction};
use crate::plan;
use crate::shaders::{Kernel, PipelineKey};

/// Mirrors `Params` of shaders/bce_forward.wgsl and shaders/bce_logits_forward.wgsl.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    len: u32,
    last_dim: u32,
    _pad: [u32; 2],
}

/// Elementwise-kernel constants shared by both BCE kernels.
fn constants(has_weight: bool, reduction: Reduction) -> Vec<(&'static str, u32)> {
    let mut c = launch::elementwise_constants();
    c.push(("HAS_WEIGHT", u32::from(has_weight)));
    c.push((
        "PER_ELEMENT_OUTPUT",
        u32::from(reduction == Reduction::None),
    ));
    c
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
        validate::length("target", target.len(), input.len(), "the input's shape")?;
        validate::weights(
            "weight",
            options.weight.as_deref(),
            input.len(),
            "one weight per input element",
        )?;
        validate::probabilities(input)?;
        self.checked(|| {
            let grid = plan::elementwise_grid(input.len(), self.limits())?;
            let input_buf = gpu_buffer::upload(self, "input", input)?;
            let target_buf = gpu_buffer::upload(self, "target", target)?;
            let weight_buf =
                gpu_buffer::upload(self, "weight", options.weight.as_deref().unwrap_or(&[]))?;
            let out_len = launch::stage_len(options.reduction, input.len(), grid);
            let out = gpu_buffer::output(self, "binary_cross_entropy", out_len)?;
            let params = gpu_buffer::uniform(
                self,
                &Params {
                    len: input.len() as u32,
                    last_dim: 1,
                    _pad: [0; 2],
                },
            );
            let key = PipelineKey::new(
                Kernel::BceForward,
                constants(options.weight.is_some(), options.reduction),
            );
            let mut encoder = launch::encoder(self);
            launch::dispatch(
                self,
                &mut encoder,
                &key,
                grid,
                &[&params, &input_buf, &target_buf, &weight_buf, &out],
            )?;
            launch::finish_loss(self, encoder, out, options.reduction, input.len(), grid)
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
        validate::length("target", target.len(), input.len(), "the input's shape")?;
        validate::weights(
            "weight",
            options.weight.as_deref(),
            input.len(),
            "one weight per input element",
        )?;
        let last_dim = validate::last_dim(input.len(), options.pos_weight.as_deref())?;
        self.checked(|| {
            let grid = plan::elementwise_grid(input.len(), self.limits())?;
            let input_buf = gpu_buffer::upload(self, "input", input)?;
            let target_buf = gpu_buffer::upload(self, "target", target)?;
            let weight_buf =
                gpu_buffer::upload(self, "weight", options.weight.as_deref().unwrap_or(&[]))?;
            let pos_weight_buf = gpu_buffer::upload(
                self,
                "pos_weight",
                options.pos_weight.as_deref().unwrap_or(&[]),
            )?;
            let out_len = launch::stage_len(options.reduction, input.len(), grid);
            let out = gpu_buffer::output(self, "binary_cross_entropy_with_logits", out_len)?;
            let params = gpu_buffer::uniform(
                self,
                &Params {
                    len: input.len() as u32,
                    last_dim: last_dim as u32,
                    _pad: [0; 2],
                },
            );
            let mut constants = constants(options.weight.is_some(), options.reduction);
            constants.push(("HAS_POS_WEIGHT", u32::from(options.pos_weight.is_some())));
            let key = PipelineKey::new(Kernel::BceLogitsForward, constants);
            let mut encoder = launch::encoder(self);
            launch::dispatch(
                self,
                &mut encoder,
                &key,
                grid,
                &[
                    &params,
                    &input_buf,
                    &target_buf,
                    &weight_buf,
                    &pos_weight_buf,
                    &out,
                ],
            )?;
            launch::finish_loss(self, encoder, out, options.reduction, input.len(), grid)
        })
    }
}
