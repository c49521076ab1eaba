//! Row merges with subgroup shuffles give the same bits as merges through workgroup memory.

#[allow(unused_imports)]
use crate::common::api::*;
use crate::common::{contexts, name, Rng};
use xent::{Context, CrossEntropy, Reduction, Tuning};

/// Row widths that give rows of fewer threads than a subgroup, of one subgroup and of several
/// (up to a whole workgroup), kept in registers and read twice, under the two launch plans
/// (128 and 16 logits per thread): 2, 8 and 256 threads per row on the first, 16, 64 and 256
/// on the second. Each width compiles its own pipelines, which lavapipe takes about 3 s each
/// over (on a cold shader cache), so the list is short.
const CLASSES: [usize; 3] = [200, 1000, 33_000];

/// The outputs (loss and gradient) of categorical cross-entropy and log-softmax for one
/// batch, as bits. (Probability targets merge rows with the same code.)
fn row_kernel_bits(
    ctx: &Context,
    rows: usize,
    classes: usize,
    seed: u64,
) -> Vec<(String, Vec<u32>)> {
    let mut rng = Rng::new(seed);
    let mut logits = rng.vec(rows * classes, -20.0, 20.0);
    // A masked logit and a row with a +inf (NaN row) keep the special values on both paths.
    logits[classes / 2] = f32::NEG_INFINITY;
    logits[3 * classes + 1] = f32::INFINITY;
    let labels: Vec<u32> = (0..rows).map(|_| rng.below(classes) as u32).collect();
    let upstream = rng.vec(rows * classes, -1.0, 1.0);
    let smoothing = CrossEntropy {
        label_smoothing: 0.1,
        weight: Some(rng.vec(classes, 0.5, 2.0)),
        reduction: Reduction::Mean,
        ..Default::default()
    };
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<u32>>();
    let mut out = Vec::new();
    // Label smoothing merges all four parts of a row's state (max, sum, coefficient sum and
    // coefficient-weighted sum).
    let ce = ctx
        .compute(
            &smoothing,
            grad_input(&logits, nc(&logits, classes), None),
            &labels,
        )
        .unwrap();
    out.push(("ce loss".into(), bits(ce.loss.values())));
    out.push(("ce grad".into(), bits(ce.grad.as_deref().unwrap())));
    let ls = ctx
        .compute(
            &LogSoftmax,
            Input::new(&logits, nc(&logits, classes)).with_upstream(&upstream),
            Targets::None,
        )
        .unwrap();
    out.push(("log_softmax".into(), bits(ls.loss.values())));
    out.push(("log_softmax grad".into(), bits(ls.grad.as_deref().unwrap())));
    out
}

/// On every context whose device can use subgroups (lavapipe's Vulkan adapter can, with 8
/// lanes), every row kernel gives identical bits with subgroups on and off, at every count
/// of threads per row. A machine where no adapter can use subgroups fails: the subgroup path
/// would go untested.
#[test]
fn subgroup_merges_match_workgroup_memory_bit_for_bit() {
    let mut checked = 0;
    for ctx in contexts() {
        let info = ctx.adapter_info();
        let fixed_size = info.subgroup_min_size == info.subgroup_max_size;
        if ctx.device().features().contains(wgpu::Features::SUBGROUP) && fixed_size {
            assert_eq!(
                ctx.subgroup_size(),
                Some(info.subgroup_min_size),
                "{} has subgroups of one size, but the row kernels do not use them",
                name(ctx)
            );
        }
        if ctx.subgroup_size().is_none() {
            continue;
        }
        let off = ctx.with_tuning(Tuning {
            subgroups: false,
            ..ctx.tuning()
        });
        assert_eq!(off.subgroup_size(), None);
        for (i, &classes) in CLASSES.iter().enumerate() {
            let rows = if classes > 5000 { 5 } else { 37 };
            let on = row_kernel_bits(ctx, rows, classes, 300 + i as u64);
            let without = row_kernel_bits(&off, rows, classes, 300 + i as u64);
            for ((what, a), (_, b)) in on.iter().zip(&without) {
                let first = a.iter().zip(b).position(|(x, y)| x != y);
                assert!(
                    first.is_none(),
                    "{} {rows}x{classes} {what}: element {} is {:#010x} with subgroups, {:#010x} without",
                    name(ctx),
                    first.unwrap_or(0),
                    a[first.unwrap_or(0)],
                    b[first.unwrap_or(0)]
                );
            }
        }
        checked += 1;
    }
    assert!(
        checked > 0,
        "no adapter here can use subgroups, so the subgroup row merge went untested"
    );
}
