//! Cross-entropy's per-row log-sum-exp output (`CrossEntropy::return_lse`) against the float64
//! reference at the edges of its domain, and from prepared losses. Its values on every row
//! path (cached, two-pass, split, chunked, in parts, K-dimensional) are checked where those
//! paths are: the shared assertions compare it whenever the options ask for it.

#[allow(unused_imports)]
use crate::common::api::*;
use crate::common::{assert_close, assert_lse, contexts, storage, Rng};
use xent::{reference, CrossEntropy, GradMode, Reduction};

/// Rows of `c` logits at the edges: a -inf logit (adds 0), a row of -inf (lse -inf), +inf
/// (NaN, as the row's loss), NaN, huge values of both signs, and an ignored row.
fn edge_rows(rng: &mut Rng, c: usize) -> (Vec<f32>, Vec<i64>) {
    let mut x = rng.vec(8 * c, -20.0, 20.0);
    x[1] = f32::NEG_INFINITY;
    x[c..2 * c].fill(f32::NEG_INFINITY);
    x[2 * c + c / 2] = f32::INFINITY;
    x[3 * c + 1] = f32::NAN;
    x[4 * c..5 * c].fill(3e38);
    x[5 * c..6 * c].fill(-3e38);
    x[6 * c] = 1e30;
    let labels = vec![0, -100, 1, 0, c as i64 - 1, 0, -100, 1];
    (x, labels)
}

#[test]
fn the_log_sum_exp_matches_the_reference_at_the_edges() {
    let mut rng = Rng::new(181);
    for ctx in contexts() {
        for c in [1usize, 2, 7, 1000] {
            let (x, labels) = edge_rows(&mut rng, c);
            let labels: Vec<i64> = labels.iter().map(|&l| l.min(c as i64 - 1)).collect();
            let t = rng.distributions(8, c);
            for (softcap, reduction) in [(None, Reduction::None), (Some(30.0), Reduction::Mean)] {
                let options = CrossEntropy {
                    softcap,
                    reduction,
                    return_lse: true,
                    ..Default::default()
                };
                let case = format!("lse edges 8x{c} softcap {softcap:?}");
                let got = ctx.compute(&options, Input::new(&x, [8, c]), &labels);
                let want = reference::compute(&options, Input::new(&x, [8, c]), &labels);
                assert_lse(ctx, &case, &got.unwrap(), &want.unwrap());
                let got = ctx.compute(&options, Input::new(&x, [8, c]), &t[..]);
                let want = reference::compute(&options, Input::new(&x, [8, c]), &t[..]);
                assert_lse(ctx, &format!("{case} probs"), &got.unwrap(), &want.unwrap());
            }
        }
    }
}

/// The reference's edge values themselves, as `torch.logsumexp` gives them where the row's
/// loss is defined: -inf for a row of -inf, the largest value for equal huge ones.
#[test]
fn the_reference_log_sum_exp_keeps_its_edges() {
    let x = [
        f32::NEG_INFINITY,
        f32::NEG_INFINITY,
        3e38,
        3e38,
        1.0,
        f32::INFINITY,
    ];
    let options = CrossEntropy {
        return_lse: true,
        reduction: Reduction::None,
        ..Default::default()
    };
    let out = reference::compute(&options, Input::new(&x, [3, 2]), &[0i64, 0, 0]).unwrap();
    let lse = out.lse.unwrap();
    assert_eq!(lse[0], f64::NEG_INFINITY);
    assert_eq!(lse[1], 3e38f32 as f64 + 2f64.ln());
    assert!(lse[2].is_nan());
}

/// A prepared loss keeps the log-sum-exp in a buffer of its own, read back on demand, equal
/// to the host path's; without the option there is none.
#[test]
fn prepared_losses_give_the_log_sum_exp_in_a_buffer() {
    let mut rng = Rng::new(182);
    let (n, c) = (37, 300);
    let x = rng.vec(n * c, -8.0, 8.0);
    let labels: Vec<i32> = (0..n).map(|_| rng.below(c) as i32).collect();
    for ctx in contexts() {
        let y = storage(ctx, &labels);
        for (return_lse, mode) in [
            (true, GradMode::Off),
            (true, GradMode::InPlace),
            (false, GradMode::Separate),
        ] {
            let options = CrossEntropy {
                label_smoothing: 0.1,
                softcap: Some(5.0),
                return_lse,
                ..Default::default()
            };
            let logits = storage(ctx, &x);
            let input = GpuInput::new(&logits, [n, c]).with_grad(mode);
            let prepared = ctx
                .prepare(&options, input, GpuTargets::indices(&y))
                .unwrap();
            prepared.run().unwrap();
            let got = prepared.read_lse().unwrap();
            assert_eq!(prepared.lse_buffer().is_some(), return_lse);
            let case = format!("prepared lse {mode:?}");
            let want = reference::compute(&options, Input::new(&x, [n, c]), &labels[..]).unwrap();
            match (got, want.lse) {
                (Some(got), Some(want)) => assert_close(ctx, &case, &got, &want),
                (None, None) => {}
                (got, want) => panic!("{case}: {got:?} vs {want:?}"),
            }
        }
    }
}
