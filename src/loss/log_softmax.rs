//! Log-softmax over the class dimension, and its backward.

use crate::context::Context;
use crate::error::{Error, Result};
use crate::gpu_buffer;
use crate::loss::launch::{self, whole};
use crate::loss::parts::Batch;
use crate::loss::{validate, Loss, LossAndGrad, Reduction};
use crate::plan;
use crate::prepared::{GradMode, HostKey, LossBuffers, PreparedLoss};
use crate::shaders::{Kernel, PipelineKey};
use crate::tensor::GpuTensor;

/// Mirrors `Params` of shaders/log_softmax.wgsl.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    rows: u32,
    classes: u32,
    x_first: u32,
    x_stride: u32,
    segments: u32,
    segment_len: u32,
    _pad: [u32; 2],
}

impl Context {
    /// Prepares log-softmax on (rows, classes) f32 logits in a GPU buffer (row-major, at any
    /// 4-byte offset, rows optionally strided). Its "loss" buffer is the (rows, classes) log-softmax; with
    /// [`GradMode::Separate`] it also computes the backward `g - exp(logp) * sum_c g` for the
    /// (rows, classes) upstream gradient set with [`PreparedLoss::set_upstream`].
    pub fn prepare_log_softmax<'a>(
        &self,
        logits: impl Into<GpuTensor<'a>>,
        rows: usize,
        classes: usize,
        grad: GradMode,
    ) -> Result<PreparedLoss> {
        self.checked(|| {
            if classes == 0 {
                return Err(Error::InvalidShape {
                    reason: "the number of classes must be at least 1".into(),
                });
            }
            if grad == GradMode::InPlace {
                return Err(Error::InvalidOption {
                    name: "grad",
                    value: "GradMode::InPlace".into(),
                    reason: "log-softmax writes its output and gradient to buffers of its own"
                        .into(),
                });
            }
            let len = rows
                .checked_mul(classes)
                .ok_or_else(|| Error::InvalidShape {
                    reason: format!("{rows} x {classes} logits overflow"),
                })?;
            let logits = logits.into();
            let plan = plan::row_plan(rows, classes, self)?;
            // The log-softmax is an unreduced "loss" of `len` items with one upstream per item.
            let buffers =
                LossBuffers::new(self, Reduction::None, len, plan.grid, grad, len, &logits)?;
            let owned: Vec<u64> = buffers
                .item_bytes(1)
                .iter()
                .map(|b| b * classes as u64)
                .collect();
            let callers = [logits.row_bytes(classes)];
            let chunks = plan::chunks(rows, &callers, &owned, plan.rows_per_group, self.limits())?;
            let scratch = launch::scratch(self, &plan, &chunks)?;
            let with_grad = grad != GradMode::Off;
            let mut constants = launch::row_constants(&plan);
            constants.extend(launch::loss_constants(Reduction::None, with_grad));
            constants.push(("USE_Q", u32::from(with_grad)));
            let key = PipelineKey::typed(Kernel::LogSoftmax, constants, buffers.types);
            let mut program = buffers.program();
            for range in chunks {
                let x = logits.rows_window(self, "logits", range.clone(), classes)?;
                let params = gpu_buffer::uniform(
                    self,
                    &Params {
                        rows: range.len() as u32,
                        classes: classes as u32,
                        x_first: x.first,
                        x_stride: x.stride,
                        segments: plan.segments,
                        segment_len: plan.segment_len,
                        _pad: [0; 2],
                    },
                )?;
                let elements = range.start * classes..range.end * classes;
                let [out, upstream, grad_part] = buffers.chunk(elements, 1);
                launch::push_rows(
                    self,
                    &mut program,
                    &plan,
                    &key,
                    range.len(),
                    &[
                        whole(&params),
                        x.binding,
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

    /// Log-softmax of each row of an (N, C) batch of logits (row-major, `classes` = C):
    /// `logp[n, c] = (x[n, c] - m_n) - log(sum_c exp(x[n, c] - m_n))` with `m_n` the row's max.
    ///
    /// Finite for any finite logits; a -inf logit gives -inf; a row holding NaN or +inf gives
    /// NaN (as PyTorch).
    pub fn log_softmax(&self, logits: &[f32], classes: usize) -> Result<Vec<f32>> {
        let rows = validate::rows_of(logits, classes)?;
        let (logp, _) = self.host_log_softmax(logits, rows, classes, None)?;
        Ok(logp)
    }

    /// Log-softmax and its backward for an upstream gradient `upstream` of the logits' shape
    /// (N, C): `grad = g - exp(logp) * sum_c g` per row. The returned loss is the log-softmax,
    /// unreduced.
    pub fn log_softmax_and_grad(
        &self,
        logits: &[f32],
        classes: usize,
        upstream: &[f32],
    ) -> Result<LossAndGrad> {
        let rows = validate::rows_of(logits, classes)?;
        validate::length(
            "upstream",
            upstream.len(),
            logits.len(),
            "the upstream gradient of log-softmax has the logits' shape (N, C)",
        )?;
        let (logp, grad) = self.host_log_softmax(logits, rows, classes, Some(upstream))?;
        Ok(LossAndGrad {
            loss: Loss::Unreduced(logp),
            grad: grad.unwrap_or_default(),
        })
    }

    /// The host path of log-softmax, in parts when the batch does not fit one buffer (see
    /// `loss::parts`).
    fn host_log_softmax(
        &self,
        logits: &[f32],
        rows: usize,
        classes: usize,
        upstream: Option<&[f32]>,
    ) -> Result<(Vec<f32>, Option<Vec<f32>>)> {
        let mode = if upstream.is_some() {
            GradMode::Separate
        } else {
            GradMode::Off
        };
        let row = 4 * classes as u64;
        let batch = Batch {
            items: rows,
            largest_input: row,
            // The log-softmax, and the gradient, are read back together.
            outputs: if upstream.is_some() { 2 * row } else { row },
            multiple: 1,
            // The upstream gradient has the logits' shape.
            upstream_per_item: classes,
        };
        let (logp, grad) = self.host_in_parts(
            batch,
            Reduction::None,
            upstream,
            || rows as f64,
            |part, _, upstream| {
                let values = part.start * classes..part.end * classes;
                let key = HostKey::new(
                    format!(
                        "log_softmax {}x{classes} {mode:?} {:?}",
                        part.len(),
                        self.tuning()
                    ),
                    &[],
                );
                let inputs = [("logits", bytemuck::cast_slice(&logits[values]))];
                self.run_host(key, &inputs, upstream, |b| {
                    self.prepare_log_softmax(&b[0], part.len(), classes, mode)
                })
            },
        )?;
        Ok((logp.into_values(), grad))
    }
}
