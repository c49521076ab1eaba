//! xent's integration tests, one binary: shaders (no GPU), GPU losses against the float64
//! reference on every adapter, errors, and properties (determinism, identities).

#[cfg(not(feature = "bench"))]
compile_error!(
    "xent's tests use its `bench` tools: `cargo test -p xent --features bench` (a `cargo test` \
     of the whole workspace enables it)"
);

mod bind;
mod caches;
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
