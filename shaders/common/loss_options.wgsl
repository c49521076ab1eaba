// Override constants every loss kernel takes.

// Reduction of the loss, as the host's `Reduction`: 0 none (one value per row or element),
// 1 mean, 2 sum.
override REDUCTION: u32 = 0u;
// Also write the gradient of the loss with respect to the input, scaled by the upstream
// gradient: upstream[i] per row or element for none, upstream[0] for sum, and upstream[0]
// divided by the mean's denominator for mean.
override GRAD: bool = false;
