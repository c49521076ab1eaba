//! Binary cross-entropy, on probabilities and with logits.

use std::ops::Range;

use crate::context::Context;
use crate::error::{Error, Result};
use crate::gpu_buffer;
use crate::loss::launch::{self, whole};
use crate::loss::parts::{Batch, HostResult};
use crate::loss::{validate, BceOptions, BceWithLogitsOptions, Loss, LossAndGrad, Reduction};
use crate::plan::{self, ELEMENTWISE_ITEMS, WORKGROUP_SIZE};
use crate::prepared::{GradMode, HostKey, LossBuffers, PreparedLoss};
use crate::shaders::{Kernel, PipelineKey};
use crate::tensor::GpuTensor;

/// Mirrors `Params` of shaders/common/elementwise_loss.wgsl (both BCE kernels).
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    len: u32,
    last_dim: u32,
    x_first: u32,
    t_first: u32,
    elem_base: u32,
    pair_base: u32,
    total_len: u32,
    reduction: u32,
}

/// The host inputs of one part of a BCE call.
fn bce_inputs<'a>(
    input: &'a [f32],
    target: &'a [f32],
    part: &Range<usize>,
) -> [(&'static str, &'a [u8]); 2] {
    [
        ("input", bytemuck::cast_slice(&input[part.clone()])),
        ("target", bytemuck::cast_slice(&target[part.clone()])),
    ]
}

/// What differs between the two BCE kernels.
struct BceKind<'a> {
    kernel: Kernel,
    weight: Option<&'a [f32]>,
    /// pos_weight (BCE with logits only) and the last dimension it spans.
    pos_weight: Option<(Option<&'a [f32]>, usize)>,
    reduction: Reduction,
}

impl Context {
    /// Prepares binary cross-entropy on probabilities on GPU tensors of `len` f32 each (at any
    /// 4-byte offset)
    /// (`input` in [0, 1], not checked on the GPU: see [`Context::binary_cross_entropy`]).
    /// See [`PreparedLoss`] for running it.
    pub fn prepare_binary_cross_entropy<'a>(
        &self,
        input: impl Into<GpuTensor<'a>>,
        target: impl Into<GpuTensor<'a>>,
        len: usize,
        options: &BceOptions,
        grad: GradMode,
    ) -> Result<PreparedLoss> {
        self.checked(|| {
            validate::weights(
                "weight",
                options.weight.as_deref(),
                len,
                "one weight per input element",
            )?;
            let kind = BceKind {
                kernel: Kernel::Bce,
                weight: options.weight.as_deref(),
                pos_weight: None,
                reduction: options.reduction,
            };
            self.prepare_bce(input.into(), target.into(), len, &kind, grad)
        })
    }

    /// Prepares binary cross-entropy with logits on GPU tensors of `len` f32 each (at any 4-byte
    /// offset). See
    /// [`Context::binary_cross_entropy_with_logits`] for the semantics and [`PreparedLoss`] for
    /// running it.
    pub fn prepare_binary_cross_entropy_with_logits<'a>(
        &self,
        input: impl Into<GpuTensor<'a>>,
        target: impl Into<GpuTensor<'a>>,
        len: usize,
        options: &BceWithLogitsOptions,
        grad: GradMode,
    ) -> Result<PreparedLoss> {
        self.checked(|| {
            validate::weights(
                "weight",
                options.weight.as_deref(),
                len,
                "one weight per input element",
            )?;
            let last_dim = validate::last_dim(len, options.pos_weight.as_deref())?;
            let kind = BceKind {
                kernel: Kernel::BceLogits,
                weight: options.weight.as_deref(),
                pos_weight: Some((options.pos_weight.as_deref(), last_dim)),
                reduction: options.reduction,
            };
            self.prepare_bce(input.into(), target.into(), len, &kind, grad)
        })
    }

    fn prepare_bce(
        &self,
        input: GpuTensor<'_>,
        target: GpuTensor<'_>,
        len: usize,
        kind: &BceKind<'_>,
        grad: GradMode,
    ) -> Result<PreparedLoss> {
        if grad == GradMode::InPlace {
            return Err(Error::InvalidOption {
                name: "grad",
                value: "GradMode::InPlace".into(),
                reason: "binary cross-entropy writes its gradient to a buffer of its own".into(),
            });
        }
        let target = target.four_byte("targets")?;
        let grid = plan::elementwise_grid(len, self.limits())?;
        let weight = gpu_buffer::upload(self, "weight", kind.weight.unwrap_or(&[]))?;
        let last_dim = kind.pos_weight.map_or(1, |(_, d)| d);
        let buffers = LossBuffers::new(self, kind.reduction, len, grid, grad, len, &input)?;
        // Per element: the input and target, and xent's weight and outputs.
        let callers = [input.dtype.size(), 4];
        let mut owned = buffers.item_bytes(1);
        owned.push(4);
        let block = (WORKGROUP_SIZE * ELEMENTWISE_ITEMS) as usize;
        let chunks = plan::chunks(len, &callers, &owned, block, self.limits())?;
        let mut constants = launch::elementwise_constants();
        constants.extend(launch::loss_constants(
            kind.reduction,
            grad != GradMode::Off,
        ));
        constants.push(("HAS_WEIGHT", u32::from(kind.weight.is_some())));
        let pos_weight = match kind.pos_weight {
            Some((pw, _)) => {
                constants.push(("HAS_POS_WEIGHT", u32::from(pw.is_some())));
                Some(gpu_buffer::upload(self, "pos_weight", pw.unwrap_or(&[]))?)
            }
            None => None,
        };
        let key = PipelineKey::typed(kind.kernel, constants, buffers.types);
        let mut program = buffers.program();
        for range in chunks {
            let x = input.rows_window(self, "input", range.clone(), 1)?;
            let t = target.rows_window(self, "target", range.clone(), 1)?;
            let params = gpu_buffer::uniform(
                self,
                &Params {
                    len: range.len() as u32,
                    last_dim: last_dim as u32,
                    x_first: x.first,
                    t_first: t.first,
                    elem_base: range.start as u32,
                    pair_base: (range.start / block) as u32,
                    total_len: len as u32,
                    reduction: kind.reduction.shader_code(),
                },
            )?;
            let weight_part = match kind.weight {
                Some(_) => GpuTensor::new(&weight).rows_window(self, "weight", range.clone(), 1)?,
                None => GpuTensor::new(&weight).window(self, "weight", 1, 1)?,
            };
            let [out, upstream, grad_part] = buffers.chunk(range.clone(), 1);
            let mut bindings = vec![whole(&params), x.binding, t.binding, weight_part.binding];
            if let Some(pw) = &pos_weight {
                bindings.push(whole(pw));
            }
            bindings.extend([out, upstream, grad_part]);
            program.push(
                self,
                &key,
                plan::elementwise_grid(range.len(), self.limits())?,
                &bindings,
            )?;
        }
        buffers.finish(self, program)
    }

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
        let (loss, _) = self.host_bce_probs(input, target, options, None, GradMode::Off)?;
        Ok(loss)
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
        let (loss, grad) =
            self.host_bce_probs(input, target, options, Some(&upstream), GradMode::Separate)?;
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
        validate::bce_with_logits(input, target, options)?;
        let (loss, _) = self.host_bce_logits(input, target, options, None, GradMode::Off)?;
        Ok(loss)
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
        validate::bce_with_logits(input, target, options)?;
        let upstream = validate::upstream(upstream, options.reduction, input.len(), "element")?;
        let (loss, grad) =
            self.host_bce_logits(input, target, options, Some(&upstream), GradMode::Separate)?;
        Ok(LossAndGrad {
            loss,
            grad: grad.unwrap_or_default(),
        })
    }

    /// The host path of binary cross-entropy on probabilities.
    fn host_bce_probs(
        &self,
        input: &[f32],
        target: &[f32],
        options: &BceOptions,
        upstream: Option<&[f32]>,
        mode: GradMode,
    ) -> Result<HostResult> {
        let run_part = |part: Range<usize>, reduction, upstream: Option<&[f32]>| {
            let options = BceOptions {
                weight: options.weight.as_ref().map(|w| w[part.clone()].to_vec()),
                reduction,
            };
            let key = self.bce_key(
                "bce",
                part.len(),
                reduction,
                mode,
                &[options.weight.as_deref()],
            );
            self.run_host(key, &bce_inputs(input, target, &part), upstream, |b| {
                self.prepare_binary_cross_entropy(&b[0], &b[1], part.len(), &options, mode)
            })
        };
        self.host_bce(input.len(), options.reduction, 1, upstream, mode, run_part)
    }

    /// The host path of binary cross-entropy with logits.
    fn host_bce_logits(
        &self,
        input: &[f32],
        target: &[f32],
        options: &BceWithLogitsOptions,
        upstream: Option<&[f32]>,
        mode: GradMode,
    ) -> Result<HostResult> {
        let run_part = |part: Range<usize>, reduction, upstream: Option<&[f32]>| {
            let options = BceWithLogitsOptions {
                weight: options.weight.as_ref().map(|w| w[part.clone()].to_vec()),
                pos_weight: options.pos_weight.clone(),
                reduction,
            };
            let weights = [options.weight.as_deref(), options.pos_weight.as_deref()];
            let key = self.bce_key("bce_logits", part.len(), reduction, mode, &weights);
            self.run_host(key, &bce_inputs(input, target, &part), upstream, |b| {
                self.prepare_binary_cross_entropy_with_logits(
                    &b[0],
                    &b[1],
                    part.len(),
                    &options,
                    mode,
                )
            })
        };
        // Parts start at multiples of pos_weight's length, so each part indexes it from 0.
        let last_dim = options.pos_weight.as_ref().map_or(1, Vec::len);
        self.host_bce(
            input.len(),
            options.reduction,
            last_dim,
            upstream,
            mode,
            run_part,
        )
    }

    /// The host path of both BCEs over `len` elements, in parts of a multiple of `multiple`
    /// elements when they do not fit one buffer (see `loss::parts`); `run_part` runs one part
    /// as one host call.
    fn host_bce(
        &self,
        len: usize,
        reduction: Reduction,
        multiple: usize,
        upstream: Option<&[f32]>,
        mode: GradMode,
        run_part: impl FnMut(Range<usize>, Reduction, Option<&[f32]>) -> Result<HostResult>,
    ) -> Result<HostResult> {
        let loss = if reduction == Reduction::None { 4 } else { 0 };
        let grad = if mode == GradMode::Off { 0 } else { 4 };
        // Input, target, weight and upstream take 4 bytes an element each.
        let batch = Batch {
            items: len,
            largest_input: 4,
            outputs: loss + grad,
            multiple,
            upstream_per_item: 1,
        };
        self.host_in_parts(batch, reduction, upstream, || len as f64, run_part)
    }

    /// The key under which a BCE host call's prepared loss is kept for reuse.
    fn bce_key(
        &self,
        loss: &str,
        len: usize,
        reduction: Reduction,
        mode: GradMode,
        weights: &[Option<&[f32]>],
    ) -> HostKey {
        let present: Vec<bool> = weights.iter().map(Option::is_some).collect();
        let shape = format!(
            "{loss} {len} {mode:?} {reduction:?} weights {present:?} {:?}",
            self.tuning()
        );
        HostKey::new(shape, weights)
    }
}
