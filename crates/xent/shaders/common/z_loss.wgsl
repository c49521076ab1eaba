// The log-sum-exp of cross-entropy's rows: the z-loss term, and the per-row output.
//
// The z-loss of cross-entropy (PaLM; Liger's lse_square_scale): with Z_LOSS, every row that
// counts (class indices: not ignored) adds z lse_n^2 to its loss, unweighted, where lse_n is
// the log-sum-exp of its (softcapped) logits; its gradient adds 2 z lse_n p_c times the row's
// scale (the cross-entropy term's, so a mean divides by the same denominator). Without it the
// kernels are the plain ones, in a pipeline of their own. z = params.z_loss.

override Z_LOSS: bool = false;

// The row's z-loss term.
fn z_loss_term(lse: f32) -> f32 {
    if (Z_LOSS) {
        return params.z_loss * lse * lse;
    }
    return 0.0;
}

// The coefficient of p_c in the row's z-loss gradient, for a row scale s.
fn z_loss_coefficient(s: f32, lse: f32) -> f32 {
    if (Z_LOSS) {
        return s * 2.0 * params.z_loss * lse;
    }
    return 0.0;
}

// The per-row log-sum-exp output (CrossEntropy::return_lse): with LSE, the one thread that
// forms a row's loss writes lse_n (for every row, ignored ones included) to f32
// params.lse_first + row of `scratch`, which the host copies out after the dispatch (the
// categorical kernels have no storage binding to spare for an output of its own).
override LSE: bool = false;

fn write_lse(row: u32, lse: f32) {
    if (LSE) {
        let i = params.lse_first + row;
        scratch[i] = lse;
    }
}
