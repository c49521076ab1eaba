//! Every case of the suite, a file per loss family, in a fixed order.

mod binary;
mod categorical;
mod edges;
mod kdim;
mod linear;
mod log_softmax;
mod nll;
mod split;

use super::*;

/// Every case of the suite, in a fixed order.
pub(crate) fn all() -> Vec<Case> {
    let mut out = Vec::new();
    categorical::add(&mut out);
    binary::add(&mut out);
    nll::add(&mut out);
    kdim::add(&mut out);
    log_softmax::add(&mut out);
    edges::add(&mut out);
    split::add(&mut out);
    linear::add(&mut out);
    out
}

/// Categorical cases with class-index targets on an (n, c) batch drawn from `seed`.
pub(super) fn ce_case(
    label: &str,
    n: usize,
    c: usize,
    options: CrossEntropy,
    seed: u64,
    scale: f32,
) -> Case {
    let mut rng = Rng(seed);
    let logits = rng.vec(n * c, -scale, scale);
    let mut targets = rng.labels(n, c);
    for (i, t) in targets.iter_mut().enumerate() {
        if i % 9 == 4 {
            *t = options.ignore_index;
        }
    }
    let name = format!("ce {label} {n}x{c} {}", reduction_name(options.reduction));
    case(name, move |ctx| {
        Box::pin(async move {
            both(
                ctx,
                &options,
                || Input::new(&logits, [n, c]).with_grad(),
                &targets,
            )
            .await
        })
    })
}
