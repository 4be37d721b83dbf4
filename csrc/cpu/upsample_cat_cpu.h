// C++ CPU kernels of upsample_cat: a U-Net decoder's input in one pass. Semantics: docs/kernel-contract.md.
#pragma once

#include <ATen/ATen.h>

#include <tuple>

namespace atbsn {

// out [N, Cx + Cs, 2h, 2w]: x [N, Cx, h, w] upsampled 2x (nearest), then skip [N, Cs, 2h, 2w].
at::Tensor upsample_cat_cpu(const at::Tensor& x, const at::Tensor& skip);

// (grad_x [N, Cx, H/2, W/2], grad_skip [N, Cs, H, W]) from grad_out [N, Cx + Cs, H, W]: the 2x2 block
// sums of the first x_channels channels, and a copy of the others.
std::tuple<at::Tensor, at::Tensor> upsample_cat_backward_cpu(const at::Tensor& grad_out, int64_t x_channels);

}  // namespace atbsn
