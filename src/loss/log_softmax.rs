//! Log-softmax over the class dimension, and its backward.

use crate::context::Context;
use crate::error::Result;
use crate::gpu_buffer;
use crate::loss::{launch, validate, Loss, LossAndGrad, Reduction};
use crate::plan;
use crate::shaders::{Kernel, PipelineKey};

/// Mirrors `Params` of shaders/log_softmax.wgsl.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    rows: u32,
    classes: u32,
    _pad: [u32; 2],
}

impl Context {
    /// Log-softmax of each row of an (N, C) batch of logits (row-major, `classes` = C):
    /// `logp[n, c] = (x[n, c] - m_n) - log(sum_c exp(x[n, c] - m_n))` with `m_n` the row's max.
    ///
    /// Finite for any finite logits; a -inf logit gives -inf; a row holding NaN or +inf gives
    /// NaN (as PyTorch).
    pub fn log_softmax(&self, logits: &[f32], classes: usize) -> Result<Vec<f32>> {
        validate::rows_of(logits, classes)?;
        Ok(self.run_log_softmax(logits, classes, None)?.0)
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
        validate::rows_of(logits, classes)?;
        validate::length(
            "upstream",
            upstream.len(),
            logits.len(),
            "the upstream gradient of log-softmax has the logits' shape (N, C)",
        )?;
        let (logp, grad) = self.run_log_softmax(logits, classes, Some(upstream))?;
        Ok(LossAndGrad {
            loss: Loss::Unreduced(logp),
            grad: grad.unwrap_or_default(),
        })
    }

    fn run_log_softmax(
        &self,
        logits: &[f32],
        classes: usize,
        upstream: Option<&[f32]>,
    ) -> Result<(Vec<f32>, Option<Vec<f32>>)> {
        let rows = logits.len() / classes;
        self.checked(|| {
            let plan = plan::row_plan(rows, classes, self.limits())?;
            let input = gpu_buffer::upload(self, "logits", logits)?;
            let out = gpu_buffer::output(self, "log_softmax", logits.len())?;
            let upstream_buf = gpu_buffer::upload(self, "upstream", upstream.unwrap_or(&[]))?;
            let grad_len = if upstream.is_some() { logits.len() } else { 1 };
            let grad = gpu_buffer::output(self, "xent gradient", grad_len)?;
            let params = gpu_buffer::uniform(
                self,
                &Params {
                    rows: rows as u32,
                    classes: classes as u32,
                    _pad: [0; 2],
                },
            );
            let mut constants = launch::row_constants(plan.row_threads);
            constants.extend(launch::loss_constants(Reduction::None, upstream.is_some()));
            constants.push(("USE_Q", u32::from(upstream.is_some())));
            let key = PipelineKey::new(Kernel::LogSoftmax, constants);
            let mut encoder = launch::encoder(self);
            launch::dispatch(
                self,
                &mut encoder,
                &key,
                plan.grid,
                &[&params, &input, &out, &upstream_buf, &grad],
            )?;
            self.submit_and_wait(encoder.finish())?;
            let logp = self.read_f32(&out, logits.len())?;
            let grad = match upstream {
                Some(_) => Some(self.read_f32(&grad, logits.len())?),
                None => None,
            };
            Ok((logp, grad))
        })
    }
}
