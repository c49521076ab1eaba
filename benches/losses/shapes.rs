//! The benchmark shapes, and the same-run summary table.

/// A problem shape.
#[derive(Clone, Copy, Debug)]
pub enum Shape {
    /// Class-index cross-entropy, reduction mean.
    CrossEntropy { rows: usize, classes: usize },
    /// BCE with logits over `len` elements, reduction mean.
    BceWithLogits { len: usize },
}

/// A shape, forward only or forward + gradient.
#[derive(Clone, Copy, Debug)]
pub struct Case {
    pub shape: Shape,
    pub grad: bool,
}

impl Case {
    pub fn kernel(&self) -> &'static str {
        match (self.shape, self.grad) {
            (Shape::CrossEntropy { .. }, false) => "ce_fwd",
            (Shape::CrossEntropy { .. }, true) => "ce_fwd_grad",
            (Shape::BceWithLogits { .. }, false) => "bce_logits_fwd",
            (Shape::BceWithLogits { .. }, true) => "bce_logits_fwd_grad",
        }
    }

    pub fn shape_name(&self) -> String {
        match self.shape {
            Shape::CrossEntropy { rows, classes } => format!("{rows}x{classes}"),
            Shape::BceWithLogits { len } => format!("{len}"),
        }
    }

    pub fn name(&self) -> String {
        format!("{}/{}", self.kernel(), self.shape_name())
    }

    /// The minimal traffic in bytes.
    pub fn bytes(&self) -> u64 {
        let (elements, reads) = match self.shape {
            Shape::CrossEntropy { rows, classes } => (rows * classes, 1),
            Shape::BceWithLogits { len } => (len, 2),
        };
        let passes = reads + usize::from(self.grad);
        (4 * elements * passes) as u64
    }
}

/// `XENT_BENCH_SET`, or the set that suits the adapter.
pub fn chosen_set(device_type: wgpu::DeviceType) -> &'static str {
    match std::env::var("XENT_BENCH_SET").as_deref() {
        Ok("gpu") => "gpu",
        Ok("cpu-software") => "cpu-software",
        _ if device_type == wgpu::DeviceType::Cpu => "cpu-software",
        _ => "gpu",
    }
}

/// Every case of a set: each shape forward, then forward + gradient.
pub fn cases(set: &str) -> Vec<Case> {
    let shapes: Vec<Shape> = if set == "gpu" {
        vec![
            Shape::CrossEntropy {
                rows: 8192,
                classes: 32768,
            },
            Shape::CrossEntropy {
                rows: 8192,
                classes: 128256,
            },
            Shape::CrossEntropy {
                rows: 262144,
                classes: 1000,
            },
            Shape::CrossEntropy {
                rows: 4194304,
                classes: 10,
            },
            Shape::BceWithLogits { len: 1 << 28 },
        ]
    } else {
        vec![
            Shape::CrossEntropy {
                rows: 1024,
                classes: 32768,
            },
            Shape::CrossEntropy {
                rows: 16384,
                classes: 1000,
            },
            Shape::CrossEntropy {
                rows: 1048576,
                classes: 10,
            },
            Shape::BceWithLogits { len: 1 << 24 },
        ]
    };
    shapes
        .into_iter()
        .flat_map(|shape| [Case { shape, grad: false }, Case { shape, grad: true }])
        .collect()
}

/// Criterion's median for a benchmark id (nanoseconds), from its saved estimates.
fn median_ns(id: &str) -> Option<f64> {
    let dir = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into());
    let path = format!("{dir}/criterion/xent/{id}/new/estimates.json");
    let text = std::fs::read_to_string(path).ok()?;
    let median = &text[text.find("\"median\"")?..];
    let value = &median[median.find("\"point_estimate\":")? + "\"point_estimate\":".len()..];
    let end = value.find([',', '}'])?;
    value[..end].trim().parse().ok()
}

/// Prints each case that ran: its median, GB/s, and ratio to the read ceiling of this run.
pub fn print_ratios(adapter: &str, ceiling_bytes: u64, ran: &[Case]) {
    let Some(ceiling_ns) = median_ns("read_ceiling") else {
        return;
    };
    let ceiling_gbps = ceiling_bytes as f64 / ceiling_ns;
    println!("\nadapter: {adapter}");
    println!(
        "read ceiling: {ceiling_gbps:.1} GB/s (median {:.3} ms)",
        ceiling_ns / 1e6
    );
    println!(
        "{:<34} {:>12} {:>10} {:>8}",
        "case", "median ms", "GB/s", "ratio"
    );
    let mut forward_ns = None;
    for case in ran {
        let Some(ns) = median_ns(&case.name()) else {
            continue;
        };
        let gbps = case.bytes() as f64 / ns;
        let extra = if case.grad {
            forward_ns.map_or(String::new(), |f: f64| {
                format!("   fwd+grad / fwd time {:.2}", ns / f)
            })
        } else {
            forward_ns = Some(ns);
            String::new()
        };
        println!(
            "{:<34} {:>12.3} {:>10.1} {:>8.3}{extra}",
            case.name(),
            ns / 1e6,
            gbps,
            gbps / ceiling_gbps
        );
    }
}
