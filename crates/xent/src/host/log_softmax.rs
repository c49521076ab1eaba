//! The host path of log-softmax and its backward.

use crate::error::Result;
use crate::host::parts::Batch;
use crate::host::{Host, HostKey, HostLoss};
use crate::kernels::log_softmax::prepare_log_softmax;
use crate::loss::GradMode;
use crate::loss::{validate, Reduction};

impl Host {
    /// Log-softmax of host logits and, with an (N, C) `upstream`, its backward: validation,
    /// then upload, prepare, run and read back, in parts when the batch does not fit one
    /// buffer (see `host::parts`).
    pub(crate) async fn log_softmax(
        &self,
        logits: &[f32],
        classes: usize,
        upstream: Option<&[f32]>,
    ) -> Result<(Vec<f32>, Option<Vec<f32>>)> {
        let rows = validate::rows_of(logits, classes)?;
        if let Some(upstream) = upstream {
            validate::length(
                "upstream",
                upstream.len(),
                logits.len(),
                "the upstream gradient of log-softmax has the logits' shape (N, C)",
            )?;
        }
        let mode = if upstream.is_some() {
            GradMode::Separate
        } else {
            GradMode::Off
        };
        let row = (classes as u64).saturating_mul(4);
        let batch = Batch {
            items: rows,
            largest_input: row,
            // The log-softmax, and the gradient, are read back together.
            outputs: if upstream.is_some() {
                row.saturating_mul(2)
            } else {
                row
            },
            multiple: 1,
            // The upstream gradient has the logits' shape.
            upstream_per_item: classes,
        };
        let tuning = self.gpu.tuning();
        let out = self
            .in_parts(
                batch,
                Reduction::None,
                upstream,
                || rows as f64,
                |part, _, upstream| async move {
                    let values = part.start * classes..part.end * classes;
                    let shape = [part.len(), classes, 1];
                    let key = HostKey::new(
                        HostLoss::LogSoftmax,
                        shape,
                        mode,
                        Reduction::None,
                        tuning,
                        &[],
                    );
                    let inputs = [("logits", bytemuck::cast_slice(&logits[values]))];
                    self.run(key, &inputs, upstream, |gpu, b| {
                        prepare_log_softmax(gpu, &b[0], part.len(), classes, mode)
                    })
                    .await
                },
            )
            .await?;
        Ok((out.loss.into_values(), out.grad))
    }
}
