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

/// One binding of a kernel: its WGSL variable's name and what it holds. A kernel's slots in
/// binding order are the one source of its layout: the host's bind-group layout, the bind
/// order of every dispatch, and the declarations xent generates come from them, and a test
/// checks every composed shader variant's `@binding` declarations against them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Slot {
    pub(crate) name: &'static str,
    pub(crate) kind: Binding,
}

/// A slot.
pub(crate) const fn slot(name: &'static str, kind: Binding) -> Slot {
    Slot { name, kind }
}

/// One pipeline: a kernel (named by its file) with its bindings in order, for given element
/// types, specialised by override constants, entered at `entry`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct PipelineKey {
    /// The kernel's file under `shaders/` (labels and errors).
    pub(crate) kernel: &'static str,
    /// Its bindings in binding order.
    pub(crate) bindings: &'static [Slot],
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
            .map(|(i, slot)| wgpu::BindGroupLayoutEntry {
                binding: i as u32,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: match slot.kind {
                    Binding::Uniform => wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Uniform,
                        has_dynamic_offset: false,
                        min_binding_size: None,
                    },
                    Binding::Read | Binding::ReadWrite => wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Storage {
                            read_only: slot.kind == Binding::Read,
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
