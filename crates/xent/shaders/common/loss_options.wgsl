// Override constants every loss kernel takes.

// Whether the loss is reduced (mean or sum: workgroups write (loss, weight) pairs for the batch
// reduction) or not (one value per row or element). Which of mean and sum is a parameter,
// `params.reduction` of each loss's Params (0 none, 1 mean, 2 sum), as it only changes a
// gradient's scale: one pipeline serves both. Whether to reduce stays a constant, since the
// workgroup sum holds barriers, and CPU drivers run barriers under a runtime branch far slower
// (lavapipe: 133 -> 271 ms for CE over 1048576 x 10).
override REDUCED: bool = false;
// Also write the gradient of the loss with respect to the input, scaled by the upstream
// gradient: upstream[i] per row or element for none, upstream[0] for sum, and upstream[0]
// divided by the mean's denominator for mean.
override GRAD: bool = false;
