// Lane exchanges within a subgroup (for devices created with the subgroup feature).

fn lane_shuffle_xor(v: f32, mask: u32) -> f32 {
    return subgroupShuffleXor(v, mask);
}

fn lane_shuffle(v: f32, lane: u32) -> f32 {
    return subgroupShuffle(v, lane);
}
