// C++ CPU kernels of the blind-spot (masked) convolution. Semantics: docs/kernel-contract.md.
#pragma once

#include <ATen/ATen.h>

#include <array>
#include <optional>
#include <string>
#include <tuple>

namespace atbsn {

// out [N, Cout, H, W] = act(bias + sum over active taps of the dilated 'same' conv of x [N, Cin, H, W]).
at::Tensor blind_spot_conv2d_cpu(const at::Tensor& x, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                                 at::IntArrayRef taps, int64_t dilation, std::optional<double> negative_slope);

// (grad_x [N, Cin, H, W], grad_weight [Cout, Cin, k, k], grad_bias [Cout]); unrequested ones are empty.
std::tuple<at::Tensor, at::Tensor, at::Tensor> blind_spot_conv2d_backward_cpu(
    const at::Tensor& grad_out, const at::Tensor& x, const at::Tensor& weight, const at::Tensor& out,
    at::IntArrayRef taps, int64_t dilation, std::optional<double> negative_slope, std::array<bool, 3> output_mask);

// How the CPU kernels run here: the microkernels' ISA and the cache sizes the blocking comes from.
// Throws std::invalid_argument for a bad ATBSN_CPU_ISA.
std::string cpu_kernel_config();

}  // namespace atbsn
