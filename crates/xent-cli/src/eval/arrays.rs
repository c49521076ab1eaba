//! The arrays of `xent eval`: .npy inputs read as the losses take them (shapes checked,
//! weights broadcast), results written whole (see crate::files).

use super::*;

/// Reads a .npy file; errors name the file.
pub(super) fn read(path: &str) -> Result<Array, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{path}: cannot read: {e}"))?;
    npy::read(&mut std::io::BufReader::new(file)).map_err(|e| format!("{path}: {e}"))
}

/// Reads a .npy file of the shape `shape` (any shape for `None`).
fn read_shaped(path: &str, shape: Option<&[usize]>) -> Result<Array, String> {
    let array = read(path)?;
    match shape {
        Some(want) if array.shape != want => Err(format!(
            "{path}: shape {} but {} was expected",
            array.shape_text(),
            npy::shape_text(want)
        )),
        _ => Ok(array),
    }
}

/// Reads a .npy file of floats (any float type, as float32) of an expected shape (`None`
/// entries match any size).
pub(super) fn read_f32(
    path: &str,
    shape: Option<&[usize]>,
) -> Result<(Vec<usize>, Vec<f32>), String> {
    let array = read_shaped(path, shape)?;
    match array.data {
        Data::F32(v) => Ok((array.shape, v)),
        _ => Err(format!(
            "{path}: dtype {} but a float type (float16, float32, float64) was expected",
            array.dtype().name()
        )),
    }
}

/// Reads binary targets of `shape`: floats of any float type, or integers of any integer
/// type or bool (NumPy's usual label arrays), as float32.
pub(super) fn read_binary_targets(path: &str, shape: &[usize]) -> Result<Vec<f32>, String> {
    Ok(match read_shaped(path, Some(shape))?.data {
        Data::F32(v) => v,
        Data::I32(v) => v.into_iter().map(|t| t as f32).collect(),
        Data::I64(v) => v.into_iter().map(|t| t as f32).collect(),
    })
}

/// A float array that broadcasts to `shape` as NumPy and PyTorch broadcast (dimensions
/// aligned at the end, each 1 or equal): as read when it is a trailing part of `shape` (which
/// the library repeats over the leading dimensions itself), repeated to the whole of `shape`
/// otherwise (e.g. (N, 1) for an (N, C) input).
pub(super) fn read_broadcast(path: &str, shape: &[usize]) -> Result<Vec<f32>, String> {
    let (from, values) = read_f32(path, None)?;
    broadcast(&from, values, shape).map_err(|reason| format!("{path}: {reason}"))
}

/// `values` of shape `from` broadcast to `to` (see [`read_broadcast`]).
pub(super) fn broadcast(
    from: &[usize],
    values: Vec<f32>,
    to: &[usize],
) -> Result<Vec<f32>, String> {
    let refuse = || {
        format!(
            "shape {} does not broadcast to the input's shape {}",
            npy::shape_text(from),
            npy::shape_text(to)
        )
    };
    let leading_ones = from.iter().take_while(|&&d| d == 1).count();
    let core = &from[leading_ones..];
    if core.len() > to.len() {
        return Err(refuse());
    }
    let offset = to.len() - core.len();
    if core == &to[offset..] {
        return Ok(values);
    }
    if core
        .iter()
        .zip(&to[offset..])
        .any(|(&f, &t)| f != 1 && f != t)
    {
        return Err(refuse());
    }
    // Source strides per dimension of `to`: 0 where the source repeats.
    let mut strides = vec![0usize; to.len()];
    let mut stride = 1;
    for (k, &d) in core.iter().enumerate().rev() {
        strides[offset + k] = if d == 1 { 0 } else { stride };
        stride *= d;
    }
    let len: usize = to.iter().product();
    let mut out = Vec::with_capacity(len);
    for i in 0..len {
        let (mut rest, mut source) = (i, 0);
        for (k, &d) in to.iter().enumerate().rev() {
            source += (rest % d) * strides[k];
            rest /= d;
        }
        out.push(values[source]);
    }
    Ok(out)
}

/// The loss as an array: shape () when reduced, `shape` when not.
pub(super) fn loss_array(loss: Loss, shape: Vec<usize>) -> Array {
    match loss {
        Loss::Reduced(v) => Array::f32(vec![], vec![v]),
        Loss::Unreduced(v) => Array::f32(shape, v),
    }
}

/// A float array of classes as PyTorch's cross-entropy takes it: (C,), (N, C) or (N, C, d1,
/// ..., dk), with C >= 1; its shape and C.
pub(super) fn read_classes(path: &str) -> Result<(Vec<usize>, usize, Vec<f32>), String> {
    let (shape, values) = read_f32(path, None)?;
    let classes = match shape[..] {
        [c] | [_, c, ..] => c,
        [] => {
            return Err(format!(
                "{path}: a scalar but a (C,), (N, C) or (N, C, d1, ..., dk) array was expected"
            ))
        }
    };
    if classes == 0 {
        return Err(format!(
            "{path}: shape {} has no classes",
            npy::shape_text(&shape)
        ));
    }
    Ok((shape, classes, values))
}

/// The shape of the positions of a (C,), (N, C) or (N, C, d1, ..., dk) input: (), (N,) or
/// (N, d1, ..., dk), that of class-index targets and of an unreduced loss.
pub(super) fn position_shape(shape: &[usize]) -> Vec<usize> {
    match shape {
        [_] => Vec::new(),
        [n, _, rest @ ..] => std::iter::once(*n).chain(rest.iter().copied()).collect(),
        [] => Vec::new(),
    }
}

/// `--weight`: C class weights, when given.
pub(super) fn read_class_weight(
    path: Option<&str>,
    classes: usize,
) -> Result<Option<Vec<f32>>, String> {
    path.map(|p| read_f32(p, Some(&[classes])).map(|(_, w)| w))
        .transpose()
}

/// Writes a loss's results once everything is computed (a half-written set is removed): the
/// loss (reduced: shape (); unreduced: `items`, one per row or element), where asked the
/// gradient of the input's shape `input`, and the log-sum-exp of shape `items` to `lse_out`.
pub(super) fn write_results(
    out: &Outputs,
    result: Output,
    (items, input): (Vec<usize>, Vec<usize>),
    lse_out: Option<&str>,
) -> Result<(), String> {
    let lse = lse_out
        .zip(result.lse)
        .map(|(p, v)| (p, Array::f32(items.clone(), v)));
    let grad = out.grad_out.as_deref().zip(result.grad);
    let grad = grad.map(|(p, g)| (p, Array::f32(input, g)));
    let loss = (out.loss_out.as_str(), loss_array(result.loss, items));
    write_arrays(std::iter::once(loss).chain(grad).chain(lse))
}

/// Writes each array as .npy to its path, all or none (see [`files::write_all`]).
pub(super) fn write_arrays<'p>(
    arrays: impl IntoIterator<Item = (&'p str, Array)>,
) -> Result<(), String> {
    let outputs: Vec<(&str, Vec<u8>)> = arrays
        .into_iter()
        .map(|(path, array)| (path, npy::to_bytes(&array)))
        .collect();
    files::write_all(&outputs)
}

/// A (rows, cols) float matrix from `path`, with cols >= 1.
pub(super) fn read_matrix(path: &str) -> Result<([usize; 2], Vec<f32>), String> {
    let (shape, values) = read_f32(path, None)?;
    match shape[..] {
        [rows, cols] if cols > 0 => Ok(([rows, cols], values)),
        _ => Err(format!(
            "{path}: shape {} but a 2-D array with at least one column was expected",
            npy::shape_text(&shape)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::broadcast;

    #[test]
    fn weights_broadcast_as_numpy_does() {
        let (n, c) = (2, 3);
        // A trailing part stays as it is (the library repeats it).
        assert_eq!(
            broadcast(&[1, c], vec![1.0, 2.0, 3.0], &[n, c]),
            Ok(vec![1.0, 2.0, 3.0])
        );
        // A column repeats along the rows' entries.
        assert_eq!(
            broadcast(&[n, 1], vec![1.0, 2.0], &[n, c]),
            Ok(vec![1.0, 1.0, 1.0, 2.0, 2.0, 2.0])
        );
        assert_eq!(
            broadcast(&[2, 1, 2], vec![1.0, 2.0, 3.0, 4.0], &[2, 2, 2]),
            Ok(vec![1.0, 2.0, 1.0, 2.0, 3.0, 4.0, 3.0, 4.0])
        );
        for bad in [vec![c + 1], vec![n, c, 1], vec![2, n, c]] {
            let len = bad.iter().product();
            let refused = broadcast(&bad, vec![0.0; len], &[n, c]).unwrap_err();
            assert!(refused.contains("does not broadcast"), "{refused}");
        }
    }
}
