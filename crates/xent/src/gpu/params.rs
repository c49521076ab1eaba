//! Rust mirrors of the kernels' WGSL `Params` uniform structs, declared with
//! [`wgsl_params!`] so that each carries its layout ([`ParamLayout`]) for the tests to hold
//! against the shader (tests/all/shaders.rs): a field reordered, retyped or missing on either
//! side fails there rather than feeding a kernel shifted values.

/// Where each field of a parameter struct lies: what the layout test compares with the
/// WGSL struct of the same name in `files`.
#[derive(Clone, Copy, Debug)]
#[cfg_attr(not(feature = "bench"), allow(dead_code))]
pub struct ParamLayout {
    /// The shader files (as the registry names them) whose `Params` this struct mirrors.
    pub files: &'static [&'static str],
    /// The struct's size in bytes.
    pub size: usize,
    /// Each field's name, byte offset and Rust type (`u32`, `i32` or `f32`; padding fields,
    /// named `_...`, are arrays or words that only fill the struct out).
    pub fields: &'static [(&'static str, usize, &'static str)],
}

/// Declares a `#[repr(C)]` parameter struct mirroring the WGSL `Params` of `files`, with its
/// [`ParamLayout`] as `LAYOUT`.
macro_rules! wgsl_params {
    (
        $(#[$meta:meta])*
        struct $name:ident mirrors [$($file:literal),+] {
            $($field:ident: $ty:ty,)*
        }
    ) => {
        $(#[$meta])*
        #[repr(C)]
        #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
        pub(crate) struct $name {
            $(pub(crate) $field: $ty,)*
        }

        impl $name {
            /// Where each field lies, for the layout test.
            #[cfg_attr(not(feature = "bench"), allow(dead_code))]
            pub(crate) const LAYOUT: crate::gpu::params::ParamLayout =
                crate::gpu::params::ParamLayout {
                    files: &[$($file),+],
                    size: std::mem::size_of::<$name>(),
                    fields: &[$((
                        stringify!($field),
                        std::mem::offset_of!($name, $field),
                        stringify!($ty),
                    ),)*],
                };
        }
    };
}

pub(crate) use wgsl_params;
