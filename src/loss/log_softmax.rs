//! Log-softmax over the class dimension.

use crate::context::Context;
use crate::error::Result;
use crate::gpu_buffer;
use crate::loss::{launch, validate};
use crate::plan;
use crate::shaders::{Kernel, PipelineKey};

/// Mirrors `Params` of shaders/log_softmax_forward.wgsl.
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
        let rows = validate::rows_of(logits, classes)?;
        self.checked(|| {
            let plan = plan::row_plan(rows, classes, self.limits())?;
            let input = gpu_buffer::upload(self, "logits", logits)?;
            let out = gpu_buffer::output(self, "log_softmax", logits.len())?;
            let params = gpu_buffer::uniform(
                self,
                &Params {
                    rows: rows as u32,
                    classes: classes as u32,
                    _pad: [0; 2],
                },
            );
            let key = PipelineKey::new(
                Kernel::LogSoftmaxForward,
                launch::row_constants(plan.row_threads),
            );
            let mut encoder = launch::encoder(self);
            launch::dispatch(
                self,
                &mut encoder,
                &key,
                plan.grid,
                &[&params, &input, &out],
            )?;
            launch::finish_and_read(self, encoder, &out, logits.len())
        })
    }
}
