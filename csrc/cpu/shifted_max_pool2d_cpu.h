// C++ CPU kernels of the AT-BSN shifted 2x2 max-pool. Semantics: docs/kernel-contract.md.
#pragma once

#include <ATen/ATen.h>

namespace atbsn {

// out [N, C, H/2, W/2]: 2x2 max-pool (floor) of x [N, C, H, W] shifted down one row (zero row on top).
at::Tensor shifted_max_pool2d_cpu(const at::Tensor& x);

// grad_x [N, C, H, W]: grad_out [N, C, H/2, W/2] routed to the argmax of each window (recomputed
// from x); the gradient of windows won by the zero row is dropped.
at::Tensor shifted_max_pool2d_backward_cpu(const at::Tensor& grad_out, const at::Tensor& x);

}  // namespace atbsn
