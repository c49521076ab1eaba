//! Fused linear cross-entropy against the float64 reference: tile edges, blocks of tokens and
//! of classes, every option and reduction, ignored tokens, bias or none, the GPU form on
//! sliced tensors, bad labels, repeatability and errors.

use crate::common::{
    assert_linear_matches, contexts, encode, pairwise_options, storage, typed_buffer,
    with_binding_limit, Rng,
};
use xent::{
    reference, Context, CrossEntropy, Error, GpuLinearInput, GpuTargets, GpuTensor, GradMode,
    LinearCrossEntropy, LinearInput, Reduction,
};

/// A problem: hidden (N, D), classifier (V, D), bias (V), labels (N).
struct Problem {
    shape: [usize; 3],
    hidden: Vec<f32>,
    classifier: Vec<f32>,
    bias: Vec<f32>,
    labels: Vec<i64>,
}

impl Problem {
    /// Seeded values of a trained head's size: logits of a few units.
    fn new(rng: &mut Rng, [n, d, v]: [usize; 3], ignore_index: i64) -> Problem {
        let scale = 2.0 / (d as f32).sqrt();
        let labels = (0..n)
            .map(|i| match i % 7 {
                3 => ignore_index,
                _ => rng.below(v) as i64,
            })
            .collect();
        Problem {
            shape: [n, d, v],
            hidden: rng.vec(n * d, -1.0, 1.0),
            classifier: rng.vec(v * d, -scale, scale),
            bias: rng.vec(v, -0.5, 0.5),
            labels,
        }
    }

    fn input(&self, bias: bool) -> LinearInput<'_> {
        let input = LinearInput::new(&self.hidden, &self.classifier, self.shape).with_grad();
        match bias {
            true => input.with_bias(&self.bias),
            false => input,
        }
    }
}

/// Runs `loss` on `problem` on `ctx` and compares with the reference.
fn check(ctx: &Context, case: &str, loss: &LinearCrossEntropy, problem: &Problem, bias: bool) {
    let got = ctx
        .compute(loss, problem.input(bias), &problem.labels)
        .unwrap_or_else(|e| panic!("{case}: {e}"));
    let want = reference::compute(loss, problem.input(bias), &problem.labels).unwrap();
    assert_linear_matches(ctx, case, &got, &want);
}

#[test]
fn tile_edges_blocks_and_every_option_match_the_reference() {
    let mut rng = Rng::new(1801);
    // (shape, block budget): one block; tiles cut on every side; blocks of tokens and of
    // classes, the last of each partial.
    let cases: [([usize; 3], u64); 5] = [
        ([1, 1, 1], 64 << 20),
        ([65, 17, 130], 64 << 20),
        ([37, 5, 300], 4 << 10),
        ([37, 5, 2500], 40 << 10),
        ([129, 64, 1100], 256 << 10),
    ];
    let all = contexts();
    for ctx in [&all[0], &all[all.len() - 1]] {
        for (shape, block_bytes) in cases {
            let options = pairwise_options(shape[2], &mut rng);
            for (k, cross_entropy) in options.into_iter().enumerate() {
                let problem = Problem::new(&mut rng, shape, cross_entropy.ignore_index);
                let loss = LinearCrossEntropy {
                    cross_entropy,
                    block_bytes,
                };
                let case = format!("{shape:?} in {block_bytes} B, options {k}");
                check(ctx, &case, &loss, &problem, k % 2 == 0);
            }
        }
    }
}

#[test]
fn a_vocabulary_of_32000_matches_in_one_block_and_in_many() {
    let mut rng = Rng::new(1802);
    let ctx = &contexts()[0];
    let problem = Problem::new(&mut rng, [24, 32, 32000], -100);
    for block_bytes in [64 << 20, 256 << 10] {
        let loss = LinearCrossEntropy {
            cross_entropy: CrossEntropy {
                label_smoothing: 0.1,
                softcap: Some(30.0),
                z_loss: 1e-4,
                ..Default::default()
            },
            block_bytes,
        };
        check(
            ctx,
            &format!("V 32000 in {block_bytes} B"),
            &loss,
            &problem,
            true,
        );
    }
}

#[test]
fn blocks_cut_to_a_small_binding_match_the_reference() {
    let mut rng = Rng::new(1803);
    // Bindings of 16 KiB: the classifier (300 x 40 f32) and the logits are cut to fit.
    let ctx = with_binding_limit(&contexts()[0], 16 << 10);
    let problem = Problem::new(&mut rng, [50, 40, 300], -100);
    check(
        &ctx,
        "16 KiB bindings",
        &LinearCrossEntropy::default(),
        &problem,
        true,
    );
}

#[test]
fn every_token_ignored_gives_nan_mean_and_zero_gradients() {
    let mut rng = Rng::new(1804);
    let ctx = &contexts()[0];
    let mut problem = Problem::new(&mut rng, [9, 4, 70], -100);
    problem.labels = vec![-100; 9];
    for reduction in [Reduction::Mean, Reduction::Sum, Reduction::None] {
        let loss = LinearCrossEntropy {
            cross_entropy: CrossEntropy {
                reduction,
                ..Default::default()
            },
            block_bytes: 1 << 10,
        };
        check(
            ctx,
            &format!("all ignored {reduction:?}"),
            &loss,
            &problem,
            true,
        );
    }
}

#[test]
fn the_gpu_form_reads_sliced_tensors_repeats_bit_for_bit_and_takes_an_upstream() {
    let mut rng = Rng::new(1805);
    let ctx = &contexts()[0];
    let problem = Problem::new(&mut rng, [20, 6, 90], -100);
    let [n, d, v] = problem.shape;
    // Hidden rows padded to 8 values after a 64-byte header.
    let mut padded = vec![9.0f32; 16];
    for row in problem.hidden.chunks(d) {
        padded.extend_from_slice(row);
        padded.extend_from_slice(&[7.0, 7.0]);
    }
    let hidden = storage(ctx, &padded);
    let classifier = storage(ctx, &problem.classifier);
    let bias = storage(ctx, &problem.bias);
    let labels: Vec<i32> = problem.labels.iter().map(|&l| l as i32).collect();
    let labels = storage(ctx, &labels);
    let loss = LinearCrossEntropy {
        cross_entropy: CrossEntropy {
            reduction: Reduction::Sum,
            ..Default::default()
        },
        block_bytes: 2 << 10,
    };
    let input = GpuLinearInput::new(
        GpuTensor::new(&hidden).at(64).with_row_stride(d + 2),
        &classifier,
        [n, d, v],
    )
    .with_bias(&bias)
    .with_grad(GradMode::Separate);
    let prepared = ctx
        .prepare(&loss, input, GpuTargets::indices(&labels))
        .unwrap();
    prepared.set_upstream(&[0.5]).unwrap();
    prepared.run().unwrap();
    let first = prepared.read().unwrap();
    prepared.run().unwrap();
    let second = prepared.read().unwrap();
    assert_eq!(first, second, "two runs differ");
    let want = reference::compute(
        &loss,
        LinearInput::new(&problem.hidden, &problem.classifier, problem.shape)
            .with_bias(&problem.bias)
            .with_upstream(&[0.5]),
        &problem.labels,
    )
    .unwrap();
    assert_linear_matches(ctx, "sliced hidden, upstream 0.5", &first, &want);
}

#[test]
fn a_bad_gpu_label_is_reported_and_host_labels_are_checked_first() {
    let ctx = &contexts()[0];
    let (hidden, classifier) = (vec![0.5f32; 4 * 3], vec![0.25f32; 5 * 3]);
    let bufs = (storage(ctx, &hidden), storage(ctx, &classifier));
    let labels = storage(ctx, &[0i32, 4, 5, 1]);
    let input = GpuLinearInput::new(&bufs.0, &bufs.1, [4, 3, 5]).with_grad(GradMode::Separate);
    let loss = LinearCrossEntropy::default();
    let prepared = ctx
        .prepare(&loss, input, GpuTargets::indices(&labels))
        .unwrap();
    prepared.run().unwrap();
    match prepared.read() {
        Err(Error::LabelOutOfRange {
            row, label, count, ..
        }) => assert_eq!((row, label, count), (2, 5, 1)),
        other => panic!("want LabelOutOfRange, got {other:?}"),
    }
    let host = ctx.compute(
        &loss,
        LinearInput::new(&hidden, &classifier, [4, 3, 5]),
        &[0u32, 4, 5, 1],
    );
    assert!(
        matches!(host, Err(Error::LabelOutOfRange { row: 2, .. })),
        "{host:?}"
    );
}

#[test]
fn bad_shapes_options_and_budgets_are_errors() {
    let ctx = &contexts()[0];
    let (h, w) = (vec![0.0f32; 6], vec![0.0f32; 8]);
    let plain = LinearCrossEntropy::default();
    let run = |loss: &LinearCrossEntropy, input: LinearInput<'_>, labels: &[u32]| {
        ctx.compute(loss, input, labels)
    };
    let ok = LinearInput::new(&h, &w, [3, 2, 4]);
    assert!(run(&plain, ok, &[0, 1, 2]).is_ok());
    let zero = run(&plain, LinearInput::new(&h, &w, [3, 0, 4]), &[0, 1, 2]);
    assert!(matches!(zero, Err(Error::InvalidShape { .. })), "{zero:?}");
    let short = run(&plain, LinearInput::new(&h, &w, [3, 2, 5]), &[0, 1, 2]);
    assert!(
        matches!(
            short,
            Err(Error::ShapeMismatch {
                what: "classifier",
                ..
            })
        ),
        "{short:?}"
    );
    let huge = run(&plain, LinearInput::new(&h, &w, [usize::MAX, 2, 4]), &[0]);
    assert!(matches!(huge, Err(Error::InvalidShape { .. })), "{huge:?}");
    let bias = run(&plain, ok.with_bias(&[0.0; 3]), &[0, 1, 2]);
    assert!(
        matches!(bias, Err(Error::ShapeMismatch { what: "bias", .. })),
        "{bias:?}"
    );
    let labels = run(&plain, ok, &[0, 1]);
    assert!(
        matches!(
            labels,
            Err(Error::ShapeMismatch {
                what: "targets",
                ..
            })
        ),
        "{labels:?}"
    );
    let upstream = run(&plain, ok.with_upstream(&[1.0, 2.0]), &[0, 1, 2]);
    assert!(
        matches!(
            upstream,
            Err(Error::ShapeMismatch {
                what: "upstream",
                ..
            })
        ),
        "{upstream:?}"
    );
    let lse = LinearCrossEntropy {
        cross_entropy: CrossEntropy {
            return_lse: true,
            ..Default::default()
        },
        ..Default::default()
    };
    let lse = run(&lse, ok, &[0, 1, 2]);
    assert!(
        matches!(
            lse,
            Err(Error::InvalidOption {
                name: "return_lse",
                ..
            })
        ),
        "{lse:?}"
    );
    // A budget below one logit, or one that cuts (64, 1, 65536) into 65536 blocks of 64 x 1
    // (more than 4096, each some 30 KB of host memory), is refused before anything runs.
    let (h64, w64, y64) = (vec![0.5f32; 64], vec![0.25f32; 65536], vec![7u32; 64]);
    for (budget, input, labels) in [
        (0, ok, &[0u32, 1, 2][..]),
        (256, LinearInput::new(&h64, &w64, [64, 1, 65536]), &y64[..]),
    ] {
        let tiny = LinearCrossEntropy {
            block_bytes: budget,
            ..Default::default()
        };
        let tiny = run(&tiny, input, labels);
        assert!(
            matches!(
                tiny,
                Err(Error::InvalidOption {
                    name: "block_bytes",
                    ..
                })
            ),
            "{budget}: {tiny:?}"
        );
    }
    let probs = ctx.compute(&plain, ok, &[0.5f32, 0.5, 0.0][..]);
    assert!(matches!(probs, Err(Error::Misuse { .. })), "{probs:?}");
}

#[test]
fn f16_and_bf16_inputs_match_the_reference_on_their_rounded_values() {
    let mut rng = Rng::new(1807);
    let ctx = &contexts()[0];
    // Odd sizes: a bf16 row ends mid-word, and the hidden states start 2 bytes into a word.
    let problem = Problem::new(&mut rng, [33, 7, 301], -100);
    let [n, d, v] = problem.shape;
    let labels: Vec<i32> = problem.labels.iter().map(|&l| l as i32).collect();
    let labels = storage(ctx, &labels);
    let loss = LinearCrossEntropy {
        cross_entropy: CrossEntropy {
            label_smoothing: 0.1,
            softcap: Some(20.0),
            ..Default::default()
        },
        block_bytes: 8 << 10,
    };
    let dtypes = [xent::Dtype::Bf16, xent::Dtype::F16];
    for dtype in dtypes {
        if dtype == xent::Dtype::F16
            && !ctx.device().features().contains(wgpu::Features::SHADER_F16)
        {
            continue;
        }
        let mut padded_hidden = vec![0.0f32];
        padded_hidden.extend_from_slice(&problem.hidden);
        let (h, hb) = encode(&padded_hidden, dtype);
        let (w, wb) = encode(&problem.classifier, dtype);
        let (b, bb) = encode(&problem.bias, dtype);
        let buffer = |bytes: &[u8]| {
            use wgpu::util::DeviceExt;
            ctx.device()
                .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                    label: None,
                    contents: bytes,
                    usage: wgpu::BufferUsages::STORAGE,
                })
        };
        let (hidden, classifier, bias) = (buffer(&hb), buffer(&wb), buffer(&bb));
        let tensor = |buffer| GpuTensor::new(buffer).with_dtype(dtype);
        let input = GpuLinearInput::new(tensor(&hidden).at(2), tensor(&classifier), [n, d, v])
            .with_bias(tensor(&bias))
            .with_grad(GradMode::Separate);
        let prepared = ctx
            .prepare(&loss, input, GpuTargets::indices(&labels))
            .unwrap();
        prepared.run().unwrap();
        let got = prepared.read().unwrap();
        let want = reference::compute(
            &loss,
            LinearInput::new(&h[1..], &w, [n, d, v])
                .with_bias(&b)
                .with_grad(),
            &problem.labels,
        )
        .unwrap();
        assert_linear_matches(ctx, &format!("{dtype:?} inputs"), &got, &want);
    }
    // A bias of another type than the classifier's is refused.
    let (_, wb) = encode(&problem.classifier, xent::Dtype::Bf16);
    let classifier = typed_buffer(ctx, &wb);
    let hidden = storage(ctx, &problem.hidden);
    let bias = storage(ctx, &problem.bias);
    let input = GpuLinearInput::new(
        &hidden,
        GpuTensor::new(&classifier).with_dtype(xent::Dtype::Bf16),
        [n, d, v],
    )
    .with_bias(&bias);
    let refused = ctx.prepare(&loss, input, GpuTargets::indices(&labels));
    assert!(
        matches!(refused, Err(Error::UnsupportedDtype { what: "bias", .. })),
        "{:?}",
        refused.err()
    );
}

/// Tokens and features past every loop and grid bound of the fused kernels, with the default
/// budget: the column sums of the bias gradient and the token-deep classifier-gradient product
/// past 65535 tokens, and a feature-deep forward product past 65535, on each kind of adapter
/// (Vulkan, GL), against the float64 reference. A vocabulary past 2^22 has a test binary of
/// its own (tests/vocabulary.rs).
#[test]
fn tokens_and_features_past_every_loop_bound_match_the_reference() {
    let mut rng = Rng::new(1807);
    let all = contexts();
    let cases: [[usize; 3]; 3] = [[100_000, 16, 8], [262_144, 1, 2], [3, 70_000, 5]];
    for shape in cases {
        let problem = Problem::new(&mut rng, shape, -100);
        for ctx in [&all[0], &all[all.len() - 1]] {
            let case = format!("{shape:?}, default budget");
            check(ctx, &case, &LinearCrossEntropy::default(), &problem, true);
        }
    }
}

/// No tokens, as PyTorch gives them (F.cross_entropy of (0, V) logits): a mean of NaN, a sum
/// of 0, no unreduced losses, an empty hidden gradient and zero classifier and bias gradients.
#[test]
fn no_tokens_give_pytorchs_empty_results() {
    let mut rng = Rng::new(1808);
    let ctx = &contexts()[0];
    let mut problem = Problem::new(&mut rng, [1, 4, 6], -100);
    problem.shape = [0, 4, 6];
    problem.hidden.clear();
    problem.labels.clear();
    for reduction in [Reduction::Mean, Reduction::Sum, Reduction::None] {
        let loss = LinearCrossEntropy {
            cross_entropy: CrossEntropy {
                reduction,
                ..Default::default()
            },
            ..Default::default()
        };
        let case = format!("no tokens {reduction:?}");
        check(ctx, &case, &loss, &problem, true);
        let got = ctx
            .compute(&loss, problem.input(true), &problem.labels)
            .unwrap();
        let values = got.loss.values();
        match reduction {
            Reduction::Mean => assert!(values.len() == 1 && values[0].is_nan(), "{values:?}"),
            Reduction::Sum => assert_eq!(values, [0.0]),
            Reduction::None => assert!(values.is_empty()),
        }
        assert_eq!(got.grad_hidden.as_deref(), Some(&[][..]));
        assert_eq!(got.grad_classifier.as_deref(), Some(&[0.0; 24][..]));
        assert_eq!(got.grad_bias.as_deref(), Some(&[0.0; 6][..]));
    }
}
