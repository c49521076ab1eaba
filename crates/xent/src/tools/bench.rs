//! Benchmark cases shared by `cargo bench` and `xent bench`: the shapes, their minimal traffic,
//! their preparation on GPU-resident data, and a GPU timing loop.

use std::time::{Duration, Instant};

use crate::context::Context;
use crate::error::{Error, Operation, Result};
use crate::kernels::linear::{prepare_composed, Composed, LinearTensors};
use crate::linear::{GpuLinearInput, PreparedLinear};
use crate::loss::linear::LinearShape;
use crate::loss::GradMode;
use crate::loss::{BinaryCrossEntropyWithLogits, CrossEntropy, LinearCrossEntropy};
use crate::loss::{GpuInput, GpuTargets};
use crate::prepared::PreparedLoss;

/// A benchmark problem.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// Class-index cross-entropy, reduction mean.
    CrossEntropy {
        /// N.
        rows: usize,
        /// C.
        classes: usize,
    },
    /// Class-index cross-entropy with a logit softcap of 30 and a z-loss of 1e-4, reduction
    /// mean.
    CappedCrossEntropy {
        /// N.
        rows: usize,
        /// C.
        classes: usize,
    },
    /// Class-index cross-entropy of K-dimensional (N, C, H, W) logits (a segmentation map:
    /// classes `H W` values apart, a row per pixel), reduction mean.
    SegmentationCrossEntropy {
        /// (N, C, H, W).
        shape: [usize; 4],
    },
    /// BCE with logits over `len` elements, reduction mean.
    BceWithLogits {
        /// Element count.
        len: usize,
    },
    /// Linear cross-entropy of hidden (N, D), classifier (V, D) and bias (V), reduction mean:
    /// fused ([`LinearCrossEntropy`], logits never held), or `composed` (the whole logits made
    /// by the same product kernel, xent's cross-entropy with its gradient over them, the
    /// backward products).
    LinearCrossEntropy {
        /// [N, D, V].
        shape: [usize; 3],
        /// The composed baseline rather than the fused loss.
        composed: bool,
    },
}

/// A prepared case: what one timed run records, and the device memory xent allocated for it
/// beyond the inputs.
pub struct Prepared {
    work: Work,
    /// Bytes of the buffers xent created for the case (outputs, gradients, blocks or logits,
    /// scratch), not counting its inputs.
    pub owned_bytes: u64,
}

/// What a case records.
enum Work {
    Loss(PreparedLoss),
    Linear(PreparedLinear),
    Composed(Composed),
}

impl Prepared {
    /// Records one run of the case.
    pub fn record(&self, encoder: &mut wgpu::CommandEncoder) {
        match &self.work {
            Work::Loss(p) => p.record(encoder),
            Work::Linear(p) => p.record(encoder),
            Work::Composed(p) => p.record(encoder),
        }
    }
}

/// A shape, forward only or forward + gradient.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Case {
    /// The problem.
    pub shape: Shape,
    /// Whether the gradient is computed too.
    pub grad: bool,
}

/// The shape sets: `gpu` (data-centre GPU sizes), `cpu-software` (lavapipe on a small
/// machine), `quick` (seconds anywhere), and `linear` (fused and composed linear
/// cross-entropy at N = 2048, D = 128, V = 131072 only, whose logits alone are 1 GiB: minutes
/// per run on a software adapter).
pub const PRESETS: [&str; 4] = ["gpu", "cpu-software", "quick", "linear"];

/// A preset's name, its cross-entropy shapes (rows, classes), its segmentation shape (N, C, H,
/// W), its BCE length and its linear cross-entropy shape [N, D, V].
type PresetShapes = (
    &'static str,
    &'static [(usize, usize)],
    [usize; 4],
    usize,
    [usize; 3],
);

/// The `linear` preset's shape.
const LINEAR_LARGE: [usize; 3] = [2048, 128, 131072];

/// Each preset's cross-entropy shapes (rows, classes), its segmentation shape, then its
/// BCE-with-logits length. The last cross-entropy shape has too few rows to fill the adapter:
/// its rows are split.
const PRESET_SHAPES: [PresetShapes; 3] = [
    (
        "gpu",
        &[
            (8192, 32768),
            (8192, 128256),
            (262144, 1000),
            (4194304, 10),
            (8, 1 << 20),
        ],
        [16, 21, 512, 512],
        1 << 28,
        [4096, 2048, 128256],
    ),
    (
        "cpu-software",
        &[(1024, 32768), (16384, 1000), (1048576, 10), (1, 1 << 23)],
        [4, 21, 256, 256],
        1 << 24,
        [256, 128, 32768],
    ),
    (
        "quick",
        &[(64, 32768), (2048, 1000), (65536, 10), (1, 1 << 20)],
        [2, 21, 64, 64],
        1 << 20,
        [64, 64, 8192],
    ),
];

impl Case {
    /// The kernel's name: `ce_fwd`, `ce_fwd_grad`, `ce_softcap_zloss_fwd`,
    /// `ce_softcap_zloss_fwd_grad`, `ce_kdim_fwd`, `ce_kdim_fwd_grad`, `bce_logits_fwd`,
    /// `bce_logits_fwd_grad`, `linear_ce_fwd`, `linear_ce_fwd_grad`, `linear_ce_composed_fwd`,
    /// `linear_ce_composed_fwd_grad`.
    pub fn kernel(&self) -> &'static str {
        match (self.shape, self.grad) {
            (Shape::CrossEntropy { .. }, false) => "ce_fwd",
            (Shape::CrossEntropy { .. }, true) => "ce_fwd_grad",
            (Shape::CappedCrossEntropy { .. }, false) => "ce_softcap_zloss_fwd",
            (Shape::CappedCrossEntropy { .. }, true) => "ce_softcap_zloss_fwd_grad",
            (Shape::SegmentationCrossEntropy { .. }, false) => "ce_kdim_fwd",
            (Shape::SegmentationCrossEntropy { .. }, true) => "ce_kdim_fwd_grad",
            (Shape::BceWithLogits { .. }, false) => "bce_logits_fwd",
            (Shape::BceWithLogits { .. }, true) => "bce_logits_fwd_grad",
            (
                Shape::LinearCrossEntropy {
                    composed: false, ..
                },
                false,
            ) => "linear_ce_fwd",
            (
                Shape::LinearCrossEntropy {
                    composed: false, ..
                },
                true,
            ) => "linear_ce_fwd_grad",
            (Shape::LinearCrossEntropy { composed: true, .. }, false) => "linear_ce_composed_fwd",
            (Shape::LinearCrossEntropy { composed: true, .. }, true) => {
                "linear_ce_composed_fwd_grad"
            }
        }
    }

    /// The shape as text: `NxC`, `NxCxHxW`, the element count, or `NxDxV`.
    pub fn shape_name(&self) -> String {
        match self.shape {
            Shape::CrossEntropy { rows, classes } | Shape::CappedCrossEntropy { rows, classes } => {
                format!("{rows}x{classes}")
            }
            Shape::SegmentationCrossEntropy {
                shape: [n, c, h, w],
            } => format!("{n}x{c}x{h}x{w}"),
            Shape::BceWithLogits { len } => format!("{len}"),
            Shape::LinearCrossEntropy {
                shape: [n, d, v], ..
            } => format!("{n}x{d}x{v}"),
        }
    }

    /// The floating-point operations of the matrix products a linear cross-entropy case
    /// needs (2 N V D for the logits, twice that more for the two gradients; the fused loss
    /// also makes the logits again, which is not counted); `None` for the other cases.
    pub fn flops(&self) -> Option<f64> {
        match self.shape {
            Shape::LinearCrossEntropy {
                shape: [n, d, v], ..
            } => {
                let products = if self.grad { 3.0 } else { 1.0 };
                Some(2.0 * n as f64 * d as f64 * v as f64 * products)
            }
            _ => None,
        }
    }

    /// `kernel/shape`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.kernel(), self.shape_name())
    }

    /// The minimal traffic in bytes: the logits (or BCE's input and target; linear
    /// cross-entropy's hidden, classifier and bias) read once, plus the gradient (gradients)
    /// written once with `grad`.
    pub fn bytes(&self) -> u64 {
        let (elements, reads) = match self.shape {
            Shape::LinearCrossEntropy {
                shape: [n, d, v], ..
            } => (n * d + v * d + v, 1),
            Shape::CrossEntropy { rows, classes } | Shape::CappedCrossEntropy { rows, classes } => {
                (rows * classes, 1)
            }
            Shape::SegmentationCrossEntropy { shape } => (shape.iter().product(), 1),
            Shape::BceWithLogits { len } => (len, 2),
        };
        (4 * elements * (reads + usize::from(self.grad))) as u64
    }

    /// Prepares the case on generated GPU-resident data.
    pub fn prepare(&self, ctx: &Context) -> Result<Prepared> {
        if let Shape::LinearCrossEntropy { shape, composed } = self.shape {
            return prepare_linear_case(ctx, shape, composed, self.grad);
        }
        let before = ctx.gpu().bytes_created();
        let loss = self.prepare_loss(ctx)?;
        Ok(Prepared {
            work: Work::Loss(loss),
            owned_bytes: ctx.gpu().bytes_created() - before,
        })
    }

    /// Prepares a loss case (not linear cross-entropy).
    fn prepare_loss(&self, ctx: &Context) -> Result<PreparedLoss> {
        let mode = if self.grad {
            GradMode::Separate
        } else {
            GradMode::Off
        };
        let (softcap, z_loss) = match self.shape {
            Shape::CappedCrossEntropy { .. } => (Some(30.0), 1e-4),
            _ => (None, 0.0),
        };
        match self.shape {
            Shape::CrossEntropy { rows, classes } | Shape::CappedCrossEntropy { rows, classes } => {
                let len = checked_len(rows, classes)?;
                // Checked before the host data is generated, so a shape too large for the
                // adapter is an error, not a failed host allocation.
                fits(ctx, len)?;
                let logits: Vec<f32> = (0..len)
                    .map(|i| ((i * 7919) % 1000) as f32 / 100.0 - 5.0)
                    .collect();
                let labels: Vec<i32> = (0..rows).map(|r| ((r * 31) % classes) as i32).collect();
                let (l, t) = (storage(ctx, &logits)?, storage(ctx, &labels)?);
                let options = CrossEntropy {
                    softcap,
                    z_loss,
                    ..Default::default()
                };
                let input = GpuInput::new(&l, [rows, classes]).with_grad(mode);
                ctx.prepare(&options, input, GpuTargets::indices(&t))
            }
            Shape::SegmentationCrossEntropy { shape } => {
                let [n, classes, h, w] = shape;
                let positions = checked_len(n, h).and_then(|nh| checked_len(nh, w))?;
                let len = checked_len(positions, classes)?;
                fits(ctx, len)?;
                let logits: Vec<f32> = (0..len)
                    .map(|i| ((i * 7919) % 1000) as f32 / 100.0 - 5.0)
                    .collect();
                let labels: Vec<i32> = (0..positions)
                    .map(|r| ((r * 31) % classes) as i32)
                    .collect();
                let (l, t) = (storage(ctx, &logits)?, storage(ctx, &labels)?);
                let input = GpuInput::new(&l, shape).with_grad(mode);
                ctx.prepare(&CrossEntropy::default(), input, GpuTargets::indices(&t))
            }
            Shape::BceWithLogits { len } => {
                fits(ctx, len)?;
                let x: Vec<f32> = (0..len)
                    .map(|i| ((i * 7919) % 1000) as f32 / 50.0 - 10.0)
                    .collect();
                let t: Vec<f32> = (0..len).map(|i| (i % 2) as f32).collect();
                let (x, t) = (storage(ctx, &x)?, storage(ctx, &t)?);
                let options = BinaryCrossEntropyWithLogits::default();
                let input = GpuInput::new(&x, [len]).with_grad(mode);
                ctx.prepare(&options, input, GpuTargets::values(&t))
            }
            Shape::LinearCrossEntropy { .. } => Err(Error::Misuse {
                what: "prepare_loss",
                reason: "linear cross-entropy is prepared by prepare_linear_case".into(),
            }),
        }
    }
}

/// Prepares linear cross-entropy of shape [N, D, V] on generated data (a trained head's
/// scale: logits of a few units), fused or composed, with bias.
fn prepare_linear_case(
    ctx: &Context,
    [n, d, v]: [usize; 3],
    composed: bool,
    grads: bool,
) -> Result<Prepared> {
    let shape = LinearShape::new([n, d, v])?;
    fits(ctx, n * d)?;
    fits(ctx, v * d)?;
    let scale = 2.0 / (d as f32).sqrt();
    let wave = |i: usize| ((i * 7919) % 1000) as f32 / 500.0 - 1.0;
    let hidden: Vec<f32> = (0..n * d).map(wave).collect();
    let classifier: Vec<f32> = (0..v * d).map(|i| scale * wave(i + 13)).collect();
    let bias: Vec<f32> = (0..v).map(|i| 0.5 * wave(i + 29)).collect();
    let labels: Vec<i32> = (0..n).map(|r| ((r * 31) % v) as i32).collect();
    let (h, w) = (storage(ctx, &hidden)?, storage(ctx, &classifier)?);
    let (b, t) = (storage(ctx, &bias)?, storage(ctx, &labels)?);
    drop((hidden, classifier));
    let before = ctx.gpu().bytes_created();
    let work = if composed {
        let tensors = LinearTensors {
            hidden: (&h).into(),
            classifier: (&w).into(),
            bias: Some((&b).into()),
            labels: (&t).into(),
        };
        let gpu = ctx.gpu();
        let options = CrossEntropy::default();
        let composed = gpu.block_on(gpu.checked(Operation::Prepare, || {
            prepare_composed(gpu, tensors, shape, &options, grads)
        }))?;
        Work::Composed(composed)
    } else {
        let grad = match grads {
            true => GradMode::Separate,
            false => GradMode::Off,
        };
        let input = GpuLinearInput::new(&h, &w, [n, d, v])
            .with_bias(&b)
            .with_grad(grad);
        let loss = LinearCrossEntropy::default();
        Work::Linear(ctx.prepare(&loss, input, GpuTargets::indices(&t))?)
    };
    // The inputs stay alive with the work that binds them.
    let owned_bytes = ctx.gpu().bytes_created() - before;
    Ok(Prepared { work, owned_bytes })
}

fn checked_len(rows: usize, classes: usize) -> Result<usize> {
    rows.checked_mul(classes)
        .ok_or_else(|| Error::InvalidShape {
            reason: format!("{rows} x {classes} overflows"),
        })
}

/// Checks that `len` f32 values of benchmark input fit one buffer of the adapter.
fn fits(ctx: &Context, len: usize) -> Result<()> {
    let bytes = (len as u64).saturating_mul(4);
    crate::plan::check_buffer("benchmark input", bytes, ctx.limits())
}

/// Uploads benchmark data.
fn storage<T: bytemuck::Pod>(ctx: &Context, data: &[T]) -> Result<wgpu::Buffer> {
    let gpu = ctx.gpu();
    gpu.block_on(gpu.checked(Operation::Upload, || {
        gpu.create_buffer_init(
            "xent bench input",
            bytemuck::cast_slice(data),
            wgpu::BufferUsages::STORAGE,
        )
    }))
}

/// The cases of a preset (see [`PRESETS`]): each shape forward, then forward + gradient; the
/// preset's 1000-class shape also with a logit softcap and a z-loss, its segmentation map, and
/// its linear cross-entropy shape fused and composed (`linear`: that alone, with gradients).
/// Unknown presets give an error naming the known ones.
pub fn cases(preset: &str) -> Result<Vec<Case>> {
    let linear =
        |shape| [false, true].map(|composed| Shape::LinearCrossEntropy { shape, composed });
    if preset == "linear" {
        return Ok(linear(LINEAR_LARGE)
            .into_iter()
            .map(|shape| Case { shape, grad: true })
            .collect());
    }
    let Some(&(_, rows_classes, segmentation, bce_len, linear_shape)) =
        PRESET_SHAPES.iter().find(|p| p.0 == preset)
    else {
        return Err(Error::InvalidOption {
            name: "preset",
            value: preset.into(),
            reason: format!("use one of {}", PRESETS.join(", ")),
        });
    };
    // The 1000-class batch once more with a softcap and a z-loss, next to the plain one.
    let (rows, classes) = rows_classes
        .iter()
        .copied()
        .find(|&(_, classes)| classes == 1000)
        .unwrap_or(rows_classes[0]);
    let shapes = rows_classes
        .iter()
        .map(|&(rows, classes)| Shape::CrossEntropy { rows, classes })
        .chain([
            Shape::CappedCrossEntropy { rows, classes },
            Shape::SegmentationCrossEntropy {
                shape: segmentation,
            },
            Shape::BceWithLogits { len: bce_len },
        ])
        .chain(linear(linear_shape));
    Ok(shapes
        .into_iter()
        .flat_map(|shape| [Case { shape, grad: false }, Case { shape, grad: true }])
        .collect())
}

/// The preset that suits an adapter: `cpu-software` for a CPU adapter, `gpu` otherwise.
pub fn default_preset(device_type: wgpu::DeviceType) -> &'static str {
    if device_type == wgpu::DeviceType::Cpu {
        "cpu-software"
    } else {
        "gpu"
    }
}

/// Recordings per submit: one submit carries enough work to hide its own overhead.
pub const RECORDS_PER_SUBMIT: u64 = 8;

/// Records `record` `iters` times (in submits of [`RECORDS_PER_SUBMIT`]) and returns the wall
/// time until the GPU has finished all of it.
pub fn time_gpu(
    ctx: &Context,
    iters: u64,
    record: &dyn Fn(&mut wgpu::CommandEncoder),
) -> Result<Duration> {
    let start = Instant::now();
    let mut left = iters;
    while left > 0 {
        let n = left.min(RECORDS_PER_SUBMIT);
        let mut encoder = ctx
            .device()
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("xent bench"),
            });
        for _ in 0..n {
            record(&mut encoder);
        }
        ctx.queue().submit([encoder.finish()]);
        left -= n;
    }
    ctx.device()
        .poll(wgpu::PollType::Wait {
            submission_index: None,
            timeout: Some(Duration::from_secs(600)),
        })
        .map_err(|e| Error::Gpu {
            operation: Operation::Run,
            kernel: None,
            message: format!("waiting for benchmark work: {e}"),
        })?;
    Ok(start.elapsed())
}
