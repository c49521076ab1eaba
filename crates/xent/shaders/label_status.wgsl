// Completes the label status of class-index cross-entropy. cross_entropy.wgsl counts the rows
// whose target is outside [0, C) and not ignore_index in status[0], and keeps the first such
// row as 0xffffffff - row in status[1]; this one-thread kernel copies that row's target into
// status[2], so the host can name the row and the value it read.

@group(0) @binding(1) var<storage, read> labels: array<i32>;
@group(0) @binding(2) var<storage, read_write> status: array<u32>;

// Runs once per dispatch of the main kernel, over that dispatch's rows and labels binding.
@compute @workgroup_size(1)
fn main() {
    if (status[0] > 0u) {
        let row = 0xffffffffu - status[1];
        if (row >= params.row_base && row - params.row_base < params.rows) {
            status[2] = bitcast<u32>(labels[params.t_first + row - params.row_base]);
        }
    }
}
