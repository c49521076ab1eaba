//! What the `xent` command reads and writes besides the library's losses: NumPy `.npy` files
//! ([`npy`]). The command itself is this package's `xent` binary (`cargo install --path
//! crates/xent-cli`); this library exists so that its file format is tested on its own.
//!
//! ```
//! use xent_cli::npy::{self, Array, Data};
//!
//! let array = Array::f32(vec![2, 2], vec![1.0, 2.0, 3.0, 4.0]);
//! let back = npy::parse(&npy::to_bytes(&array))?;
//! assert_eq!(back.shape, [2, 2]);
//! assert_eq!(back.data, Data::F32(vec![1.0, 2.0, 3.0, 4.0]));
//! # Ok::<(), npy::NpyError>(())
//! ```

#![warn(missing_docs)]

pub mod npy;
