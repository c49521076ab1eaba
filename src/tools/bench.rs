//! Benchmark cases shared by `cargo bench` and `xent bench`: the shapes, their minimal traffic,
//! their preparation on GPU-resident data, and a GPU timing loop.

use std::time::{Duration, Instant};

use crate::context::Context;
use crate::error::{Error, Operation, Result};
use crate::loss::{BinaryCrossEntropyWithLogits, CrossEntropy};
use crate::loss::{GpuInput, GpuTargets};
use crate::prepared::{GradMode, PreparedLoss};

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
/// machine), `quick` (seconds anywhere).
pub const PRESETS: [&str; 3] = ["gpu", "cpu-software", "quick"];

/// A preset's name, its cross-entropy shapes (rows, classes), its segmentation shape (N, C, H,
/// W) and its BCE length.
type PresetShapes = (&'static str, &'static [(usize, usize)], [usize; 4], usize);

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
    ),
    (
        "cpu-software",
        &[(1024, 32768), (16384, 1000), (1048576, 10), (1, 1 << 23)],
        [4, 21, 256, 256],
        1 << 24,
    ),
    (
        "quick",
        &[(64, 32768), (2048, 1000), (65536, 10), (1, 1 << 20)],
        [2, 21, 64, 64],
        1 << 20,
    ),
];

impl Case {
    /// The kernel's name: `ce_fwd`, `ce_fwd_grad`, `ce_softcap_zloss_fwd`,
    /// `ce_softcap_zloss_fwd_grad`, `ce_kdim_fwd`, `ce_kdim_fwd_grad`, `bce_logits_fwd`,
    /// `bce_logits_fwd_grad`.
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
        }
    }

    /// The shape as text: `NxC`, `NxCxHxW` or the element count.
    pub fn shape_name(&self) -> String {
        match self.shape {
            Shape::CrossEntropy { rows, classes } | Shape::CappedCrossEntropy { rows, classes } => {
                format!("{rows}x{classes}")
            }
            Shape::SegmentationCrossEntropy {
                shape: [n, c, h, w],
            } => format!("{n}x{c}x{h}x{w}"),
            Shape::BceWithLogits { len } => format!("{len}"),
        }
    }

    /// `kernel/shape`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.kernel(), self.shape_name())
    }

    /// The minimal traffic in bytes: the logits (or BCE's input and target) read once, plus the
    /// gradient written once with `grad`.
    pub fn bytes(&self) -> u64 {
        let (elements, reads) = match self.shape {
            Shape::CrossEntropy { rows, classes } | Shape::CappedCrossEntropy { rows, classes } => {
                (rows * classes, 1)
            }
            Shape::SegmentationCrossEntropy { shape } => (shape.iter().product(), 1),
            Shape::BceWithLogits { len } => (len, 2),
        };
        (4 * elements * (reads + usize::from(self.grad))) as u64
    }

    /// Prepares the case on generated GPU-resident data.
    pub fn prepare(&self, ctx: &Context) -> Result<PreparedLoss> {
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
        }
    }
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
/// preset's 1000-class shape also with a logit softcap and a z-loss, and its segmentation
/// map.
/// Unknown presets give an error naming the known ones.
pub fn cases(preset: &str) -> Result<Vec<Case>> {
    let Some(&(_, rows_classes, segmentation, bce_len)) =
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
        ]);
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
