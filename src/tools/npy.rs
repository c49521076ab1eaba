//! NumPy `.npy` files (format versions 1.0 to 3.0): the little-endian numeric arrays xent reads
//! and writes (`<f4`, `<i4`, `<i8`), C order only.
//!
//! Reading is defensive: the header is bounded, the shape must multiply out to exactly the
//! bytes the file holds, and nothing is allocated before that is checked, so a malformed or
//! truncated file gives an error, never a panic or an unbounded allocation.

use std::fmt;

/// The most header bytes accepted (NumPy writes a few hundred).
const MAX_HEADER: usize = 1 << 16;
const MAGIC: &[u8] = b"\x93NUMPY";

/// Why a `.npy` file could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NpyError(pub String);

impl fmt::Display for NpyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NpyError {}

fn err<T>(message: impl Into<String>) -> Result<T, NpyError> {
    Err(NpyError(message.into()))
}

/// The element types xent reads and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DType {
    /// `<f4`: float32.
    F32,
    /// `<i4`: int32.
    I32,
    /// `<i8`: int64.
    I64,
}

impl DType {
    fn descr(self) -> &'static str {
        match self {
            DType::F32 => "<f4",
            DType::I32 => "<i4",
            DType::I64 => "<i8",
        }
    }

    fn size(self) -> usize {
        match self {
            DType::F32 | DType::I32 => 4,
            DType::I64 => 8,
        }
    }

    /// NumPy's name for it.
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "float32",
            DType::I32 => "int32",
            DType::I64 => "int64",
        }
    }
}

/// The values of an array.
#[derive(Debug, Clone, PartialEq)]
pub enum Data {
    /// float32 values.
    F32(Vec<f32>),
    /// int32 values.
    I32(Vec<i32>),
    /// int64 values.
    I64(Vec<i64>),
}

/// An array read from or written to a `.npy` file.
#[derive(Debug, Clone, PartialEq)]
pub struct Array {
    /// The shape; empty for a scalar (shape `()`).
    pub shape: Vec<usize>,
    /// The values in C order.
    pub data: Data,
}

impl Array {
    /// A float32 array.
    pub fn f32(shape: Vec<usize>, values: Vec<f32>) -> Array {
        Array {
            shape,
            data: Data::F32(values),
        }
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        match self.data {
            Data::F32(_) => DType::F32,
            Data::I32(_) => DType::I32,
            Data::I64(_) => DType::I64,
        }
    }

    /// The shape written as NumPy does: `(3, 4)`, `(5,)`, `()`.
    pub fn shape_text(&self) -> String {
        shape_text(&self.shape)
    }
}

/// A shape written as NumPy does.
pub fn shape_text(shape: &[usize]) -> String {
    match shape {
        [] => "()".into(),
        [n] => format!("({n},)"),
        dims => format!(
            "({})",
            dims.iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Parses the value of `key` in the header dictionary (a Python literal).
fn header_value<'a>(header: &'a str, key: &str) -> Result<&'a str, NpyError> {
    let pattern = format!("'{key}':");
    let Some(start) = header.find(&pattern) else {
        return err(format!("the header has no '{key}' entry"));
    };
    Ok(header[start + pattern.len()..].trim_start())
}

fn parse_shape(value: &str) -> Result<Vec<usize>, NpyError> {
    let Some(rest) = value.strip_prefix('(') else {
        return err("the header's shape is not a tuple");
    };
    let Some(end) = rest.find(')') else {
        return err("the header's shape tuple is not closed");
    };
    rest[..end]
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.trim_end_matches('L')
                .parse::<usize>()
                .map_err(|_| NpyError(format!("the header's shape has a bad dimension '{s}'")))
        })
        .collect()
}

/// Parses a `.npy` file's bytes.
pub fn parse(bytes: &[u8]) -> Result<Array, NpyError> {
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return err("not a .npy file (no \\x93NUMPY magic)");
    }
    let major = bytes[6];
    let (header_len, header_start) = match major {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 => {
            if bytes.len() < 12 {
                return err("the file ends inside its header");
            }
            let len = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize;
            (len, 12)
        }
        v => return err(format!("unsupported .npy format version {v}")),
    };
    if header_len > MAX_HEADER {
        return err(format!(
            "the header claims {header_len} bytes (more than {MAX_HEADER})"
        ));
    }
    let data_start = header_start + header_len;
    if bytes.len() < data_start {
        return err("the file ends inside its header");
    }
    let Ok(header) = std::str::from_utf8(&bytes[header_start..data_start]) else {
        return err("the header is not text");
    };
    let descr = header_value(header, "descr")?;
    let dtype = if descr.starts_with("'<f4'") {
        DType::F32
    } else if descr.starts_with("'<i4'") {
        DType::I32
    } else if descr.starts_with("'<i8'") {
        DType::I64
    } else {
        let shown: String = descr.chars().take(12).collect();
        return err(format!(
            "element type {} is not supported (float32, int32 or int64, little-endian)",
            shown.split(',').next().unwrap_or("?")
        ));
    };
    if !header_value(header, "fortran_order")?.starts_with("False") {
        return err("Fortran-order arrays are not supported (save with C order)");
    }
    let shape = parse_shape(header_value(header, "shape")?)?;
    let count = shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| NpyError(format!("shape {} overflows", shape_text(&shape))))?;
    let payload = &bytes[data_start..];
    let expected = count.checked_mul(dtype.size());
    if expected != Some(payload.len()) {
        return err(format!(
            "shape {} of {} needs {} data bytes but the file has {}",
            shape_text(&shape),
            dtype.name(),
            expected.map_or("more than addressable".to_string(), |e| e.to_string()),
            payload.len()
        ));
    }
    let data = match dtype {
        DType::F32 => Data::F32(
            payload
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        ),
        DType::I32 => Data::I32(
            payload
                .chunks_exact(4)
                .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        ),
        DType::I64 => Data::I64(
            payload
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
                .collect(),
        ),
    };
    Ok(Array { shape, data })
}

/// The bytes of a `.npy` file (format 1.0) holding `array`.
pub fn to_bytes(array: &Array) -> Vec<u8> {
    let mut header = format!(
        "{{'descr': '{}', 'fortran_order': False, 'shape': {}, }}",
        array.dtype().descr(),
        array.shape_text()
    );
    // Pad so the data starts on a 64-byte boundary, ending the header with a newline.
    let unpadded = MAGIC.len() + 4 + header.len() + 1;
    header.push_str(&" ".repeat((64 - unpadded % 64) % 64));
    header.push('\n');
    let mut out = Vec::with_capacity(MAGIC.len() + 4 + header.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    match &array.data {
        Data::F32(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        Data::I32(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        Data::I64(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_type_and_shape() {
        for array in [
            Array::f32(vec![2, 3], vec![1.0, -2.5, 3.0, f32::NAN, 0.0, 7.0]),
            Array::f32(vec![], vec![4.5]),
            Array {
                shape: vec![3],
                data: Data::I64(vec![-100, 0, 5]),
            },
            Array {
                shape: vec![0],
                data: Data::I32(vec![]),
            },
        ] {
            let bytes = to_bytes(&array);
            assert_eq!(
                (bytes.len() - array_bytes(&array)) % 64,
                0,
                "data is 64-byte aligned"
            );
            let back = parse(&bytes).unwrap();
            assert_eq!(back.shape, array.shape);
            assert_eq!(to_bytes(&back), bytes);
        }
    }

    fn array_bytes(a: &Array) -> usize {
        a.shape.iter().product::<usize>() * a.dtype().size()
    }

    /// A version 1.0 file with the given header text and payload.
    fn file(header: &str, payload: &[u8]) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&[1, 0]);
        out.extend_from_slice(&(header.len() as u16).to_le_bytes());
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn malformed_files_are_errors() {
        let header = |descr: &str, order: &str, shape: &str| {
            format!("{{'descr': '{descr}', 'fortran_order': {order}, 'shape': {shape}, }}\n")
        };
        let ok = file(&header("<f4", "False", "(2, 2)"), &[0; 16]);
        assert!(parse(&ok).is_ok());
        assert!(parse(b"hello").unwrap_err().0.contains("magic"));
        assert!(parse(&ok[..ok.len() - 1])
            .unwrap_err()
            .0
            .contains("needs 16 data bytes"));
        let huge = file(
            &header("<f4", "False", "(99999999999, 99999999999)"),
            &[0; 16],
        );
        assert!(parse(&huge).unwrap_err().0.contains("overflows"));
        let big = file(&header("<f4", "False", "(100000000,)"), &[0; 16]);
        assert!(parse(&big)
            .unwrap_err()
            .0
            .contains("needs 400000000 data bytes"));
        let f8 = file(&header(">f8", "False", "(2,)"), &[0; 16]);
        assert!(parse(&f8).unwrap_err().0.contains("not supported"));
        let fortran = file(&header("<f4", "True", "(2, 2)"), &[0; 16]);
        assert!(parse(&fortran).unwrap_err().0.contains("Fortran"));
        let mut truncated_header = ok.clone();
        truncated_header.truncate(20);
        assert!(parse(&truncated_header)
            .unwrap_err()
            .0
            .contains("ends inside its header"));
        assert!(parse(&file("{'descr': '<f4'}", &[]))
            .unwrap_err()
            .0
            .contains("fortran_order"));
    }
}
