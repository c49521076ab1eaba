//! xent in the browser: the page's bindings. [`Page::open`] takes the browser's WebGPU adapter;
//! [`Page::losses`] computes every loss on the page's logits next to the float64 reference;
//! [`Page::check`] runs the conformance suite of `xent check`. Results cross to JavaScript as
//! JSON text (see `main.js`).
//!
//! Build and serve it with `scripts/web.sh serve`.

use wasm_bindgen::prelude::*;
use xent::{
    reference, BinaryCrossEntropy, BinaryCrossEntropyWithLogits, Context, CrossEntropy, Input,
    LogSoftmax, Loss, NllLoss, Reduction, SigmoidFocalLoss, Targets,
};
use xent_conformance::{self as conformance, CaseReport};

/// A context on the browser's WebGPU adapter, as the page holds it.
#[wasm_bindgen]
pub struct Page {
    ctx: Context,
}

#[wasm_bindgen]
impl Page {
    /// Opens the adapter the browser's WebGPU offers, with its own limits (not WebGPU's
    /// defaults); an error when the browser has none.
    pub async fn open() -> Result<Page, JsError> {
        let ctx = Context::new_async()
            .await
            .map_err(|e| JsError::new(&e.to_string()))?;
        Ok(Page { ctx })
    }

    /// The adapter as xent sees it, as a JSON object: backend, device type, name and driver
    /// as wgpu reports them (a browser may leave the name empty), the subgroup size xent
    /// merges rows with (null: through workgroup memory), and the limits the launch plan is
    /// fitted to.
    pub fn adapter(&self) -> String {
        let info = self.ctx.adapter_info();
        let limits = self.ctx.limits();
        let subgroup = self
            .ctx
            .subgroup_size()
            .map_or("null".to_string(), |s| s.to_string());
        format!(
            "{{\"backend\":{},\"device_type\":{},\"name\":{},\"driver\":{},\"subgroup_size\":{subgroup},\
             \"max_storage_buffer_binding_size\":{},\"max_storage_buffers_per_shader_stage\":{},\
             \"max_compute_invocations_per_workgroup\":{},\"max_compute_workgroups_per_dimension\":{}}}",
            text(&format!("{:?}", info.backend)),
            text(&format!("{:?}", info.device_type)),
            text(&info.name),
            text(&info.driver),
            limits.max_storage_buffer_binding_size,
            limits.max_storage_buffers_per_shader_stage,
            limits.max_compute_invocations_per_workgroup,
            limits.max_compute_workgroups_per_dimension,
        )
    }

    /// Every loss on `logits` (`rows` x `classes`, row-major) with class `labels` (one a row),
    /// on the GPU and in float64, with its gradient: a JSON array of reports (see
    /// [`report`]). Bad input is an error naming what is wrong.
    pub fn losses(
        &self,
        logits: Vec<f32>,
        rows: usize,
        classes: usize,
        labels: Vec<i32>,
    ) -> js_sys::Promise {
        let ctx = self.ctx.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            let reports = every_loss(&ctx, &logits, [rows, classes], &labels)
                .await
                .map_err(to_js)?;
            Ok(JsValue::from_str(&array(reports.iter().map(report))))
        })
    }

    /// The conformance suite of `xent check` on this adapter, case after case: `progress` is
    /// called as `progress(index, total, case, report)` before each case (report `null`) and
    /// after it (report as JSON text). Resolves to the JSON array of every report.
    pub fn check(&self, progress: js_sys::Function) -> js_sys::Promise {
        let ctx = self.ctx.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            let mut tell = |index: usize, total: usize, case: &str, done: Option<&CaseReport>| {
                let done = done.map_or(JsValue::NULL, |r| JsValue::from_str(&report(r)));
                let args = js_sys::Array::of4(
                    &JsValue::from(index as u32),
                    &JsValue::from(total as u32),
                    &JsValue::from_str(case),
                    &done,
                );
                // A failing progress callback is the page's own error: it must not stop the
                // suite, so it is logged and the suite goes on.
                if let Err(e) = progress.apply(&JsValue::NULL, &args) {
                    console_error(&e);
                }
            };
            let reports = conformance::run_async(&ctx, &mut tell).await;
            Ok(JsValue::from_str(&array(reports.iter().map(report))))
        })
    }
}

#[wasm_bindgen]
extern "C" {
    /// `console.error`, for what the page's own callbacks throw.
    #[wasm_bindgen(js_namespace = console, js_name = error)]
    fn console_error(value: &JsValue);
}

fn to_js(e: xent::Error) -> JsValue {
    JsError::new(&e.to_string()).into()
}

/// Every loss of xent on one batch of logits, each judged against its float64 reference.
async fn every_loss(
    ctx: &Context,
    logits: &[f32],
    [rows, classes]: [usize; 2],
    labels: &[i32],
) -> xent::Result<Vec<CaseReport>> {
    let shape = [rows, classes];
    let input = || Input::new(logits, shape).with_grad();
    let labels = labels.to_vec();
    // One-hot targets of the labels (per element, for the binary losses), and the same
    // smoothed into probabilities (for cross-entropy with probability targets).
    let mut one_hot = vec![0.0f32; logits.len()];
    for (row, &label) in labels.iter().enumerate() {
        if let Some(v) = usize::try_from(label)
            .ok()
            .filter(|&l| l < classes)
            .and_then(|l| one_hot.get_mut(row * classes + l))
        {
            *v = 1.0;
        }
    }
    let smooth = 0.1 / classes as f32;
    let probabilities: Vec<f32> = one_hot.iter().map(|v| 0.9 * v + smooth).collect();
    let sigmoid: Vec<f32> = logits.iter().map(|x| 1.0 / (1.0 + (-x).exp())).collect();
    let log_probs: Vec<f32> =
        reference::compute(&LogSoftmax, Input::new(logits, shape), Targets::None)?
            .loss
            .values()
            .iter()
            .map(|&v| v as f32)
            .collect();

    let mut out = Vec::new();
    let smoothing = CrossEntropy {
        label_smoothing: 0.1,
        ..Default::default()
    };
    out.push(both(ctx, "log_softmax", &LogSoftmax, input, Targets::None).await?);
    out.push(
        both(
            ctx,
            "cross_entropy (class indices, mean)",
            &CrossEntropy::default(),
            input,
            &labels[..],
        )
        .await?,
    );
    out.push(
        both(
            ctx,
            "cross_entropy (label_smoothing 0.1)",
            &smoothing,
            input,
            &labels[..],
        )
        .await?,
    );
    out.push(
        both(
            ctx,
            "cross_entropy (probabilities)",
            &CrossEntropy::default(),
            input,
            &probabilities[..],
        )
        .await?,
    );
    let nll_input = || Input::new(&log_probs, shape).with_grad();
    out.push(
        both(
            ctx,
            "nll_loss (of log_softmax)",
            &NllLoss::default(),
            nll_input,
            &labels[..],
        )
        .await?,
    );
    let bce_input = || Input::new(&sigmoid, shape).with_grad();
    out.push(
        both(
            ctx,
            "binary_cross_entropy (of sigmoid, one-hot)",
            &BinaryCrossEntropy::default(),
            bce_input,
            &one_hot[..],
        )
        .await?,
    );
    out.push(
        both(
            ctx,
            "binary_cross_entropy_with_logits (one-hot)",
            &BinaryCrossEntropyWithLogits::default(),
            input,
            &one_hot[..],
        )
        .await?,
    );
    let focal = SigmoidFocalLoss {
        reduction: Reduction::Mean,
        ..Default::default()
    };
    out.push(
        both(
            ctx,
            "sigmoid_focal_loss (one-hot, mean)",
            &focal,
            input,
            &one_hot[..],
        )
        .await?,
    );
    Ok(out)
}

/// `loss` on the GPU and in float64, judged as the conformance suite judges.
async fn both<'a>(
    ctx: &Context,
    name: &str,
    loss: &impl conformance::HostLoss,
    input: impl Fn() -> Input<'a>,
    targets: impl Into<Targets<'a>>,
) -> xent::Result<CaseReport> {
    let (gpu, cpu) = conformance::both(ctx, loss, input, targets).await?;
    let mut report = conformance::judge(name, &gpu, &cpu);
    report.case = format!("{name}: {}", shown(&gpu.loss, &cpu.loss));
    Ok(report)
}

/// The loss as shown on the page: the reduced value on the GPU and in float64, or the first
/// of the unreduced values.
fn shown(gpu: &Loss, cpu: &Loss<f64>) -> String {
    match (gpu.values().first(), cpu.values().first(), gpu.scalar()) {
        (Some(g), Some(c), Some(_)) => format!("{g:.7} (float64 {c:.7})"),
        (Some(g), Some(c), None) => {
            format!("[{g:.7}, ...] (float64 [{c:.7}, ...])")
        }
        _ => "no values".to_string(),
    }
}

/// One report as a JSON object: case, passed, loss_error, grad_error, detail.
pub fn report(r: &CaseReport) -> String {
    format!(
        "{{\"case\":{},\"passed\":{},\"loss_error\":{},\"grad_error\":{},\"detail\":{}}}",
        text(&r.case),
        r.passed,
        number(r.loss_error),
        number(r.grad_error),
        r.detail.as_deref().map_or("null".to_string(), text),
    )
}

/// A JSON array of already-encoded values.
fn array(items: impl Iterator<Item = String>) -> String {
    format!("[{}]", items.collect::<Vec<_>>().join(","))
}

/// A JSON number; JSON has no NaN or infinity, so those are the strings "NaN", "inf", "-inf".
fn number(v: f64) -> String {
    if v.is_finite() {
        format!("{v:e}")
    } else if v.is_nan() {
        "\"NaN\"".to_string()
    } else if v > 0.0 {
        "\"inf\"".to_string()
    } else {
        "\"-inf\"".to_string()
    }
}

/// A JSON string.
fn text(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
