//! The composed linear cross-entropy the fused one is measured against in benchmarks.

use super::blocks::TOKEN_ALIGN;
use super::check_tensors;
use super::product::{Operand, Product, TILE};
use super::LinearTensors;
use crate::error::{Error, Result};
use crate::gpu::buffers;
use crate::gpu::program::Program;
use crate::gpu::tensor::GpuTensor;
use crate::gpu::Gpu;
use crate::loss::call::ClassShape;
use crate::loss::linear::LinearShape;
use crate::loss::{CrossEntropy, GradMode};
use crate::plan::ranges;
use crate::prepared::PreparedLoss;

/// The composed linear cross-entropy the fused one is measured against (benchmarks): the whole
/// (N, V) logits in one buffer, made by the same product kernel in blocks of tokens that fit a
/// binding, xent's cross-entropy with its gradient written over them, then the two backward
/// products and the bias sums over the same blocks.
#[cfg(feature = "bench")]
#[cfg_attr(target_arch = "wasm32", allow(dead_code))]
pub(crate) struct Composed {
    forward: Program,
    loss: PreparedLoss,
    backward: Program,
    /// The whole logits, and the gradients (kept alive with the programs that write them).
    _buffers: Vec<wgpu::Buffer>,
}

#[cfg(feature = "bench")]
#[cfg_attr(target_arch = "wasm32", allow(dead_code))]
impl Composed {
    /// Records the whole composition.
    pub(crate) fn record(&self, encoder: &mut wgpu::CommandEncoder) {
        self.forward.record(encoder);
        self.loss.record(encoder);
        self.backward.record(encoder);
    }
}

/// Prepares [`Composed`] on the caller's tensors (as [`prepare_linear`]).
#[cfg(feature = "bench")]
#[cfg_attr(target_arch = "wasm32", allow(dead_code))]
pub(crate) fn prepare_composed(
    gpu: &Gpu,
    tensors: LinearTensors<'_>,
    shape: LinearShape,
    options: &CrossEntropy,
    grads: bool,
) -> Result<Composed> {
    let LinearShape { rows, dim, classes } = shape;
    let labels = check_tensors(gpu, &tensors, shape)?;
    let limits = gpu.limits();
    let logits = buffers::work(gpu, "xent whole logits", rows.saturating_mul(classes))?;
    let logits_tensor = GpuTensor::new(&logits);
    let binding = (limits.max_storage_buffer_binding_size / 4) as usize;
    let mut nb = rows.min(binding / classes.max(dim)).min(TILE * 65535);
    if nb < rows {
        nb = nb / TOKEN_ALIGN * TOKEN_ALIGN;
    }
    if nb == 0 {
        return Err(Error::TooLarge {
            what: "a row of the whole logits".into(),
            needed: 4 * classes as u64,
            limit_name: "max_storage_buffer_binding_size",
            limit: limits.max_storage_buffer_binding_size,
        });
    }
    let placeholder = buffers::output(gpu, "xent placeholder", 1)?;
    let mode = if grads {
        GradMode::InPlace
    } else {
        GradMode::Off
    };
    let loss = crate::kernels::cross_entropy::prepare_cross_entropy(
        gpu,
        logits_tensor,
        crate::kernels::cross_entropy::CategoricalTargets::Indices(labels),
        ClassShape::rows(rows, classes),
        options,
        mode,
    )?;
    let gh = buffers::work(gpu, "xent hidden gradient", rows * dim)?;
    let gw = buffers::work(gpu, "xent classifier gradient", classes * dim)?;
    let gb = buffers::work(gpu, "xent bias gradient", classes)?;
    let (mut forward, mut backward) = (Program::default(), Program::default());
    let all_classes = Operand::rows(gpu, "classifier", &tensors.classifier, 0..classes, dim)?;
    let bias = match &tensors.bias {
        Some(b) => Some(b.window(limits, "bias", 1, classes)?),
        None => None,
    };
    for (t, tokens) in ranges(rows, nb).enumerate() {
        let n = tokens.len();
        let hidden = Operand::rows(gpu, "hidden", &tensors.hidden, tokens.clone(), dim)?;
        let block = logits_tensor.rows_window(limits, "logits", tokens.clone(), classes)?;
        let w_t =
            Operand::rows(gpu, "classifier", &tensors.classifier, 0..classes, dim)?.transposed();
        Product {
            dims: (n, classes, dim),
            a: &hidden,
            b: &w_t,
            bias: bias.as_ref(),
            c: &block,
            accumulate: false,
        }
        .push(gpu, &mut forward, &placeholder)?;
        if !grads {
            continue;
        }
        let g = Operand::rows(gpu, "logits", &logits_tensor, tokens.clone(), classes)?;
        let dh = GpuTensor::new(&gh).rows_window(limits, "hidden gradient", tokens.clone(), dim)?;
        Product {
            dims: (n, dim, classes),
            a: &g,
            b: &all_classes,
            bias: None,
            c: &dh,
            accumulate: false,
        }
        .push(gpu, &mut backward, &placeholder)?;
        let dw = GpuTensor::new(&gw).window(limits, "classifier gradient", classes, dim)?;
        let gt =
            Operand::rows(gpu, "logits", &logits_tensor, tokens.clone(), classes)?.transposed();
        Product {
            dims: (classes, dim, n),
            a: &gt,
            b: &hidden,
            bias: None,
            c: &dw,
            accumulate: t > 0,
        }
        .push(gpu, &mut backward, &placeholder)?;
        let db = GpuTensor::new(&gb).window(limits, "bias gradient", 1, classes)?;
        Product {
            dims: (n, classes, 0),
            a: &g,
            b: &g,
            bias: None,
            c: &db,
            accumulate: t > 0,
        }
        .push_column_sums(gpu, &mut backward, &placeholder)?;
    }
    Ok(Composed {
        forward,
        loss,
        backward,
        _buffers: vec![logits, gh, gw, gb],
    })
}
