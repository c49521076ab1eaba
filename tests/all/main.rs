//! xent's integration tests, one binary: shaders (no GPU), GPU losses against the float64
//! reference on every adapter, errors, and properties (determinism, identities).

mod caches;
mod cli;
mod common;
mod docs;
mod dtypes;
mod errors;
mod failures;
mod focal;
mod forward;
mod gradients;
mod kdim;
mod linear;
mod loops;
mod lse;
mod nll;
mod prepared;
mod properties;
mod random;
mod shaders;
mod shard;
mod short_rows;
mod sizes;
mod softcap;
mod split;
mod subgroups;
mod threads;
