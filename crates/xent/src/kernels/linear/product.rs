//! The tiled product of fused linear cross-entropy (shaders/matmul.wgsl) and the bias
//! gradient's column sums, cut into dispatches within the loop budget.

use crate::dtype::{Dtype, Types};
use crate::error::{Error, Result};
use crate::gpu::buffers;
use crate::gpu::program::{whole, Program};
use crate::gpu::tensor::{GpuTensor, Window};
use crate::gpu::Gpu;
use crate::kernels::launch::{self, Named};
use crate::kernels::shaders::{Kernel, KernelKey};
use crate::plan::{self, ranges, Grid, WORKGROUP_SIZE};

/// The tile of C each matmul workgroup computes (shaders/matmul.wgsl), a side.
pub(super) const TILE: usize = 64;

/// The depth (K) one product dispatch runs: its loop steps TK = 32 deep, each with a loop of
/// TK and two staging steps, so 16384 make 512 x 35 iterations, within
/// [`plan::MAX_LOOP_TRIPS`]. A deeper product is several dispatches, each adding its part.
pub(super) const PRODUCT_DEPTH: usize = 1 << 14;

/// The rows one column-sum dispatch adds (one loop iteration each and one per block of 32,
/// within [`plan::MAX_LOOP_TRIPS`]); more rows are several dispatches, each adding its part.
pub(super) const COLUMN_SUM_ROWS: usize = 1 << 14;

crate::gpu::params::wgsl_params! {
    /// Mirrors `Params` of shaders/matmul.wgsl.
    struct MatmulParams mirrors ["matmul.wgsl"] {
        m: u32,
        n: u32,
        k: u32,
        bias_first: u32,
        a_first: u32,
        a_i: u32,
        a_k: u32,
        b_first: u32,
        b_k: u32,
        b_j: u32,
        c_first: u32,
        c_i: u32,
    }
}

/// A matrix operand bound as a window, with the element strides of its two indices (row
/// index, column index of the operand as the product reads it).
pub(crate) struct Operand<'a> {
    window: Window<'a>,
    strides: (u32, u32),
    dtype: Dtype,
}

impl<'a> Operand<'a> {
    /// Rows `rows` of a row-major tensor of `cols` columns, read as stored.
    pub(super) fn rows(
        gpu: &Gpu,
        what: &'static str,
        tensor: &GpuTensor<'a>,
        rows: std::ops::Range<usize>,
        cols: usize,
    ) -> Result<Operand<'a>> {
        let window = tensor.rows_window(gpu.limits(), what, rows, cols)?;
        let strides = (window.stride, 1);
        Ok(Operand {
            window,
            strides,
            dtype: tensor.dtype,
        })
    }

    /// The same operand read transposed.
    pub(super) fn transposed(self) -> Operand<'a> {
        let (i, k) = self.strides;
        Operand {
            strides: (k, i),
            ..self
        }
    }
}

/// One product C (m x n) (+)= A (m x k) B (k x n) (+ bias) (see shaders/matmul.wgsl).
pub(crate) struct Product<'a, 'b> {
    pub(super) dims: (usize, usize, usize),
    pub(super) a: &'b Operand<'a>,
    pub(super) b: &'b Operand<'a>,
    pub(super) bias: Option<&'b Window<'a>>,
    pub(super) c: &'b Window<'a>,
    pub(super) accumulate: bool,
}

impl Product<'_, '_> {
    /// The kernel parameters of the part of the product that starts `skip` along A's rows
    /// (column sums) and `depth.start` along the inner dimension, `depth.len()` deep (`rows` rows).
    fn params(
        &self,
        gpu: &Gpu,
        (skip, rows): (usize, usize),
        depth: std::ops::Range<usize>,
    ) -> Result<wgpu::Buffer> {
        let (_, n, _) = self.dims;
        let (a_i, a_k) = self.a.strides;
        let b_k = self.b.strides.0;
        // Offsets within windows the tensors' checks sized, so within u32.
        let offset = |first: u32, steps: usize, stride: u32| -> Result<u32> {
            steps
                .checked_mul(stride as usize)
                .and_then(|o| o.checked_add(first as usize))
                .and_then(|o| u32::try_from(o).ok())
                .ok_or_else(|| Error::TooLarge {
                    what: "an operand of the product".into(),
                    needed: u64::MAX,
                    limit_name: "u32 element index",
                    limit: u64::from(u32::MAX),
                })
        };
        let a_first = offset(self.a.window.first, skip, a_i)?;
        buffers::uniform(
            gpu,
            &MatmulParams {
                m: rows as u32,
                n: n as u32,
                k: depth.len() as u32,
                bias_first: self.bias.map_or(0, |b| b.first),
                a_first: offset(a_first, depth.start, a_k)?,
                a_i,
                a_k,
                b_first: offset(self.b.window.first, depth.start, b_k)?,
                b_k,
                b_j: self.b.strides.1,
                c_first: self.c.first,
                c_i: self.c.stride,
            },
        )
    }

    /// The product's bindings: a placeholder for an absent bias.
    fn bindings<'p>(
        &'p self,
        params: &'p wgpu::Buffer,
        placeholder: &'p wgpu::Buffer,
    ) -> [Named<'p>; 5] {
        let bias = self
            .bias
            .map_or_else(|| whole(placeholder), |b| b.binding.clone());
        [
            ("params", whole(params)),
            ("a", self.a.window.binding.clone()),
            ("b", self.b.window.binding.clone()),
            ("bias", bias),
            ("c", self.c.binding.clone()),
        ]
    }

    /// Adds the product's dispatches: a workgroup per TILE x TILE of C, one dispatch per
    /// [`PRODUCT_DEPTH`] of the inner dimension (the first writes or adds as the product does,
    /// with the bias; the others add).
    pub(super) fn push(
        &self,
        gpu: &Gpu,
        program: &mut Program,
        placeholder: &wgpu::Buffer,
    ) -> Result<()> {
        let (m, n, depth) = self.dims;
        let (x, y) = (n.div_ceil(TILE), m.div_ceil(TILE));
        let max = gpu.limits().max_compute_workgroups_per_dimension as usize;
        if x > max || y > max {
            return Err(Error::TooLarge {
                what: "a block of the product".into(),
                needed: x.max(y) as u64,
                limit_name: "max_compute_workgroups_per_dimension",
                limit: max as u64,
            });
        }
        let grid = Grid {
            x: x as u32,
            y: y as u32,
            groups: (x * y) as u32,
        };
        for (part, range) in ranges(depth.max(1), PRODUCT_DEPTH).enumerate() {
            let first = part == 0;
            let constants = vec![
                ("ACCUMULATE", u32::from(self.accumulate || !first)),
                ("HAS_BIAS", u32::from(self.bias.is_some() && first)),
                ("A_K_FAST", u32::from(self.a.strides.1 == 1)),
                ("B_K_FAST", u32::from(self.b.strides.0 == 1)),
            ];
            let key = KernelKey::typed(Kernel::Matmul, constants, self.types());
            let range = range.start..range.end.min(depth);
            let params = self.params(gpu, (0, m), range)?;
            let bindings = self.bindings(&params, placeholder);
            launch::dispatch(gpu, program, &key, grid, &bindings)?;
        }
        Ok(())
    }

    /// The operands' element types as the product kernel takes them (A as the input, B and
    /// the bias as the gradient slot; see `Kernel::Matmul`).
    fn types(&self) -> Types {
        Types {
            input: self.a.dtype,
            grad: self.b.dtype,
        }
    }

    /// Adds the column sums of A (m x n, as `a` reads it) into C's first row: a thread per
    /// column, one dispatch per [`COLUMN_SUM_ROWS`] rows (the first writes or adds as the
    /// product does, the others add).
    pub(super) fn push_column_sums(
        &self,
        gpu: &Gpu,
        program: &mut Program,
        placeholder: &wgpu::Buffer,
    ) -> Result<()> {
        let (m, n, _) = self.dims;
        let grid = plan::grid(n.div_ceil(WORKGROUP_SIZE as usize) as u64, gpu.limits())?;
        // No rows still write (zeros) where the product writes.
        for (part, rows) in ranges(m.max(1), COLUMN_SUM_ROWS).enumerate() {
            let rows = rows.start..rows.end.min(m);
            let constants = vec![("ACCUMULATE", u32::from(self.accumulate || part > 0))];
            let key = KernelKey {
                entry: "column_sums",
                ..KernelKey::typed(Kernel::Matmul, constants, self.types())
            };
            let params = self.params(gpu, (rows.start, rows.len()), 0..0)?;
            let bindings = self.bindings(&params, placeholder);
            launch::dispatch(gpu, program, &key, grid, &bindings)?;
        }
        Ok(())
    }
}
