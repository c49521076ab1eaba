//! Pipelines: a kernel's binding layout and specialisation as a cache key, and a compiled
//! pipeline with the layout its bind groups are made for.

use crate::dtype::Types;

/// What a binding of a kernel holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Binding {
    /// A uniform buffer (the kernel's `Params` struct).
    Uniform,
    /// A storage buffer the kernel only reads.
    Read,
    /// A storage buffer the kernel writes.
    ReadWrite,
}

/// One pipeline: a kernel (named by its file) with its bindings in order, for given element
/// types, specialised by override constants, entered at `entry`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct PipelineKey {
    /// The kernel's file under `shaders/` (labels and errors).
    pub(crate) kernel: &'static str,
    /// Its bindings in binding order.
    pub(crate) bindings: &'static [Binding],
    /// `(override name, value)`, sorted by name; booleans are 0 or 1.
    pub(crate) constants: Vec<(&'static str, u32)>,
    /// Element types of the input and of the gradient.
    pub(crate) types: Types,
    /// The entry point.
    pub(crate) entry: &'static str,
}

impl PipelineKey {
    /// The variant in words, for errors: element types, entry point and constants.
    pub(crate) fn variant(&self) -> String {
        let constants: Vec<String> = self
            .constants
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect();
        format!(
            "{:?} input, {:?} gradient, entry {}, {}",
            self.types.input,
            self.types.grad,
            self.entry,
            constants.join(" ")
        )
    }

    /// The bind-group layout entries of its bindings.
    pub(crate) fn layout_entries(&self) -> Vec<wgpu::BindGroupLayoutEntry> {
        self.bindings
            .iter()
            .enumerate()
            .map(|(i, b)| wgpu::BindGroupLayoutEntry {
                binding: i as u32,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: match b {
                    Binding::Uniform => wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Uniform,
                        has_dynamic_offset: false,
                        min_binding_size: None,
                    },
                    Binding::Read | Binding::ReadWrite => wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Storage {
                            read_only: *b == Binding::Read,
                        },
                        has_dynamic_offset: false,
                        min_binding_size: None,
                    },
                },
                count: None,
            })
            .collect()
    }
}

/// A compiled pipeline and the bind-group layout its bind groups are made for.
#[derive(Clone, Debug)]
pub(crate) struct Pipeline {
    pub(crate) pipeline: wgpu::ComputePipeline,
    pub(crate) layout: wgpu::BindGroupLayout,
    pub(crate) label: &'static str,
}
