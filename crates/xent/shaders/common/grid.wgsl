// Workgroup indexing for 2-D dispatches.
//
// A device caps each dispatch dimension (65535 on most adapters), so a launch of more
// workgroups is laid out as an (x, y) grid; the host plan picks x and the kernels recover the
// linear workgroup index and skip the few workgroups past the end.

fn linear_group(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.x + wid.y * nwg.x;
}
