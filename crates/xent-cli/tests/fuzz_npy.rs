//! Fuzzing of the .npy reader, driven by proptest for a bounded number of cases (256 per
//! property, or `XENT_FUZZ_CASES`; a fixed seed, or `XENT_PROPTEST_SEED`): mutated valid
//! files (truncated, bytes flipped, headers rewritten, huge declared shapes and header
//! lengths) and arbitrary bytes must give an error or a consistent array, never a panic, and
//! no single allocation may be larger than the file itself allows (a declared shape is never
//! trusted for a size).
//!
//! Its own test binary, because it installs a global allocator that records the largest
//! allocation.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use proptest::prelude::*;
use proptest::test_runner::Config;
use xent_cli::npy::{self, Array, Data};

/// The system allocator, recording the largest allocation since the last reset.
struct Recording;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Recording {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Recording = Recording;

/// One parse at a time, so the recorded allocation is this parse's.
static PARSING: Mutex<()> = Mutex::new(());

/// Parses `bytes` and checks the result: an array whose shape multiplies out to its data, and
/// no allocation beyond a small multiple of the input (the header is at most 64 KiB).
fn parse_checked(bytes: &[u8]) -> Result<Array, npy::NpyError> {
    let _one = PARSING.lock().unwrap_or_else(|p| p.into_inner());
    LARGEST.store(0, Ordering::Relaxed);
    let result = npy::parse(bytes);
    let largest = LARGEST.load(Ordering::Relaxed);
    let bound = 8 * bytes.len() + (64 << 10);
    assert!(
        largest <= bound,
        "parsing {} bytes allocated {largest} bytes at once (bound {bound})",
        bytes.len()
    );
    if let Ok(array) = &result {
        let count: usize = array.shape.iter().product();
        let len = match &array.data {
            Data::F32(v) => v.len(),
            Data::I32(v) => v.len(),
            Data::I64(v) => v.len(),
        };
        assert_eq!(count, len, "shape {:?} with {len} values", array.shape);
    }
    result
}

fn config() -> Config {
    let cases = std::env::var("XENT_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    let seed = std::env::var("XENT_PROPTEST_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x7865_6e74);
    Config {
        cases,
        // A fixed seed: CI runs the same cases every time.
        rng_seed: proptest::test_runner::RngSeed::Fixed(seed),
        failure_persistence: None,
        ..Config::default()
    }
}

/// A small valid array of any supported type and up to three dimensions.
fn array() -> impl Strategy<Value = Array> {
    (proptest::collection::vec(0usize..5, 0..4), 0u8..3).prop_map(|(shape, kind)| {
        let count: usize = shape.iter().product();
        let data = match kind {
            0 => Data::F32((0..count).map(|i| i as f32 * 0.5).collect()),
            1 => Data::I32((0..count).map(|i| i as i32 - 3).collect()),
            _ => Data::I64((0..count).map(|i| i as i64 * 1000).collect()),
        };
        Array { shape, data }
    })
}

/// Ways to break a file.
#[derive(Debug, Clone)]
enum Mutation {
    Truncate(usize),
    Flip(Vec<(usize, u8)>),
    /// Replaces the header text (after the length field) with this, keeping the data.
    Header(String),
    /// Sets the header-length field (format 1.0: two bytes) to this.
    HeaderLen(u16),
    /// Sets the format's major version.
    Version(u8),
    /// Appends bytes.
    Extend(Vec<u8>),
}

fn header_text() -> impl Strategy<Value = String> {
    let dim = prop_oneof![
        Just("0".to_string()),
        Just("3".to_string()),
        Just("18446744073709551615".to_string()),
        Just("99999999999999999999999".to_string()),
        Just("4611686018427387904".to_string()),
        Just("-1".to_string()),
        Just("2L".to_string()),
        "[a-z0-9 ]{0,6}",
    ];
    (
        prop_oneof![
            Just("'<f4'"),
            Just("'<i4'"),
            Just("'<i8'"),
            Just("'>f4'"),
            Just("'|b1'"),
            Just("'<f4"),
            Just("")
        ],
        prop_oneof![Just("False"), Just("True"), Just("0"), Just("")],
        proptest::collection::vec(dim, 0..5),
        prop_oneof![Just(")"), Just(""), Just(",)")],
        "[ -~]{0,8}",
    )
        .prop_map(|(descr, order, dims, close, junk)| {
            format!(
                "{{'descr': {descr}, 'fortran_order': {order}, 'shape': ({}{close}, }}{junk}\n",
                dims.join(", ")
            )
        })
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (0usize..200).prop_map(Mutation::Truncate),
        proptest::collection::vec((0usize..200, any::<u8>()), 1..6).prop_map(Mutation::Flip),
        header_text().prop_map(Mutation::Header),
        any::<u16>().prop_map(Mutation::HeaderLen),
        (0u8..6).prop_map(Mutation::Version),
        proptest::collection::vec(any::<u8>(), 1..40).prop_map(Mutation::Extend),
    ]
}

/// The file `bytes` broken by `mutations`, in order.
fn apply(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        match m {
            Mutation::Truncate(at) => bytes.truncate(*at),
            Mutation::Flip(flips) => {
                for (at, value) in flips {
                    if let Some(b) = bytes.get_mut(*at) {
                        *b = *value;
                    }
                }
            }
            Mutation::Header(text) => {
                if bytes.len() >= 10 {
                    let len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
                    let data = bytes.get(10 + len..).unwrap_or(&[]).to_vec();
                    bytes.truncate(8);
                    bytes.extend_from_slice(&(text.len() as u16).to_le_bytes());
                    bytes.extend_from_slice(text.as_bytes());
                    bytes.extend_from_slice(&data);
                }
            }
            Mutation::HeaderLen(len) => {
                if bytes.len() >= 10 {
                    bytes[8..10].copy_from_slice(&len.to_le_bytes());
                }
            }
            Mutation::Version(v) => {
                if bytes.len() > 6 {
                    bytes[6] = *v;
                }
            }
            Mutation::Extend(more) => bytes.extend_from_slice(more),
        }
    }
    bytes
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn valid_files_read_back_as_written(array in array()) {
        let parsed = parse_checked(&npy::to_bytes(&array)).unwrap();
        prop_assert_eq!(parsed, array);
    }

    #[test]
    fn broken_files_give_errors_not_panics(
        array in array(),
        mutations in proptest::collection::vec(mutation(), 1..4),
    ) {
        let _ = parse_checked(&apply(npy::to_bytes(&array), &mutations));
    }

    #[test]
    fn arbitrary_bytes_after_the_magic_give_errors_not_panics(
        tail in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let mut bytes = b"\x93NUMPY".to_vec();
        bytes.extend_from_slice(&tail);
        let _ = parse_checked(&bytes);
        let _ = parse_checked(&tail);
    }
}

/// Fixed cases the fuzzing is built around: each must be an error.
#[test]
fn huge_declared_shapes_are_errors_without_allocating() {
    for shape in [
        "(18446744073709551615,)",
        "(4611686018427387904, 4)",
        "(1073741824, 1073741824)",
        "(65536, 65536, 65536)",
    ] {
        let header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}\n");
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend_from_slice(&[0; 16]);
        assert!(parse_checked(&bytes).is_err(), "{shape}");
    }
    // A format 2.0 header length of 4 GiB.
    let mut bytes = b"\x93NUMPY\x02\x00\xff\xff\xff\xff".to_vec();
    bytes.extend_from_slice(&[b' '; 64]);
    assert!(parse_checked(&bytes).is_err());
}
