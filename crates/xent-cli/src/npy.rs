//! NumPy `.npy` files (format versions 1.0 to 3.0). xent reads arrays of any float type
//! (float16, float32, float64: as float32, a float64 value beyond float32's range being an
//! error), any integer type (int32 as int32, the others as int64) and bool (as int32), of either byte order and
//! in C or Fortran order; it writes little-endian float32, int32 and int64 in C order.
//!
//! Reading is defensive: the header is bounded and read first, then exactly the payload its
//! shape announces (a byte more is an error), and memory grows only with the bytes read, so a
//! malformed, truncated, overlong or endless file gives an error, never a panic or an
//! unbounded allocation.

use std::fmt;
use std::io::Read;

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
    read(&mut &bytes[..])
}

/// Reads a `.npy` file from `source`: its header first, then exactly the payload the header
/// announces, so a source that never ends (`/dev/zero`) or holds more than the array gives an
/// error at once, and memory grows only with the bytes actually read.
pub fn read(source: &mut impl std::io::Read) -> Result<Array, NpyError> {
    let io = |e: std::io::Error| NpyError(format!("cannot read: {e}"));
    let mut start = [0u8; 10];
    let got = read_up_to(source, &mut start).map_err(io)?;
    if got < start.len() || &start[..6] != MAGIC {
        return err("not a .npy file (no \\x93NUMPY magic)");
    }
    let header_len = match start[6] {
        1 => u16::from_le_bytes([start[8], start[9]]) as usize,
        2 | 3 => {
            let mut more = [0u8; 2];
            if read_up_to(source, &mut more).map_err(io)? < 2 {
                return err("the file ends inside its header");
            }
            u32::from_le_bytes([start[8], start[9], more[0], more[1]]) as usize
        }
        v => return err(format!("unsupported .npy format version {v}")),
    };
    if header_len > MAX_HEADER {
        return err(format!(
            "the header claims {header_len} bytes (more than {MAX_HEADER})"
        ));
    }
    let mut header = vec![0u8; header_len];
    if read_up_to(source, &mut header).map_err(io)? < header_len {
        return err("the file ends inside its header");
    }
    let Ok(header) = std::str::from_utf8(&header) else {
        return err("the header is not text");
    };
    let elem = Elem::parse(header_value(header, "descr")?)?;
    let fortran = match header_value(header, "fortran_order")? {
        v if v.starts_with("False") => false,
        v if v.starts_with("True") => true,
        _ => return err("the header's fortran_order is neither True nor False"),
    };
    let shape = parse_shape(header_value(header, "shape")?)?;
    let count = shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| NpyError(format!("shape {} overflows", shape_text(&shape))))?;
    let expected = count.checked_mul(elem.size);
    // At most one byte past what the shape needs: enough to tell a longer file.
    let limit = expected.map_or(u64::MAX, |e| e as u64 + 1);
    let mut payload = Vec::new();
    std::io::Read::take(&mut *source, limit)
        .read_to_end(&mut payload)
        .map_err(io)?;
    if expected != Some(payload.len()) {
        let has = match Some(payload.len()) > expected {
            true => "more".to_string(),
            false => payload.len().to_string(),
        };
        return err(format!(
            "shape {} of {} needs {} data bytes but the file has {has}",
            shape_text(&shape),
            elem.name(),
            expected.map_or("more than addressable".to_string(), |e| e.to_string()),
        ));
    }
    let data = elem.decode(&payload).map_err(|(i, why)| {
        NpyError(format!(
            "the value at {}: {why}",
            position(i, &shape, fortran)
        ))
    })?;
    let data = match fortran {
        true => data.to_c_order(&shape),
        false => data,
    };
    Ok(Array { shape, data })
}

/// Element `flat` (in the file's order) of an array of `shape` as its index, `[i, j, ...]`.
fn position(flat: usize, shape: &[usize], fortran: bool) -> String {
    let mut rest = flat;
    let mut index = vec![0; shape.len()];
    let order: Vec<usize> = match fortran {
        true => (0..shape.len()).collect(),
        false => (0..shape.len()).rev().collect(),
    };
    for k in order {
        let d = shape[k].max(1);
        index[k] = rest % d;
        rest /= d;
    }
    let parts: Vec<String> = index.iter().map(usize::to_string).collect();
    format!("[{}]", parts.join(", "))
}

/// Fills as much of `buf` as `source` holds; returns the bytes read (fewer only at its end).
fn read_up_to(source: &mut impl std::io::Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match source.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// An element type as a `.npy` header describes it (`'<f8'`, `'|u1'`, `'>i4'`).
struct Elem {
    kind: char,
    size: usize,
    big_endian: bool,
}

impl Elem {
    /// The element type of the header's `descr` value.
    fn parse(descr: &str) -> Result<Elem, NpyError> {
        let text: String = descr
            .trim_start_matches('\'')
            .chars()
            .take_while(|&c| c != '\'')
            .collect();
        let mut chars = text.chars();
        let order = chars.next();
        let kind = chars.next();
        let size = chars.as_str().parse::<usize>().ok();
        let big_endian = match order {
            Some('<' | '|') => Some(false),
            Some('>') => Some(true),
            Some('=') => Some(cfg!(target_endian = "big")),
            _ => None,
        };
        match (big_endian, kind, size) {
            (Some(big_endian), Some(kind @ 'f'), Some(size @ (2 | 4 | 8)))
            | (Some(big_endian), Some(kind @ 'b'), Some(size @ 1))
            | (Some(big_endian), Some(kind @ ('i' | 'u')), Some(size @ (1 | 2 | 4 | 8))) => {
                Ok(Elem {
                    kind,
                    size,
                    big_endian,
                })
            }
            _ => err(format!(
                "element type '{text}' is not supported (float16, float32, float64, bool or \
                 an integer type)"
            )),
        }
    }

    /// NumPy's name for it.
    fn name(&self) -> String {
        let kind = match self.kind {
            'f' => "float",
            'b' => return "bool".into(),
            'i' => "int",
            _ => "uint",
        };
        format!("{kind}{}", 8 * self.size)
    }

    /// Element `c` (the element's bytes) as little-endian bytes, padded to 8.
    fn le_bytes(&self, c: &[u8]) -> [u8; 8] {
        let mut out = [0u8; 8];
        for (k, b) in c.iter().enumerate() {
            let at = if self.big_endian { c.len() - 1 - k } else { k };
            out[at] = *b;
        }
        out
    }

    /// The payload's values: floats as float32, int32 as int32, other integers as int64.
    /// A value that cannot be read is an error with its flat index and why.
    fn decode(&self, payload: &[u8]) -> Result<Data, (usize, String)> {
        let elements = payload.chunks_exact(self.size).map(|c| self.le_bytes(c));
        match (self.kind, self.size) {
            ('f', 2) => Ok(Data::F32(
                elements
                    .map(|b| f16_to_f32(u16::from_le_bytes([b[0], b[1]])))
                    .collect(),
            )),
            ('f', 4) => Ok(Data::F32(
                elements
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect(),
            )),
            ('f', _) => elements
                .enumerate()
                .map(|(i, b)| {
                    let v = f64::from_le_bytes(b);
                    let narrowed = v as f32;
                    match v.is_finite() && !narrowed.is_finite() {
                        true => Err((
                            i,
                            format!(
                                "float64 {v:e} does not fit in float32, which xent computes in"
                            ),
                        )),
                        false => Ok(narrowed),
                    }
                })
                .collect::<Result<_, _>>()
                .map(Data::F32),
            ('b', _) => elements
                .enumerate()
                .map(|(i, b)| match b[0] {
                    0 | 1 => Ok(i32::from(b[0])),
                    v => Err((i, format!("bool byte {v} is neither 0 nor 1"))),
                })
                .collect::<Result<_, _>>()
                .map(Data::I32),
            ('i', 4) => Ok(Data::I32(
                elements
                    .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect(),
            )),
            ('i', size) => Ok(Data::I64(
                elements
                    .map(|b| {
                        // Sign-extend from the element's width.
                        let shift = 64 - 8 * size as u32;
                        (i64::from_le_bytes(b) << shift) >> shift
                    })
                    .collect(),
            )),
            (_, _) => elements
                .enumerate()
                .map(|(i, b)| {
                    let v = u64::from_le_bytes(b);
                    i64::try_from(v).map_err(|_| (i, format!("uint64 {v} is beyond int64's range")))
                })
                .collect::<Result<_, _>>()
                .map(Data::I64),
        }
    }
}

/// An IEEE half-precision value as f32 (exact: every f16 is an f32).
fn f16_to_f32(h: u16) -> f32 {
    let negative = h >> 15 == 1;
    let exp = u32::from((h >> 10) & 0x1f);
    let frac = u32::from(h & 0x3ff);
    let magnitude = match exp {
        // Zero and subnormals: frac * 2^-24.
        0 => frac as f32 * 2f32.powi(-24),
        0x1f if frac == 0 => f32::INFINITY,
        0x1f => f32::NAN,
        _ => f32::from_bits(((exp + 112) << 23) | (frac << 13)),
    };
    if negative {
        -magnitude
    } else {
        magnitude
    }
}

impl Data {
    /// The values of a Fortran-order array of `shape` in C order.
    fn to_c_order(&self, shape: &[usize]) -> Data {
        fn reorder<T: Copy>(values: &[T], shape: &[usize]) -> Vec<T> {
            let mut index = vec![0usize; shape.len()];
            let mut out = Vec::with_capacity(values.len());
            for _ in 0..values.len() {
                // Fortran strides: the first index varies fastest.
                let (at, _) = index
                    .iter()
                    .zip(shape)
                    .fold((0, 1), |(at, stride), (&i, &d)| {
                        (at + i * stride, stride * d)
                    });
                out.push(values[at]);
                // Next C-order index: the last index varies fastest.
                for k in (0..shape.len()).rev() {
                    index[k] += 1;
                    if index[k] < shape[k] {
                        break;
                    }
                    index[k] = 0;
                }
            }
            out
        }
        match self {
            Data::F32(v) => Data::F32(reorder(v, shape)),
            Data::I32(v) => Data::I32(reorder(v, shape)),
            Data::I64(v) => Data::I64(reorder(v, shape)),
        }
    }
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

    /// A source longer than its header announces is an error, and a source that never ends
    /// is read no further than one byte past the payload.
    #[test]
    fn reads_exactly_the_payload_its_header_announces() {
        let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }\n";
        let whole = file(header, &[0u8; 8]);
        assert!(parse(&whole).is_ok());
        let mut longer = whole.clone();
        longer.push(0);
        let e = parse(&longer).unwrap_err();
        assert!(
            e.0.contains("needs 8 data bytes but the file has more"),
            "{e}"
        );
        let mut endless = std::io::Read::chain(&whole[..], std::io::repeat(0));
        assert!(read(&mut endless).is_err());
        // Endless zeros are no .npy file, found in the first bytes.
        let e = read(&mut std::io::repeat(0)).unwrap_err();
        assert!(e.0.contains("not a .npy file"), "{e}");
    }

    /// NumPy's bool arrays (`|b1`) read as int32 0 and 1; other bytes are an error.
    #[test]
    fn reads_bool_arrays() {
        let header = "{'descr': '|b1', 'fortran_order': False, 'shape': (3,), }\n";
        let got = parse(&file(header, &[1, 0, 1])).unwrap();
        assert_eq!(got.data, Data::I32(vec![1, 0, 1]));
        assert_eq!(got.dtype().name(), "int32");
        assert!(parse(&file(header, &[1, 2, 1])).is_err());
    }

    /// Every float type reads as float32 and every integer type as int32 or int64, in either
    /// byte order; Fortran-order arrays come back in C order.
    #[test]
    fn reads_arrays_as_numpy_saves_them() {
        let header = |descr: &str, order: &str, shape: &str| {
            format!("{{'descr': '{descr}', 'fortran_order': {order}, 'shape': {shape}, }}\n")
        };
        let values = [1.5f64, -0.25, 0.0, 65504.0, f64::NAN, 6.0e-8];
        let f8: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let f8_big: Vec<u8> = values.iter().flat_map(|v| v.to_be_bytes()).collect();
        // The same values as float16 (6e-8 is the subnormal 1 * 2^-24).
        let halves: [u16; 6] = [0x3e00, 0xb400, 0x0000, 0x7bff, 0x7e00, 0x0001];
        let f2: Vec<u8> = halves.iter().flat_map(|v| v.to_le_bytes()).collect();
        let want: Vec<f32> = values.iter().map(|&v| v as f32).collect();
        let want_half: Vec<f32> = [1.5, -0.25, 0.0, 65504.0, f32::NAN, 2f32.powi(-24)].to_vec();
        for (descr, payload, want) in [
            ("<f8", &f8, &want),
            (">f8", &f8_big, &want),
            ("<f2", &f2, &want_half),
        ] {
            let got = parse(&file(&header(descr, "False", "(6,)"), payload)).unwrap();
            let Data::F32(got) = got.data else {
                panic!("{descr} is not read as float32")
            };
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&got), bits(want), "{descr}");
        }
        let labels: [i64; 3] = [-1, 0, 7];
        for (descr, size) in [("|i1", 1), ("<i2", 2), ("<i8", 8)] {
            let payload: Vec<u8> = labels
                .iter()
                .flat_map(|v| v.to_le_bytes()[..size].to_vec())
                .collect();
            let got = parse(&file(&header(descr, "False", "(3,)"), &payload)).unwrap();
            assert_eq!(got.data, Data::I64(labels.to_vec()), "{descr}");
        }
        let unsigned = parse(&file(&header("|u1", "False", "(2,)"), &[255, 3])).unwrap();
        assert_eq!(unsigned.data, Data::I64(vec![255, 3]));
        // np.save(np.arange(6).reshape(2, 3).T): shape (3, 2), stored column by column.
        let fortran: Vec<u8> = [0i32, 1, 2, 3, 4, 5]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let got = parse(&file(&header("<i4", "True", "(3, 2)"), &fortran)).unwrap();
        assert_eq!(got.shape, vec![3, 2]);
        assert_eq!(got.data, Data::I32(vec![0, 3, 1, 4, 2, 5]));
    }

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
        let size = match a.dtype() {
            DType::F32 | DType::I32 => 4,
            DType::I64 => 8,
        };
        a.shape.iter().product::<usize>() * size
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
        let c16 = file(&header("<c16", "False", "(2,)"), &[0; 32]);
        assert!(parse(&c16).unwrap_err().0.contains("not supported"));
        let text = file(&header("<U3", "False", "(2,)"), &[0; 24]);
        assert!(parse(&text).unwrap_err().0.contains("not supported"));
        let huge_f8 = file(&header("<f8", "False", "(1,)"), &1e300f64.to_le_bytes());
        assert!(parse(&huge_f8)
            .unwrap_err()
            .0
            .contains("does not fit in float32"));
        // A value that does not fit is named by its index in the array's shape, in either
        // order, and written as a float.
        let values = [0.5f64, 1.0, 2.0, 1e39, 0.0, 0.0];
        let f8: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let e = parse(&file(&header("<f8", "False", "(2, 3)"), &f8)).unwrap_err();
        assert_eq!(
            e.0,
            "the value at [1, 0]: float64 1e39 does not fit in float32, which xent computes in"
        );
        let e = parse(&file(&header("<f8", "True", "(2, 3)"), &f8)).unwrap_err();
        assert!(e.0.starts_with("the value at [1, 1]: float64 1e39"), "{e}");
        let big_u8 = file(&header("<u8", "False", "(1,)"), &u64::MAX.to_le_bytes());
        assert!(parse(&big_u8).unwrap_err().0.contains("beyond int64"));
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
