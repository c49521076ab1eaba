//! The `xent` command, run as a built binary: info, check, bench, eval on .npy files (compared
//! with the float64 reference), and the bad-input cases.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

// The library's test helpers: contexts on every adapter, seeded inputs, tolerances.
#[allow(dead_code, unused_imports)]
#[path = "../../xent/tests/all/common.rs"]
mod common;

#[allow(unused_imports)]
use crate::common::api::*;
use crate::common::{assert_close, assert_grad_close, contexts, Rng};
use xent::{reference, wgpu, BinaryCrossEntropyWithLogits, CrossEntropy, Reduction};
use xent_cli::npy::{self, Array, Data};

fn xent(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xent"))
        .args(args)
        .output()
        .expect("the xent binary runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A refused run: exit 1, one line on stderr naming each of `names`, and no file at `fresh`.
fn assert_refused(o: &Output, names: &[&str], fresh: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    for name in names {
        assert!(err.contains(name), "{name} not in {err}");
    }
    assert!(!Path::new(fresh).exists(), "{fresh} written");
}

/// A fresh scratch folder under the target directory.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn save(dir: &Path, name: &str, array: &Array) -> String {
    let path = dir.join(name);
    std::fs::write(&path, npy::to_bytes(array)).unwrap();
    path.to_string_lossy().into_owned()
}

fn load_f32(path: &str) -> (Vec<usize>, Vec<f32>) {
    let a = npy::parse(&std::fs::read(path).unwrap()).unwrap();
    match a.data {
        Data::F32(v) => (a.shape, v),
        other => panic!("{path}: {other:?}"),
    }
}

#[test]
fn info_lists_adapters_as_text_and_json() {
    let text = xent(&["info"]);
    assert!(text.status.success(), "{}", stderr(&text));
    let name = &contexts()[0].adapter_info().name;
    assert!(stdout(&text).contains(name.as_str()));
    let json = xent(&["info", "--json"]);
    assert!(json.status.success());
    let parsed: serde_json::Value = serde_json::from_str(&stdout(&json)).expect("valid JSON");
    let adapters = parsed.as_array().expect("an array of adapters");
    assert!(
        adapters[0]["max_storage_buffer_binding_size"]
            .as_f64()
            .unwrap_or(0.0)
            > 0.0
    );
    assert_eq!(adapters[0]["name"].as_str(), Some(name.as_str()));
    // Each adapter carries the index `--adapter` takes; the first is the default.
    for (i, adapter) in adapters.iter().enumerate() {
        assert_eq!(adapter["index"].as_f64(), Some(i as f64));
        assert_eq!(adapter["default"].as_bool(), Some(i == 0));
    }
}

/// `--adapter` takes a backend, an index from `xent info` or a unique part of a name; a name
/// that fits several adapters (lavapipe's Vulkan and GL adapters share theirs) is an error
/// listing them with their backends.
#[test]
fn the_adapter_is_chosen_by_backend_index_or_unique_name() {
    let infos: Vec<wgpu::AdapterInfo> = xent::adapters().iter().map(|a| a.get_info()).collect();
    for (i, info) in infos.iter().enumerate() {
        let backend = format!("{:?}", info.backend).to_lowercase();
        let index = i.to_string();
        let shared_name = infos.iter().filter(|a| a.name == info.name).count() > 1;
        for spec in [backend.as_str(), index.as_str(), info.name.as_str()] {
            let o = xent(&["check", "--adapter", spec]);
            let header = format!("{} ({:?})", info.name, info.backend);
            if spec == info.name && shared_name {
                let err = stderr(&o);
                assert_eq!(o.status.code(), Some(1), "{spec}: {err}");
                assert!(err.contains("choose one by index or backend"), "{err}");
                assert!(err.contains(&format!("{i}: {header}")), "{err}");
                continue;
            }
            // A backend with several adapters runs them all; the one at hand is among them.
            assert!(o.status.success(), "--adapter {spec}: {}", stderr(&o));
            assert!(
                stdout(&o).contains(&header),
                "--adapter {spec} did not run on {header}: {}",
                stdout(&o)
            );
        }
    }
}

#[test]
fn check_passes_and_writes_its_report() {
    let dir = scratch("check");
    let report = dir.join("report.json");
    let o = xent(&["check", "--json", report.to_str().unwrap()]);
    assert!(o.status.success(), "{}\n{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("cases pass on"), "{out}");
    assert!(
        out.contains("rows merged"),
        "says how rows are merged: {out}"
    );
    assert!(!out.contains("FAIL"));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(report).unwrap()).expect("valid JSON");
    for adapter in json.as_array().expect("one entry per adapter") {
        let size = &adapter["subgroup_size"];
        assert!(
            size.is_null() || size.as_u64().is_some_and(|s| s > 0),
            "{size}"
        );
        let cases = adapter["cases"].as_array().expect("cases");
        assert!(cases.len() >= 20);
        assert!(cases
            .iter()
            .all(|c| c["passed"] == serde_json::Value::Bool(true)));
    }
    // Piped, progress is one line per finished case and adapter.
    let adapters = json.as_array().unwrap();
    let steps = stderr(&o).lines().filter(|l| l.contains(": pass ")).count();
    let cases: usize = adapters
        .iter()
        .map(|a| a["cases"].as_array().unwrap().len())
        .sum();
    assert_eq!(steps, cases, "{}", stderr(&o));
}

#[test]
fn bench_quick_writes_json_records_and_a_plot() {
    let dir = scratch("bench");
    let (json, svg) = (dir.join("b.json"), dir.join("b.svg"));
    let o = xent(&[
        "bench",
        "--preset",
        "quick",
        "--samples",
        "3",
        "--json",
        json.to_str().unwrap(),
        "--plot",
        svg.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = std::fs::read_to_string(json).unwrap();
    let parsed: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    let records = parsed.as_array().expect("an array of records");
    assert_eq!(
        records.len(),
        18,
        "one record per kernel and shape:\n{text}"
    );
    for record in records {
        for field in ["adapter", "backend", "kernel", "shape", "dtype"] {
            assert!(record[field].is_string(), "{field} in {record}");
        }
        for field in [
            "bytes",
            "median_s",
            "gbps",
            "ceiling_gbps",
            "ratio",
            "owned_bytes",
        ] {
            let v = record[field].as_f64().unwrap_or(-1.0);
            assert!(v > 0.0 && v.is_finite(), "{field} in {record}");
        }
        // GFLOP/s for linear cross-entropy only, fused and composed.
        let linear = record["kernel"].as_str().unwrap().starts_with("linear_ce");
        let gflops = record["gflops"].as_f64();
        assert_eq!(
            linear,
            gflops.is_some_and(|g| g > 0.0),
            "gflops in {record}"
        );
    }
    // The composed loss holds all the logits (the quick shape's fit one fused block too).
    let owned = |kernel: &str| {
        records
            .iter()
            .find(|r| r["kernel"] == kernel)
            .and_then(|r| r["owned_bytes"].as_f64())
            .unwrap()
    };
    assert!(owned("linear_ce_composed_fwd_grad") >= (64 * 8192 * 4) as f64);
    // The ceiling is the best of samples taken between the kernels', so a ratio above 1 is
    // either absent or explained in the output.
    let out = stdout(&o);
    for record in records {
        let name = format!(
            "{}/{}",
            record["kernel"].as_str().unwrap(),
            record["shape"].as_str().unwrap()
        );
        assert!(
            record["ratio"].as_f64().unwrap() <= 1.0
                || out.contains(&format!("note: {name} beats the ceiling")),
            "{record} has no note in:\n{out}"
        );
    }
    // Piped, progress is one line per finished step: the ceiling, then each case.
    let progress = stderr(&o);
    let steps: Vec<&str> = progress.lines().filter(|l| l.starts_with('[')).collect();
    assert_eq!(steps.len(), records.len() + 1, "{progress}");
    assert!(steps.iter().all(|l| l.chars().count() <= 80), "{steps:?}");
    let plot = std::fs::read_to_string(svg).unwrap();
    assert!(plot.starts_with("<svg") && plot.matches("<rect").count() == records.len() + 1);
    let adapter = records[0]["adapter"].as_str().unwrap();
    for text in [adapter, "preset quick", " ms, ", " GB/s ", ">0.2</text>"] {
        assert!(plot.contains(text), "{text} missing from the plot:\n{plot}");
    }
    assert!(xent(&["bench", "--preset", "huge"]).status.code() == Some(1));
}

#[test]
fn eval_ce_matches_the_reference_for_every_target_kind() {
    let dir = scratch("eval_ce");
    let mut rng = Rng::new(41);
    let (n, c) = (40, 13);
    let logits = rng.vec(n * c, -6.0, 6.0);
    let labels: Vec<i64> = (0..n)
        .map(|i| {
            if i % 5 == 0 {
                -100
            } else {
                rng.below(c) as i64
            }
        })
        .collect();
    let probs = rng.distributions(n, c);
    let weight = rng.vec(c, 0.5, 2.0);
    let l = save(&dir, "logits.npy", &Array::f32(vec![n, c], logits.clone()));
    let w = save(&dir, "weight.npy", &Array::f32(vec![c], weight.clone()));
    let t64 = save(
        &dir,
        "t64.npy",
        &Array {
            shape: vec![n],
            data: Data::I64(labels.clone()),
        },
    );
    let t32 = save(
        &dir,
        "t32.npy",
        &Array {
            shape: vec![n],
            data: Data::I32(labels.iter().map(|&v| v as i32).collect()),
        },
    );
    let tp = save(&dir, "tp.npy", &Array::f32(vec![n, c], probs.clone()));
    let loss = dir.join("loss.npy").to_string_lossy().into_owned();
    let grad = dir.join("grad.npy").to_string_lossy().into_owned();
    let ctx = &contexts()[0];
    // Each reduction once plain and once with a softcap and a z-loss (--softcap 2
    // --z-loss 0.01).
    for (reduction, name, softcap) in [
        (Reduction::Mean, "mean", None),
        (Reduction::Sum, "sum", None),
        (Reduction::None, "none", None),
        (Reduction::Mean, "mean", Some("2")),
        (Reduction::None, "none", Some("2")),
    ] {
        let options = CrossEntropy {
            weight: Some(weight.clone()),
            ignore_index: -100,
            label_smoothing: 0.1,
            reduction,
            softcap: softcap.map(|s| s.parse().unwrap()),
            z_loss: if softcap.is_some() { 0.01 } else { 0.0 },
            return_lse: false,
        };
        for target in [&t64, &t32, &tp] {
            let mut args = vec![
                "eval",
                "ce",
                "--logits",
                &l,
                "--target",
                target,
                "--weight",
                &w,
                "--label-smoothing",
                "0.1",
                "--reduction",
                name,
                "--loss-out",
                &loss,
                "--grad-out",
                &grad,
            ];
            args.extend(
                softcap
                    .iter()
                    .flat_map(|s| ["--softcap", s, "--z-loss", "0.01"]),
            );
            let o = xent(&args);
            assert!(o.status.success(), "{}", stderr(&o));
            let want = if target == &tp {
                reference::compute(&options, grad_input(&logits, nc(&logits, c), None), &probs)
            } else {
                reference::compute(&options, grad_input(&logits, nc(&logits, c), None), &labels)
            }
            .unwrap();
            let (loss_shape, loss_values) = load_f32(&loss);
            let expected_shape: Vec<usize> = if reduction == Reduction::None {
                vec![n]
            } else {
                vec![]
            };
            assert_eq!(loss_shape, expected_shape);
            assert_close(
                ctx,
                &format!("eval ce {name} {target}"),
                &loss_values,
                want.loss.values(),
            );
            let (grad_shape, grad_values) = load_f32(&grad);
            assert_eq!(grad_shape, vec![n, c]);
            assert_grad_close(
                ctx,
                &format!("eval ce {name} {target}"),
                &grad_values,
                want.grad.as_deref().unwrap(),
            );
        }
    }
}

#[test]
fn eval_bce_matches_the_reference() {
    let dir = scratch("eval_bce");
    let mut rng = Rng::new(42);
    let shape = vec![6, 5, 4];
    let len = 120;
    let x = rng.vec(len, -8.0, 8.0);
    let p = rng.vec(len, 0.01, 0.99);
    let t = rng.vec(len, 0.0, 1.0);
    let pw = rng.vec(4, 0.5, 3.0);
    let xs = save(&dir, "x.npy", &Array::f32(shape.clone(), x.clone()));
    let ps = save(&dir, "p.npy", &Array::f32(shape.clone(), p.clone()));
    let ts = save(&dir, "t.npy", &Array::f32(shape.clone(), t.clone()));
    let pws = save(&dir, "pw.npy", &Array::f32(vec![4], pw.clone()));
    // A weight of shape (6, 1, 4) broadcasts over the middle dimension, as in PyTorch.
    let w = rng.vec(24, 0.5, 2.0);
    let ws = save(&dir, "w.npy", &Array::f32(vec![6, 1, 4], w.clone()));
    let w_full: Vec<f32> = (0..len).map(|i| w[(i / 20) * 4 + i % 4]).collect();
    let loss = dir.join("loss.npy").to_string_lossy().into_owned();
    let grad = dir.join("grad.npy").to_string_lossy().into_owned();
    let ctx = &contexts()[0];
    let o = xent(&[
        "eval",
        "bce",
        "--input",
        &xs,
        "--target",
        &ts,
        "--logits",
        "--pos-weight",
        &pws,
        "--weight",
        &ws,
        "--reduction",
        "none",
        "--loss-out",
        &loss,
        "--grad-out",
        &grad,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let options = BinaryCrossEntropyWithLogits {
        weight: Some(w_full),
        pos_weight: Some(pw),
        reduction: Reduction::None,
    };
    let want =
        reference::compute(&options, grad_input(&x, bce_shape(&x, &options), None), &t).unwrap();
    let (loss_shape, loss_values) = load_f32(&loss);
    assert_eq!(loss_shape, shape);
    assert_close(
        ctx,
        "eval bce --logits none",
        &loss_values,
        want.loss.values(),
    );
    let (_, grad_values) = load_f32(&grad);
    assert_grad_close(
        ctx,
        "eval bce --logits none",
        &grad_values,
        want.grad.as_deref().unwrap(),
    );

    let o = xent(&[
        "eval",
        "bce",
        "--input",
        &ps,
        "--target",
        &ts,
        "--loss-out",
        &loss,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let want = reference::compute(
        &xent::BinaryCrossEntropy::default(),
        Input::new(&p, flat(&p)),
        &t,
    )
    .map(|o| o.loss)
    .unwrap();
    let (loss_shape, loss_values) = load_f32(&loss);
    assert!(loss_shape.is_empty());
    assert_close(ctx, "eval bce mean", &loss_values, want.values());
}

#[test]
fn eval_rejects_bad_input_with_one_line_and_no_output() {
    let dir = scratch("eval_bad");
    let logits = save(&dir, "logits.npy", &Array::f32(vec![2, 3], vec![0.0; 6]));
    let bad_label = save(
        &dir,
        "bad_label.npy",
        &Array {
            shape: vec![2],
            data: Data::I64(vec![0, 3]),
        },
    );
    let wrong_dtype = save(&dir, "wrong_dtype.npy", &Array::f32(vec![2], vec![0.0; 2]));
    let wrong_shape = save(
        &dir,
        "wrong_shape.npy",
        &Array {
            shape: vec![3],
            data: Data::I64(vec![0; 3]),
        },
    );
    // A scalar has no class dimension ((C,), (N, C) and (N, C, d...) have one).
    let flat = save(&dir, "flat.npy", &Array::f32(vec![], vec![0.0]));
    let p_out_of_range = save(&dir, "p.npy", &Array::f32(vec![2], vec![0.5, 1.5]));
    let t2 = save(&dir, "t2.npy", &Array::f32(vec![2], vec![0.5, 0.5]));
    let t_out_of_range = save(&dir, "t_bad.npy", &Array::f32(vec![2], vec![0.5, 2.0]));
    // BCE with logits takes any finite target (as PyTorch), not an infinite one.
    let t_infinite = save(
        &dir,
        "t_inf.npy",
        &Array::f32(vec![2], vec![0.5, f32::INFINITY]),
    );
    let truncated = dir.join("truncated.npy");
    let mut bytes = npy::to_bytes(&Array::f32(vec![2, 3], vec![0.0; 6]));
    bytes.truncate(bytes.len() - 3);
    std::fs::write(&truncated, bytes).unwrap();
    let truncated = truncated.to_string_lossy().into_owned();
    let missing = dir.join("missing.npy").to_string_lossy().into_owned();
    let loss = dir.join("loss.npy");
    let loss_s = loss.to_string_lossy().into_owned();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["ce", "--logits", &logits, "--target", &bad_label],
            "bad_label.npy",
        ),
        (
            vec!["ce", "--logits", &logits, "--target", &wrong_dtype],
            "wrong_dtype.npy",
        ),
        (
            vec!["ce", "--logits", &logits, "--target", &wrong_shape],
            "wrong_shape.npy",
        ),
        (
            vec!["ce", "--logits", &flat, "--target", &bad_label],
            "flat.npy",
        ),
        (
            vec!["ce", "--logits", &truncated, "--target", &bad_label],
            "truncated.npy",
        ),
        (
            vec!["ce", "--logits", &missing, "--target", &bad_label],
            "missing.npy",
        ),
        (
            vec!["bce", "--input", &p_out_of_range, "--target", &t2],
            "p.npy",
        ),
        (
            vec!["bce", "--input", &t2, "--target", &logits],
            "logits.npy",
        ),
        (
            vec!["bce", "--input", &t2, "--target", &t_out_of_range],
            "t_bad.npy",
        ),
        (
            vec!["bce", "--logits", "--input", &t2, "--target", &t_infinite],
            "t_inf.npy",
        ),
    ];
    for (args, file) in cases {
        let mut full = vec!["eval"];
        full.extend(args.iter().copied());
        full.extend(["--loss-out", &loss_s]);
        let o = xent(&full);
        let err = stderr(&o);
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(o.status.code(), Some(1), "{full:?}: {err}");
        assert_eq!(lines.len(), 1, "{full:?}: one line, got {err}");
        assert!(
            lines[0].contains(file),
            "{full:?}: the message names {file}: {err}"
        );
        assert!(!loss.exists(), "{full:?} wrote an output file");
    }
}

/// The files `eval` fuzzing draws from: good, wrongly shaped or typed, empty, corrupt,
/// truncated, missing, a folder, and a header declaring a huge shape.
fn fuzz_files(dir: &Path) -> Vec<String> {
    let i64s = |shape: Vec<usize>, v: Vec<i64>| Array {
        shape,
        data: Data::I64(v),
    };
    let mut files = vec![
        save(dir, "logits.npy", &Array::f32(vec![4, 3], vec![0.25; 12])),
        save(dir, "labels.npy", &i64s(vec![4], vec![0, 1, 2, -100])),
        save(
            dir,
            "labels_i32_bad.npy",
            &Array {
                shape: vec![4],
                data: Data::I32(vec![0, 7, -5, 1]),
            },
        ),
        save(dir, "probs.npy", &Array::f32(vec![4, 3], vec![0.5; 12])),
        save(
            dir,
            "weight3.npy",
            &Array::f32(vec![3], vec![1.0, 0.0, 2.0]),
        ),
        save(dir, "flat.npy", &Array::f32(vec![12], vec![0.5; 12])),
        save(dir, "empty_rows.npy", &Array::f32(vec![0, 3], vec![])),
        save(dir, "empty.npy", &i64s(vec![0], vec![])),
        save(dir, "scalar.npy", &Array::f32(vec![], vec![0.5])),
        save(dir, "nan.npy", &Array::f32(vec![4, 3], vec![f32::NAN; 12])),
    ];
    let mut corrupt = npy::to_bytes(&Array::f32(vec![4, 3], vec![0.25; 12]));
    corrupt[20] = b'#';
    let mut truncated = corrupt.clone();
    truncated.truncate(70);
    let huge_header =
        "{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904, 4), }\n";
    let mut huge = b"\x93NUMPY\x01\x00".to_vec();
    huge.extend_from_slice(&(huge_header.len() as u16).to_le_bytes());
    huge.extend_from_slice(huge_header.as_bytes());
    for (name, bytes) in [
        ("corrupt.npy", corrupt),
        ("truncated.npy", truncated),
        ("zero_bytes.npy", Vec::new()),
        ("huge.npy", huge),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        files.push(path.to_string_lossy().into_owned());
    }
    files.push(dir.join("missing.npy").to_string_lossy().into_owned());
    files.push(dir.to_string_lossy().into_owned());
    files
}

/// `eval` with arguments drawn from flags, files and values (valid and not) never panics or
/// leaves output behind on an error, and reports its own errors in one line.
#[test]
fn eval_fuzzed_arguments_give_errors_not_panics() {
    use proptest::prelude::*;
    use proptest::test_runner::TestRunner;

    let dir = scratch("eval_fuzz");
    let files = fuzz_files(&dir);
    let loss = dir.join("out_loss.npy");
    let grad = dir.join("out_grad.npy");
    let outs = vec![
        loss.to_string_lossy().into_owned(),
        grad.to_string_lossy().into_owned(),
        dir.join("no_such_dir/x.npy").to_string_lossy().into_owned(),
        dir.to_string_lossy().into_owned(),
    ];
    let values: Vec<String> = [
        "0",
        "-100",
        "2",
        "0.5",
        "1.5",
        "-0.1",
        "nan",
        "inf",
        "1e400",
        "9223372036854775808",
        "abc",
        "",
        "-",
        "mean",
        "sum",
        "none",
        "MEAN",
        "llvmpipe",
        "no-such-gpu",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let file_flags = [
        "--logits",
        "--target",
        "--weight",
        "--input",
        "--pos-weight",
    ];
    let value_flags = [
        "--ignore-index",
        "--label-smoothing",
        "--reduction",
        "--adapter",
    ];
    let arg = prop_oneof![
        4 => (proptest::sample::select(file_flags.to_vec()), proptest::sample::select(files.clone()))
            .prop_map(|(f, v)| vec![f.to_string(), v]),
        2 => (proptest::sample::select(value_flags.to_vec()), proptest::sample::select(values.clone()))
            .prop_map(|(f, v)| vec![f.to_string(), v]),
        2 => (proptest::sample::select(vec!["--loss-out", "--grad-out"]), proptest::sample::select(outs.clone()))
            .prop_map(|(f, v)| vec![f.to_string(), v]),
        1 => proptest::sample::select(vec!["--logits", "--bogus", "--reduction", "-h"])
            .prop_map(|f| vec![f.to_string()]),
    ];
    // The required flags (most of the time), with drawn values, then drawn extras.
    let required = (
        proptest::sample::select(files.clone()),
        proptest::sample::select(files.clone()),
        proptest::sample::select(outs.clone()),
        proptest::bool::weighted(0.9),
    );
    let argv = (
        proptest::sample::select(vec!["ce", "ce", "bce", "bce", "mse"]),
        required,
        proptest::collection::vec(arg, 0..3),
    )
        .prop_map(|(sub, (input, target, out, with_required), extra)| {
            let mut args = Vec::new();
            if with_required {
                let input_flag = if sub == "bce" { "--input" } else { "--logits" };
                args.push(vec![input_flag.to_string(), input]);
                args.push(vec!["--target".to_string(), target]);
                args.push(vec!["--loss-out".to_string(), out]);
            }
            args.extend(extra);
            (sub, args)
        });
    let exits = std::sync::Mutex::new(std::collections::BTreeMap::<Option<i32>, usize>::new());
    let mut runner = TestRunner::new(crate::common::proptest_config("XENT_FUZZ_CASES", 60));
    runner
        .run(&argv, |(sub, args)| {
            let _ = std::fs::remove_file(&loss);
            let _ = std::fs::remove_file(&grad);
            let mut full = vec!["eval".to_string(), sub.to_string()];
            full.extend(args.into_iter().flatten());
            let o = Command::new(env!("CARGO_BIN_EXE_xent"))
                .args(&full)
                .output()
                .expect("the xent binary runs");
            let err = stderr(&o);
            let lines: Vec<&str> = err.lines().collect();
            let code = o.status.code();
            *exits.lock().unwrap().entry(code).or_default() += 1;
            prop_assert!(
                matches!(code, Some(0..=2)),
                "{full:?}: exit {code:?} (a panic or a signal): {err}"
            );
            prop_assert!(!err.contains("panicked"), "{full:?}: {err}");
            if code == Some(0) && full.iter().any(|a| a == "-h") {
                prop_assert!(stdout(&o).contains("Usage"), "{full:?}: no help");
            } else if code == Some(0) {
                let at = full
                    .iter()
                    .rposition(|a| a == "--loss-out")
                    .map_or(0, |i| i + 1);
                let written = std::fs::read(&full[at]);
                prop_assert!(
                    written.is_ok_and(|b| npy::parse(&b).is_ok()),
                    "{full:?} succeeded without a readable loss file"
                );
            } else {
                prop_assert!(
                    !loss.exists() && !grad.exists(),
                    "{full:?} left output: {err}"
                );
                // clap's usage errors (exit 2) carry usage lines; xent's own are one line.
                if code == Some(1) {
                    prop_assert_eq!(lines.len(), 1, "{:?}: {}", full, err);
                }
            }
            Ok(())
        })
        .unwrap();
    eprintln!(
        "eval fuzzing: runs by exit code {:?}",
        exits.lock().unwrap()
    );
}

/// The names of the files in `dir`, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn eval_never_removes_or_half_writes_a_file_it_did_not_create() {
    let dir = scratch("eval_files");
    let logits = save(&dir, "l.npy", &Array::f32(vec![4, 3], vec![0.5; 12]));
    let labels = Array {
        shape: vec![4],
        data: Data::I64(vec![0, 1, 2, 0]),
    };
    let targets = save(&dir, "t.npy", &labels);
    let older = save(&dir, "older.npy", &Array::f32(vec![1], vec![7.0]));
    let files = listing(&dir);
    let contents = |path: &str| std::fs::read(path).unwrap();
    let (logits_bytes, older_bytes) = (contents(&logits), contents(&older));
    let no_dir = dir.join("no/g.npy").to_string_lossy().into_owned();
    let shared = dir.join("both.npy").to_string_lossy().into_owned();
    let ce = |loss_out: &str, grad_out: &str| {
        let args = ["eval", "ce", "--logits", &logits, "--target", &targets];
        let outs = ["--loss-out", loss_out, "--grad-out", grad_out];
        xent(&[&args[..], &outs[..]].concat())
    };
    // The loss over an input, or over an older file, with a gradient that cannot be written;
    // and two outputs on one path.
    for (loss_out, grad_out) in [
        (logits.as_str(), no_dir.as_str()),
        (older.as_str(), no_dir.as_str()),
        (shared.as_str(), shared.as_str()),
        (older.as_str(), logits.as_str()),
    ] {
        let out = ce(loss_out, grad_out);
        assert_eq!(out.status.code(), Some(1), "{loss_out} {grad_out}");
        assert_eq!(stderr(&out).trim().lines().count(), 1, "{}", stderr(&out));
        assert_eq!(contents(&logits), logits_bytes, "{loss_out} {grad_out}");
        assert_eq!(contents(&older), older_bytes, "{loss_out} {grad_out}");
        assert_eq!(
            listing(&dir),
            files,
            "{loss_out} {grad_out}: files left behind"
        );
    }
    // A good run replaces the older file whole.
    let grad = dir.join("g.npy").to_string_lossy().into_owned();
    let out = ce(&older, &grad);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(load_f32(&grad).0, vec![4, 3]);
    assert_eq!(load_f32(&older).0, Vec::<usize>::new());
}

#[test]
fn report_paths_are_checked_before_the_run() {
    let dir = scratch("report_paths");
    let missing = dir.join("no/report.json").to_string_lossy().into_owned();
    for args in [
        vec!["check", "--json", missing.as_str()],
        vec!["bench", "--preset", "quick", "--plot", missing.as_str()],
    ] {
        let start = std::time::Instant::now();
        let out = xent(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(stderr(&out).contains("no/report.json"), "{}", stderr(&out));
        // Refused before any case ran: no progress or table on stdout.
        assert!(stdout(&out).is_empty(), "{args:?}: {}", stdout(&out));
        assert!(start.elapsed() < std::time::Duration::from_secs(30));
    }
    assert!(listing(&dir).is_empty());
}

#[test]
fn an_adapter_filter_that_leaves_none_is_named() {
    let out = Command::new(env!("CARGO_BIN_EXE_xent"))
        .args(["check"])
        .env("WGPU_BACKEND", "nonsense")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("WGPU_BACKEND=nonsense"), "{err}");
    assert!(!err.contains("apt-get"), "{err}");
}

/// A successful run prints only xent's own output: nothing on stderr, even on a machine
/// without a display session (where Mesa's Vulkan device-select layer would print
/// `XDG_RUNTIME_DIR` errors into every run).
#[test]
fn a_successful_run_prints_nothing_on_stderr() {
    let dir = scratch("quiet");
    let l = save(
        &dir,
        "logits.npy",
        &Array::f32(vec![2, 3], vec![0.5, -1.0, 2.0, 0.0, 1.0, -0.5]),
    );
    let t = save(
        &dir,
        "targets.npy",
        &Array {
            shape: vec![2],
            data: Data::I64(vec![2, 0]),
        },
    );
    let loss = dir.join("loss.npy").to_string_lossy().into_owned();
    for args in [
        vec!["info"],
        vec![
            "eval",
            "ce",
            "--logits",
            &l,
            "--target",
            &t,
            "--loss-out",
            &loss,
        ],
    ] {
        let o = Command::new(env!("CARGO_BIN_EXE_xent"))
            .args(&args)
            .env_remove("XDG_RUNTIME_DIR")
            .env_remove("NODEVICE_SELECT")
            .env_remove("MESA_VK_DEVICE_SELECT")
            .output()
            .expect("the xent binary runs");
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", stderr(&o));
        assert_eq!(stderr(&o), "", "{args:?} printed on stderr");
    }
}

/// A `.npy` file as NumPy writes it for `descr` (e.g. `<f8`), `shape` and `fortran` order.
fn save_raw(
    dir: &Path,
    name: &str,
    descr: &str,
    shape: &str,
    fortran: bool,
    payload: &[u8],
) -> String {
    let order = if fortran { "True" } else { "False" };
    let header = format!("{{'descr': '{descr}', 'fortran_order': {order}, 'shape': {shape}, }}\n");
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(payload);
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path.to_string_lossy().into_owned()
}

/// Inputs as NumPy saves them by default: float64 logits (here also in Fortran order, as
/// `np.save(x.T)` writes them) and uint8 or int16 labels give the reference's loss and
/// gradient of the values rounded to float32.
#[test]
fn eval_takes_float64_fortran_order_and_any_integer_labels() {
    let dir = scratch("eval_numpy_types");
    let mut rng = Rng::new(91);
    let (n, c) = (6, 4);
    let logits: Vec<f64> = (0..n * c)
        .map(|_| f64::from(rng.vec(1, -5.0, 5.0)[0]) + 1e-9)
        .collect();
    let labels: Vec<u8> = (0..n).map(|_| rng.below(c) as u8).collect();
    let rounded: Vec<f32> = logits.iter().map(|&v| v as f32).collect();
    let want = reference::compute(
        &CrossEntropy::default(),
        grad_input(&rounded, nc(&rounded, c), None),
        &labels.iter().map(|&l| i64::from(l)).collect::<Vec<_>>(),
    )
    .unwrap();
    // Column-major bytes of the (n, c) matrix: element (r, k) at k * n + r.
    let column_major: Vec<u8> = (0..c)
        .flat_map(|k| (0..n).map(move |r| r * c + k))
        .flat_map(|i| logits[i].to_le_bytes())
        .collect();
    let row_major: Vec<u8> = logits.iter().flat_map(|v| v.to_le_bytes()).collect();
    let shape = format!("({n}, {c})");
    let files = [
        save_raw(&dir, "c.npy", "<f8", &shape, false, &row_major),
        save_raw(&dir, "f.npy", "<f8", &shape, true, &column_major),
    ];
    let targets = [
        save_raw(&dir, "u1.npy", "|u1", &format!("({n},)"), false, &labels),
        save_raw(
            &dir,
            "i2.npy",
            "<i2",
            &format!("({n},)"),
            false,
            &labels
                .iter()
                .flat_map(|&l| i16::from(l).to_le_bytes())
                .collect::<Vec<_>>(),
        ),
    ];
    let ctx = &contexts()[0];
    for logits_file in &files {
        for target_file in &targets {
            let loss = dir.join("loss.npy").to_string_lossy().into_owned();
            let grad = dir.join("grad.npy").to_string_lossy().into_owned();
            let o = xent(&[
                "eval",
                "ce",
                "--logits",
                logits_file,
                "--target",
                target_file,
                "--loss-out",
                &loss,
                "--grad-out",
                &grad,
            ]);
            assert!(
                o.status.success(),
                "{logits_file} {target_file}: {}",
                stderr(&o)
            );
            let case = format!("{logits_file} with {target_file}");
            assert_close(ctx, &case, &load_f32(&loss).1, want.loss.values());
            let (shape, g) = load_f32(&grad);
            assert_eq!(shape, vec![n, c]);
            assert_grad_close(ctx, &case, &g, want.grad.as_deref().unwrap());
        }
    }
}

#[test]
fn eval_focal_matches_the_reference_and_checks_its_options() {
    let dir = scratch("eval_focal");
    let mut rng = Rng::new(93);
    let shape = vec![3, 5, 7];
    let x = rng.vec(105, -10.0, 10.0);
    let mut t = rng.vec(105, 0.0, 1.0);
    t[0] = 1.0;
    t[1] = 0.0;
    let xs = save(&dir, "x.npy", &Array::f32(shape.clone(), x.clone()));
    let ts = save(&dir, "t.npy", &Array::f32(shape.clone(), t.clone()));
    let loss = dir.join("loss.npy").to_string_lossy().into_owned();
    let grad = dir.join("grad.npy").to_string_lossy().into_owned();
    let ctx = &contexts()[0];
    let base = [
        "eval",
        "focal",
        "--input",
        &xs,
        "--target",
        &ts,
        "--loss-out",
        &loss,
    ];
    // torchvision's defaults: alpha 0.25, gamma 2, reduction none.
    let cases: [(&[&str], xent::SigmoidFocalLoss); 2] = [
        (&["--grad-out", &grad], xent::SigmoidFocalLoss::default()),
        (
            &[
                "--alpha",
                "-1",
                "--gamma",
                "0.5",
                "--reduction",
                "mean",
                "--grad-out",
                &grad,
            ],
            xent::SigmoidFocalLoss {
                alpha: -1.0,
                gamma: 0.5,
                reduction: Reduction::Mean,
            },
        ),
    ];
    for (extra, options) in cases {
        let args: Vec<&str> = base.iter().chain(extra).copied().collect();
        let o = xent(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        let want = reference::compute(&options, grad_input(&x, shape.clone(), None), &t).unwrap();
        let (loss_shape, loss_values) = load_f32(&loss);
        let want_shape = match options.reduction {
            Reduction::None => shape.clone(),
            _ => vec![],
        };
        assert_eq!(loss_shape, want_shape);
        assert_close(ctx, "eval focal", &loss_values, want.loss.values());
        let (grad_shape, grad_values) = load_f32(&grad);
        assert_eq!(grad_shape, shape);
        assert_grad_close(
            ctx,
            "eval focal",
            &grad_values,
            want.grad.as_deref().unwrap(),
        );
    }
    // A bad option: exit 1, one line naming it, and no output file.
    let fresh = dir.join("fresh.npy").to_string_lossy().into_owned();
    let o = xent(&[
        "eval",
        "focal",
        "--input",
        &xs,
        "--target",
        &ts,
        "--gamma",
        "-1",
        "--loss-out",
        &fresh,
    ]);
    assert_refused(&o, &["gamma"], &fresh);
}

#[test]
fn eval_nll_matches_the_reference_and_names_a_bad_target() {
    let dir = scratch("eval_nll");
    let mut rng = Rng::new(97);
    let (n, c) = (6, 4);
    let logp = rng.vec(n * c, -5.0, 0.0);
    let weight = rng.vec(c, 0.5, 2.0);
    let labels = vec![3i32, 0, -1, 2, 1, 3];
    let ls = save(&dir, "logp.npy", &Array::f32(vec![n, c], logp.clone()));
    let ws = save(&dir, "w.npy", &Array::f32(vec![c], weight.clone()));
    let ts = save(
        &dir,
        "t.npy",
        &Array {
            shape: vec![n],
            data: Data::I32(labels.clone()),
        },
    );
    let loss = dir.join("loss.npy").to_string_lossy().into_owned();
    let grad = dir.join("grad.npy").to_string_lossy().into_owned();
    let o = xent(&[
        "eval",
        "nll",
        "--input",
        &ls,
        "--target",
        &ts,
        "--weight",
        &ws,
        "--ignore-index",
        "-1",
        "--reduction",
        "sum",
        "--loss-out",
        &loss,
        "--grad-out",
        &grad,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let options = xent::NllLoss {
        weight: Some(weight),
        ignore_index: -1,
        reduction: Reduction::Sum,
    };
    let want = reference::compute(&options, grad_input(&logp, [n, c], None), &labels).unwrap();
    let ctx = &contexts()[0];
    let (loss_shape, loss_values) = load_f32(&loss);
    assert!(loss_shape.is_empty());
    assert_close(ctx, "eval nll", &loss_values, want.loss.values());
    let (grad_shape, grad_values) = load_f32(&grad);
    assert_eq!(grad_shape, vec![n, c]);
    assert_grad_close(ctx, "eval nll", &grad_values, want.grad.as_deref().unwrap());
    // A class index outside [0, C): exit 1, one line naming the target file, no output.
    let fresh = dir.join("fresh.npy").to_string_lossy().into_owned();
    let o = xent(&[
        "eval",
        "nll",
        "--input",
        &ls,
        "--target",
        &ts,
        "--loss-out",
        &fresh,
    ]);
    assert_refused(&o, &["t.npy", "-1"], &fresh);
}

/// `xent eval ce` and `eval nll` on K-dimensional (N, C, d1, d2) and unbatched (C,) inputs:
/// losses of the targets' shape, gradients of the logits', as the reference gives them; a
/// target of another shape is one line naming the file and the shapes expected.
#[test]
fn eval_takes_k_dimensional_and_unbatched_inputs() {
    let dir = scratch("eval_kdim");
    let mut rng = Rng::new(175);
    let loss = dir.join("loss.npy").to_string_lossy().into_owned();
    let grad = dir.join("grad.npy").to_string_lossy().into_owned();
    let ctx = &contexts()[0];
    for (shape, positions) in [(vec![2, 5, 3, 4], vec![2, 3, 4]), (vec![5], vec![])] {
        let len: usize = shape.iter().product();
        let count: usize = positions.iter().product();
        let x = rng.vec(len, -4.0, 4.0);
        let labels: Vec<i64> = (0..count)
            .map(|i| {
                if i % 4 == 3 {
                    -100
                } else {
                    rng.below(5) as i64
                }
            })
            .collect();
        let xs = save(&dir, "x.npy", &Array::f32(shape.clone(), x.clone()));
        let ts = save(
            &dir,
            "t.npy",
            &Array {
                shape: positions.clone(),
                data: Data::I64(labels.clone()),
            },
        );
        for loss_kind in ["ce", "nll"] {
            let input_flag = if loss_kind == "ce" {
                "--logits"
            } else {
                "--input"
            };
            let args = [
                "eval",
                loss_kind,
                input_flag,
                &xs,
                "--target",
                &ts,
                "--reduction",
                "none",
                "--loss-out",
                &loss,
                "--grad-out",
                &grad,
            ];
            let o = xent(&args);
            assert!(o.status.success(), "{}", stderr(&o));
            let input = grad_input(&x, shape.clone(), None);
            let none = Reduction::None;
            let want = match loss_kind {
                "ce" => {
                    let options = CrossEntropy {
                        reduction: none,
                        ..Default::default()
                    };
                    reference::compute(&options, input, &labels)
                }
                _ => {
                    let options = xent::NllLoss {
                        reduction: none,
                        ..Default::default()
                    };
                    reference::compute(&options, input, &labels)
                }
            }
            .unwrap();
            let case = format!("eval {loss_kind} {shape:?}");
            let (loss_shape, loss_values) = load_f32(&loss);
            assert_eq!(loss_shape, positions, "{case}");
            assert_close(ctx, &case, &loss_values, want.loss.values());
            let (grad_shape, grad_values) = load_f32(&grad);
            assert_eq!(grad_shape, shape, "{case}");
            assert_grad_close(ctx, &case, &grad_values, want.grad.as_deref().unwrap());
        }
    }
    // Class indices of the logits' shape rather than the positions': one line, no output.
    let xs = save(&dir, "x.npy", &Array::f32(vec![2, 5, 3], vec![0.0; 30]));
    let wrong = save(
        &dir,
        "wrong.npy",
        &Array {
            shape: vec![2, 5, 3],
            data: Data::I64(vec![0; 30]),
        },
    );
    let fresh = dir.join("fresh.npy").to_string_lossy().into_owned();
    let o = xent(&[
        "eval",
        "ce",
        "--logits",
        &xs,
        "--target",
        &wrong,
        "--loss-out",
        &fresh,
    ]);
    assert_refused(&o, &["wrong.npy", "(2, 3)"], &fresh);
}

/// `xent eval ce --lse-out` writes each position's log-sum-exp of the softcapped logits, in
/// the class-index targets' shape ((N, d1, d2), or () unbatched), as the reference gives it;
/// an --lse-out that names another output is refused before anything is written.
#[test]
fn eval_ce_writes_the_log_sum_exp() {
    let mut rng = Rng::new(183);
    let dir = scratch("eval-lse");
    let loss = dir.join("loss.npy").to_string_lossy().into_owned();
    let lse = dir.join("lse.npy").to_string_lossy().into_owned();
    let ctx = &contexts()[0];
    for (shape, positions) in [(vec![2, 5, 3, 4], vec![2, 3, 4]), (vec![5], vec![])] {
        let x = rng.vec(shape.iter().product(), -40.0, 40.0);
        let count: usize = positions.iter().product();
        let labels: Vec<i64> = (0..count).map(|_| rng.below(5) as i64).collect();
        let xs = save(&dir, "x.npy", &Array::f32(shape.clone(), x.clone()));
        let target = Array {
            shape: positions.clone(),
            data: Data::I64(labels.clone()),
        };
        let ts = save(&dir, "t.npy", &target);
        let o = xent(&[
            "eval",
            "ce",
            "--logits",
            &xs,
            "--target",
            &ts,
            "--softcap",
            "30",
            "--loss-out",
            &loss,
            "--lse-out",
            &lse,
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        let options = CrossEntropy {
            softcap: Some(30.0),
            return_lse: true,
            ..Default::default()
        };
        let want = reference::compute(&options, Input::new(&x, shape.clone()), &labels).unwrap();
        let (lse_shape, lse_values) = load_f32(&lse);
        assert_eq!(lse_shape, positions);
        assert_close(
            ctx,
            "eval ce --lse-out",
            &lse_values,
            want.lse.as_deref().unwrap(),
        );
        let fresh = dir.join("fresh.npy").to_string_lossy().into_owned();
        let o = xent(&[
            "eval",
            "ce",
            "--logits",
            &xs,
            "--target",
            &ts,
            "--loss-out",
            &fresh,
            "--lse-out",
            &xs,
        ]);
        assert_refused(&o, &["x.npy"], &fresh);
    }
}

/// `xent eval linear-ce`: the loss and the three gradients of the reference, in their shapes;
/// bad input is one line naming the file, and nothing is written.
#[test]
fn eval_linear_ce_matches_the_reference_and_refuses_bad_input() {
    let dir = scratch("eval_linear_ce");
    let mut rng = Rng::new(1806);
    let (n, d, v) = (13, 6, 150);
    let hidden = rng.vec(n * d, -1.0, 1.0);
    let classifier = rng.vec(v * d, -0.8, 0.8);
    let bias = rng.vec(v, -0.5, 0.5);
    let weight = rng.vec(v, 0.5, 2.0);
    let labels: Vec<i64> = (0..n as i64)
        .map(|i| if i == 4 { 7 } else { (i * 11) % 150 })
        .collect();
    let hs = save(&dir, "h.npy", &Array::f32(vec![n, d], hidden.clone()));
    let ws = save(&dir, "w.npy", &Array::f32(vec![v, d], classifier.clone()));
    let bs = save(&dir, "b.npy", &Array::f32(vec![v], bias.clone()));
    let cws = save(&dir, "cw.npy", &Array::f32(vec![v], weight.clone()));
    let target = Array {
        shape: vec![n],
        data: Data::I64(labels.clone()),
    };
    let ts = save(&dir, "t.npy", &target);
    let out = |name: &str| dir.join(name).to_string_lossy().into_owned();
    let (loss, gh, gw, gb) = (out("l.npy"), out("gh.npy"), out("gw.npy"), out("gb.npy"));
    let o = xent(&[
        "eval",
        "linear-ce",
        "--hidden",
        &hs,
        "--classifier",
        &ws,
        "--target",
        &ts,
        "--bias",
        &bs,
        "--weight",
        &cws,
        "--ignore-index",
        "7",
        "--label-smoothing",
        "0.1",
        "--softcap",
        "20",
        "--z-loss",
        "1e-3",
        "--reduction",
        "none",
        "--block-bytes",
        "2048",
        "--loss-out",
        &loss,
        "--grad-hidden-out",
        &gh,
        "--grad-classifier-out",
        &gw,
        "--grad-bias-out",
        &gb,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let options = xent::LinearCrossEntropy {
        cross_entropy: CrossEntropy {
            weight: Some(weight),
            ignore_index: 7,
            label_smoothing: 0.1,
            softcap: Some(20.0),
            z_loss: 1e-3,
            reduction: Reduction::None,
            return_lse: false,
        },
        block_bytes: 2048,
    };
    let input = xent::LinearInput::new(&hidden, &classifier, [n, d, v])
        .with_bias(&bias)
        .with_grad();
    let want = reference::compute(&options, input, &labels).unwrap();
    let ctx = &contexts()[0];
    let (shape, values) = load_f32(&loss);
    assert_eq!(shape, vec![n]);
    assert_close(ctx, "eval linear-ce loss", &values, want.loss.values());
    let grads = [
        (&gh, vec![n, d], want.grad_hidden),
        (&gw, vec![v, d], want.grad_classifier),
        (&gb, vec![v], want.grad_bias),
    ];
    for (path, shape, want) in grads {
        let (got_shape, got) = load_f32(path);
        assert_eq!(got_shape, shape, "{path}");
        assert_grad_close(ctx, path, &got, want.as_deref().unwrap());
    }
    // A classifier of another width, a label outside [0, V), a bias gradient without a bias:
    // exit 1, one line, nothing written.
    let fresh = out("fresh.npy");
    let narrow = save(
        &dir,
        "narrow.npy",
        &Array::f32(vec![v, d - 1], vec![0.0; v * (d - 1)]),
    );
    let args = |classifier: &str, extra: &[&str]| {
        let mut a = vec![
            "eval",
            "linear-ce",
            "--hidden",
            &hs,
            "--classifier",
            classifier,
            "--target",
            &ts,
            "--loss-out",
            &fresh,
        ]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let run = |a: Vec<String>| xent(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_refused(
        &run(args(&narrow, &[])),
        &["narrow.npy", "(150, 5)"],
        &fresh,
    );
    let mut bad = labels.clone();
    bad[5] = 150;
    let bad = Array {
        shape: vec![n],
        data: Data::I64(bad),
    };
    let bad = save(&dir, "bad.npy", &bad);
    let mut bad_args = args(&ws, &[]);
    bad_args[7] = bad.clone();
    assert_refused(&run(bad_args), &["bad.npy", "150"], &fresh);
    assert_refused(
        &run(args(&ws, &["--grad-bias-out", &gb])),
        &["--bias"],
        &fresh,
    );
    assert_refused(
        &run(args(&ws, &["--ignore-index", "7", "--block-bytes", "0"])),
        &["--block-bytes"],
        &fresh,
    );
}

/// The file type of `path` itself (a symlink is not followed).
fn kind(path: &Path) -> std::fs::FileType {
    std::fs::symlink_metadata(path).unwrap().file_type()
}

/// Outputs that are not regular files are written through and left in place: device nodes
/// made in a test folder (one that reads as zeros and takes any write, like /dev/null; one
/// that is full, like /dev/full: a write error), a FIFO (read by another thread), `-`
/// (standard output), a symlink (its target written, the link kept) and a dangling symlink
/// (its target created).
#[test]
fn eval_writes_through_devices_fifos_symlinks_and_stdout() {
    use std::os::unix::fs::FileTypeExt;
    let dir = scratch("eval_special");
    let logits = save(
        &dir,
        "l.npy",
        &Array::f32(vec![2, 3], vec![0.5, 1.0, -1.0, 2.0, 0.0, 1.0]),
    );
    let labels = Array {
        shape: vec![2],
        data: Data::I64(vec![0, 2]),
    };
    let targets = save(&dir, "t.npy", &labels);
    let ce = |loss_out: &str| {
        let args = ["eval", "ce", "--logits", &logits, "--target", &targets];
        xent(&[&args[..], &["--loss-out", loss_out][..]].concat())
    };
    let want = {
        let reference = ce(&dir.join("plain.npy").to_string_lossy());
        assert!(reference.status.success(), "{}", stderr(&reference));
        std::fs::read(dir.join("plain.npy")).unwrap()
    };
    let node = |name: &str, minor: u32| {
        let path = dir.join(name);
        let made = Command::new("mknod")
            .args([path.to_str().unwrap(), "c", "1", &minor.to_string()])
            .status()
            .expect("mknod runs");
        assert!(made.success(), "mknod {name}");
        path
    };
    // Like /dev/null (1, 3) and /dev/full (1, 7).
    let null = node("null", 3);
    let out = ce(null.to_str().unwrap());
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(kind(&null).is_char_device(), "the null device was replaced");
    let full = node("full", 7);
    let out = ce(full.to_str().unwrap());
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("cannot write"), "{}", stderr(&out));
    assert!(kind(&full).is_char_device(), "the full device was replaced");
    // A FIFO, read while xent writes it.
    let fifo = dir.join("fifo");
    let made = Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo runs");
    assert!(made.success());
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read(fifo).unwrap())
    };
    let out = ce(fifo.to_str().unwrap());
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(reader.join().unwrap(), want, "the FIFO's bytes");
    assert!(kind(&fifo).is_fifo(), "the FIFO was replaced");
    // Standard output.
    let out = ce("-");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(out.stdout, want);
    // A symlink to a file, and a dangling one.
    let target = dir.join("target.npy");
    std::fs::write(&target, b"older").unwrap();
    let link = dir.join("link.npy");
    std::os::unix::fs::symlink("target.npy", &link).unwrap();
    let out = ce(link.to_str().unwrap());
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(kind(&link).is_symlink(), "the symlink was replaced");
    assert_eq!(std::fs::read(&target).unwrap(), want);
    let dangling = dir.join("dangling.npy");
    std::os::unix::fs::symlink("new/../made.npy", &dangling).unwrap();
    std::fs::create_dir(dir.join("new")).unwrap();
    let out = ce(dangling.to_str().unwrap());
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        kind(&dangling).is_symlink(),
        "the dangling symlink was replaced"
    );
    assert_eq!(std::fs::read(dir.join("made.npy")).unwrap(), want);
    // Nothing else was left in the folder.
    let names = listing(&dir);
    assert!(!names.iter().any(|n| n.ends_with(".tmp")), "{names:?}");
}

/// An interrupt (SIGINT, SIGTERM) while outputs are written removes the temporaries: no
/// hidden file is left, and no output is half written.
#[test]
fn an_interrupted_eval_leaves_no_temporary() {
    let dir = scratch("eval_interrupt");
    let (n, c) = (1 << 16, 256);
    let logits = save(&dir, "l.npy", &Array::f32(vec![n, c], vec![0.25; n * c]));
    let labels = Array {
        shape: vec![n],
        data: Data::I64(vec![1; n]),
    };
    let targets = save(&dir, "t.npy", &labels);
    let grad = dir.join("g.npy").to_string_lossy().into_owned();
    let loss = dir.join("loss.npy").to_string_lossy().into_owned();
    for (k, signal) in ["INT", "TERM", "INT", "TERM", "INT", "TERM"]
        .iter()
        .enumerate()
    {
        let _ = std::fs::remove_file(&grad);
        let mut child = Command::new(env!("CARGO_BIN_EXE_xent"))
            .args(["eval", "ce", "--logits", &logits, "--target", &targets])
            .args([
                "--reduction",
                "none",
                "--loss-out",
                &loss,
                "--grad-out",
                &grad,
            ])
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Interrupt while the outputs are written: once a temporary holds data, a little
        // later at each try.
        let start = std::time::Instant::now();
        let writing = || {
            std::fs::read_dir(&dir).unwrap().any(|e| {
                let e = e.unwrap();
                let temp = e.file_name().to_string_lossy().ends_with(".tmp");
                temp && e.metadata().is_ok_and(|m| m.len() > 0)
            })
        };
        while !writing() && start.elapsed() < std::time::Duration::from_secs(60) {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        std::thread::sleep(std::time::Duration::from_millis(5 * k as u64));
        let sent = Command::new("kill")
            .args([&format!("-{signal}"), &child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        let status = child.wait().unwrap();
        let names = listing(&dir);
        assert!(
            !names.iter().any(|n| n.ends_with(".tmp")),
            "SIG{signal} at try {k} ({status}): {names:?}"
        );
        // An output that exists is whole.
        if Path::new(&grad).exists() {
            assert_eq!(load_f32(&grad).0, vec![n, c], "SIG{signal} at try {k}");
        }
    }
}

/// `xent eval bce` and `focal` take integer and bool targets (NumPy's usual label arrays) as
/// the same 0/1 floats; a value beyond float32 in a float64 input is named by its index.
#[test]
fn eval_binary_losses_take_integer_and_bool_targets() {
    let dir = scratch("eval_int_targets");
    let x = [0.5f32, -1.0, 2.0, 0.25, -3.0, 1.5];
    let t = [1u8, 0, 1, 1, 0, 0];
    let input = save(&dir, "x.npy", &Array::f32(vec![2, 3], x.to_vec()));
    let floats: Vec<f32> = t.iter().map(|&v| f32::from(v)).collect();
    let as_f32 = save(&dir, "t32.npy", &Array::f32(vec![2, 3], floats));
    let as_i64: Vec<u8> = t.iter().flat_map(|&v| i64::from(v).to_le_bytes()).collect();
    let as_i64 = save_raw(&dir, "t64.npy", "<i8", "(2, 3)", false, &as_i64);
    let as_bool = save_raw(&dir, "tb.npy", "|b1", "(2, 3)", false, &t);
    for command in [&["bce", "--logits"][..], &["focal"][..]] {
        let run = |target: &str, out: &str| {
            let out = dir.join(out).to_string_lossy().into_owned();
            let args = ["--input", &input, "--target", target, "--loss-out", &out];
            let o = xent(&[&["eval"][..], command, &args[..]].concat());
            assert!(o.status.success(), "{command:?} {target}: {}", stderr(&o));
            load_f32(&out).1
        };
        let want = run(&as_f32, "l32.npy");
        assert_eq!(run(&as_i64, "l64.npy"), want, "{command:?} int64");
        assert_eq!(run(&as_bool, "lb.npy"), want, "{command:?} bool");
    }
    let big: Vec<u8> = [0.5f64, 1e39, 0.0, 0.0, 0.0, 0.0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let big = save_raw(&dir, "big.npy", "<f8", "(2, 3)", false, &big);
    let out = dir.join("never.npy").to_string_lossy().into_owned();
    let o = xent(&[
        "eval",
        "bce",
        "--logits",
        "--input",
        &big,
        "--target",
        &as_f32,
        "--loss-out",
        &out,
    ]);
    assert_refused(&o, &["[0, 1]", "1e39"], &out);
}

/// `--upstream` gives the gradient for a non-unit upstream gradient, as PyTorch's
/// `loss.backward(upstream)`: one value per position for `none`, a 0-d array for `mean` and
/// `sum`, for cross-entropy and the fused linear loss alike; a wrong shape, or no gradient
/// output to scale, is refused in one line naming `--upstream`, with nothing written.
#[test]
fn eval_takes_an_upstream_gradient() {
    let dir = scratch("eval_upstream");
    let mut rng = Rng::new(77);
    let ctx = &contexts()[0];
    let (n, c) = (9, 7);
    let x = rng.vec(n * c, -4.0, 4.0);
    let labels: Vec<i64> = (0..n as i64).map(|i| i * 3 % c as i64).collect();
    let xs = save(&dir, "x.npy", &Array::f32(vec![n, c], x.clone()));
    let targets = Array {
        shape: vec![n],
        data: Data::I64(labels.clone()),
    };
    let ts = save(&dir, "t.npy", &targets);
    let per_row = rng.vec(n, -2.0, 2.0);
    let scalar = vec![-1.75f32];
    let loss = dir.join("loss.npy").to_string_lossy().into_owned();
    let grad = dir.join("grad.npy").to_string_lossy().into_owned();
    for (reduction, shape, u) in [
        (Reduction::None, vec![n], &per_row),
        (Reduction::Mean, vec![], &scalar),
        (Reduction::Sum, vec![], &scalar),
    ] {
        let name = format!("{reduction:?}").to_lowercase();
        let us = save(&dir, "u.npy", &Array::f32(shape, u.clone()));
        let o = xent(&[
            "eval",
            "ce",
            "--logits",
            &xs,
            "--target",
            &ts,
            "--reduction",
            &name,
            "--upstream",
            &us,
            "--loss-out",
            &loss,
            "--grad-out",
            &grad,
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        let options = CrossEntropy {
            reduction,
            ..Default::default()
        };
        let input = grad_input(&x, [n, c], Some(u));
        let want = reference::compute(&options, input, &labels[..]).unwrap();
        let case = format!("eval ce --upstream, {name}");
        assert_close(ctx, &case, &load_f32(&loss).1, want.loss.values());
        let want_grad = want.grad.as_deref().unwrap();
        assert_grad_close(ctx, &case, &load_f32(&grad).1, want_grad);
    }

    // The fused linear loss: hidden (n, 3), classifier (c, 3), a per-token upstream.
    let h = rng.vec(n * 3, -1.0, 1.0);
    let w = rng.vec(c * 3, -1.0, 1.0);
    let hs = save(&dir, "h.npy", &Array::f32(vec![n, 3], h.clone()));
    let ws = save(&dir, "w.npy", &Array::f32(vec![c, 3], w.clone()));
    let us = save(&dir, "u.npy", &Array::f32(vec![n], per_row.clone()));
    let gh = dir.join("gh.npy").to_string_lossy().into_owned();
    let o = xent(&[
        "eval",
        "linear-ce",
        "--hidden",
        &hs,
        "--classifier",
        &ws,
        "--target",
        &ts,
        "--reduction",
        "none",
        "--upstream",
        &us,
        "--loss-out",
        &loss,
        "--grad-hidden-out",
        &gh,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let loss_options = xent::LinearCrossEntropy {
        cross_entropy: CrossEntropy {
            reduction: Reduction::None,
            ..Default::default()
        },
        ..Default::default()
    };
    let input = xent::LinearInput::new(&h, &w, [n, 3, c]).with_upstream(&per_row);
    let want = reference::compute(&loss_options, input, &labels[..]).unwrap();
    let case = "eval linear-ce --upstream, none";
    assert_close(ctx, case, &load_f32(&loss).1, want.loss.values());
    let want_grad = want.grad_hidden.as_deref().unwrap();
    assert_grad_close(ctx, case, &load_f32(&gh).1, want_grad);

    // Refused: a per-row upstream for a mean, and an upstream with no gradient to scale.
    let fresh = dir.join("fresh.npy").to_string_lossy().into_owned();
    let per_row_file = save(&dir, "rows.npy", &Array::f32(vec![n], per_row));
    for args in [
        vec!["--reduction", "mean", "--grad-out", &grad],
        vec!["--reduction", "none"],
    ] {
        let mut all = vec!["eval", "ce", "--logits", &xs, "--target", &ts];
        all.extend(["--upstream", &per_row_file, "--loss-out", &fresh]);
        all.extend(args);
        assert_refused(&xent(&all), &["upstream"], &fresh);
    }
}
