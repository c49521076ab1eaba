// The page: opens xent on the browser's WebGPU adapter, computes every loss on the logits in
// the text box, and runs the conformance suite as a table. With `?auto` in the address it does
// all of it on load and leaves the outcome in `window.xentResult` for a test to read:
// { adapter, losses, cases, passed } or { error }.
import init, { Page } from "./pkg/xent_web.js";
import { parseBatch } from "./parse.js";

const $ = (id) => document.getElementById(id);

function cell(row, text, className) {
  const td = row.insertCell();
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function error(value) {
  return typeof value === "number" ? value.toExponential(1) : String(value);
}

function verdict(row, report) {
  cell(row, error(report.loss_error), "num");
  cell(row, error(report.grad_error), "num");
  const td = cell(row, report.passed ? "pass" : "FAIL", report.passed ? "pass" : "fail");
  if (report.detail) td.title = report.detail;
}

// A seeded generator, so "Generate" gives the same batch each time the page loads.
let seed = 12345;
function unit() {
  seed = (seed * 1103515245 + 12345) % 2147483648;
  return seed / 2147483648;
}

function generate() {
  const rows = 8, classes = 10;
  const lines = [];
  const labels = [];
  for (let r = 0; r < rows; r++) {
    const row = [];
    for (let c = 0; c < classes; c++) row.push((unit() * 8 - 4).toFixed(3));
    lines.push(row.join(" "));
    labels.push(Math.floor(unit() * classes));
  }
  $("logits").value = lines.join("\n");
  $("labels").value = labels.join(", ");
}

async function computeLosses(page) {
  $("loss-error").textContent = "";
  const body = $("losses").tBodies[0];
  body.replaceChildren();
  const batch = parseBatch($("logits").value, $("labels").value);
  const reports = JSON.parse(await page.losses(batch.logits, batch.rows, batch.classes, batch.labels));
  for (const report of reports) {
    const row = body.insertRow();
    cell(row, report.case);
    verdict(row, report);
  }
  return reports;
}

async function runSuite(page) {
  const body = $("cases").tBodies[0];
  body.replaceChildren();
  let failed = 0;
  const reports = JSON.parse(await page.check((index, total, name, done) => {
    if (done === null) {
      const row = body.insertRow();
      cell(row, String(index + 1), "num");
      cell(row, name);
      cell(row, "running", "running");
      $("summary").textContent = `case ${index + 1} of ${total}`;
    } else {
      const report = JSON.parse(done);
      const row = body.rows[index];
      row.deleteCell(2);
      verdict(row, report);
      if (!report.passed) failed += 1;
    }
  }));
  $("summary").textContent = failed === 0
    ? `all ${reports.length} cases pass`
    : `${failed} of ${reports.length} cases FAIL`;
  return reports;
}

// The adapter as the browser names it (wgpu may leave the name empty) and as xent uses it.
async function describeAdapter(page) {
  const xent = JSON.parse(page.adapter());
  let name = xent.name;
  const gpu = await navigator.gpu.requestAdapter({ powerPreference: "high-performance" });
  if (gpu && gpu.info) {
    const i = gpu.info;
    name = [i.vendor, i.architecture, i.device, i.description].filter((s) => s).join(" / ") || name;
  }
  // What the adapter offers, to hold xent's device limits against (WebGPU's defaults are lower).
  const offered = gpu ? {
    max_storage_buffer_binding_size: gpu.limits.maxStorageBufferBindingSize,
    max_storage_buffers_per_shader_stage: gpu.limits.maxStorageBuffersPerShaderStage,
    max_compute_invocations_per_workgroup: gpu.limits.maxComputeInvocationsPerWorkgroup,
  } : null;
  const limits = `storage binding ${xent.max_storage_buffer_binding_size} B, ${xent.max_storage_buffers_per_shader_stage} storage buffers per stage, ${xent.max_compute_invocations_per_workgroup} invocations per workgroup`;
  const merge = xent.subgroup_size === null ? "rows merged in workgroup memory" : `rows merged by subgroups of ${xent.subgroup_size}`;
  $("adapter").textContent = `${name || "(unnamed adapter)"}\n${xent.backend}, ${xent.device_type}; ${merge}\n${limits}`;
  return { ...xent, name, offered };
}

async function main() {
  const auto = new URLSearchParams(location.search).has("auto");
  generate();
  try {
    if (!navigator.gpu) throw new Error("this browser has no WebGPU (navigator.gpu is missing)");
    await init();
    const page = await Page.open();
    const adapter = await describeAdapter(page);
    $("generate").onclick = () => { generate(); };
    $("compute").onclick = () => computeLosses(page).catch((e) => { $("loss-error").textContent = String(e); });
    $("check").onclick = () => { $("check").disabled = true; runSuite(page).finally(() => { $("check").disabled = false; }); };
    if (auto) {
      const losses = await computeLosses(page);
      const cases = await runSuite(page);
      const passed = losses.every((r) => r.passed) && cases.every((r) => r.passed);
      window.xentResult = { adapter, losses, cases, passed };
    }
  } catch (e) {
    $("adapter").textContent = `no xent here: ${e}`;
    $("adapter").className = "error";
    window.xentResult = { error: String(e && e.message ? e.message : e) };
  }
}

main();
