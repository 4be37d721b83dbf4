// CUDA kernels of the blind-spot conv ops (schema: blind_spot_conv2d.cpp; semantics:
// docs/kernel-contract.md). Compiled only with WITH_CUDA: makes the inputs contiguous NCHW,
// allocates the outputs and calls the launchers of cuda/blind_spot_conv2d_kernel.cuh on the
// current stream of the inputs' device.
#ifdef WITH_CUDA

#include <ATen/ATen.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <array>
#include <climits>
#include <optional>
#include <tuple>

#include "cuda/blind_spot_conv2d_kernel.cuh"
#include "ops/cuda_dtype.h"

namespace atbsn {
namespace {

int to_int(int64_t value, const char* what) {
  TORCH_CHECK(value >= 0 && value <= INT_MAX, "blind_spot_conv2d (CUDA): ", what, " = ", value, " is out of range");
  return static_cast<int>(value);
}

// Launch parameters of x [N, Cin, H, W] and weight [Cout, Cin, k, k]; `taps` must outlive them.
cuda::ConvParams make_params(const at::Tensor& x, const at::Tensor& weight, at::IntArrayRef taps, int64_t dilation,
                             std::optional<double> negative_slope) {
  TORCH_CHECK(x.dim() == 4 && weight.dim() == 4 && x.size(1) == weight.size(1) && weight.size(2) == weight.size(3),
              "blind_spot_conv2d (CUDA): expected x [N, Cin, H, W] and weight [Cout, Cin, k, k]");
  TORCH_CHECK(weight.size(3) % 2 == 1 && weight.size(3) <= cuda::kMaxKernelSize,
              "blind_spot_conv2d (CUDA): kernel size must be odd and <= ", cuda::kMaxKernelSize);
  const int64_t area = weight.size(3) * weight.size(3);
  TORCH_CHECK(static_cast<int64_t>(taps.size()) <= area, "blind_spot_conv2d (CUDA): more taps than kernel positions");
  for (int64_t t : taps) TORCH_CHECK(t >= 0 && t < area, "blind_spot_conv2d (CUDA): tap ", t, " out of range");
  TORCH_CHECK(x.size(2) >= 1 && x.size(3) >= 1, "blind_spot_conv2d (CUDA): H and W must be >= 1");
  cuda::ConvParams p;
  p.batch = x.size(0);
  p.in_channels = to_int(x.size(1), "Cin");
  p.out_channels = to_int(weight.size(0), "Cout");
  p.height = to_int(x.size(2), "H");
  p.width = to_int(x.size(3), "W");
  p.kernel_size = static_cast<int>(weight.size(3));
  p.dilation = to_int(dilation, "dilation");
  TORCH_CHECK(p.dilation >= 1, "blind_spot_conv2d (CUDA): dilation must be >= 1");
  p.taps = taps.data();
  p.num_taps = static_cast<int>(taps.size());
  p.activation = negative_slope.has_value();
  p.negative_slope = static_cast<float>(negative_slope.value_or(0.0));
  p.dtype = kernel_dtype(x.scalar_type(), "blind_spot_conv2d");
  return p;
}

// t as a contiguous NCHW tensor of `type` on the device of `like`.
at::Tensor prepare(const at::Tensor& t, const at::Tensor& like) {
  TORCH_CHECK(t.device() == like.device(), "blind_spot_conv2d (CUDA): all tensors must be on ", like.device(),
              ", got one on ", t.device());
  return t.to(like.scalar_type()).contiguous();
}

at::Tensor blind_spot_conv2d_cuda(const at::Tensor& x, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                                  at::IntArrayRef taps, int64_t dilation, std::optional<double> negative_slope) {
  TORCH_CHECK(x.is_cuda(), "blind_spot_conv2d (CUDA): x must be a CUDA tensor");
  const c10::cuda::CUDAGuard guard(x.device());
  const cuda::ConvParams p = make_params(x, weight, taps, dilation, negative_slope);
  auto xc = x.contiguous();
  auto wc = prepare(weight, xc);
  at::Tensor bc = bias.has_value() ? prepare(*bias, xc) : at::Tensor();
  auto out = at::empty({x.size(0), weight.size(0), x.size(2), x.size(3)}, xc.options());
  if (out.numel() == 0) return out;
  C10_CUDA_CHECK(cuda::blind_spot_conv2d_forward(p, xc.const_data_ptr(), wc.const_data_ptr(),
                                                 bc.defined() ? bc.const_data_ptr() : nullptr, out.mutable_data_ptr(),
                                                 c10::cuda::getCurrentCUDAStream()));
  return out;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> blind_spot_conv2d_backward_cuda(
    const at::Tensor& grad_out, const at::Tensor& x, const at::Tensor& weight, const at::Tensor& out,
    at::IntArrayRef taps, int64_t dilation, std::optional<double> negative_slope, std::array<bool, 3> output_mask) {
  TORCH_CHECK(x.is_cuda(), "blind_spot_conv2d_backward (CUDA): x must be a CUDA tensor");
  const c10::cuda::CUDAGuard guard(x.device());
  const cuda::ConvParams p = make_params(x, weight, taps, dilation, negative_slope);
  const auto stream = c10::cuda::getCurrentCUDAStream();
  auto xc = x.contiguous();
  auto wc = prepare(weight, xc);
  auto gc = prepare(grad_out, xc);
  TORCH_CHECK(gc.sizes() == at::IntArrayRef({x.size(0), weight.size(0), x.size(2), x.size(3)}),
              "blind_spot_conv2d_backward (CUDA): grad_out must be [N, Cout, H, W]");
  at::Tensor oc = p.activation ? prepare(out, xc) : at::Tensor();
  TORCH_CHECK(!oc.defined() || oc.sizes() == gc.sizes(), "blind_spot_conv2d_backward (CUDA): out must be [N, Cout, H, W]");
  const void* gate = oc.defined() ? oc.const_data_ptr() : nullptr;
  const auto fp32 = xc.options().dtype(at::kFloat);

  at::Tensor grad_x = at::empty({0}, x.options()), grad_w = at::empty({0}, weight.options());
  at::Tensor grad_b = at::empty({0}, weight.options());
  if (output_mask[1] || output_mask[2]) {
    // fp32 atomics across pixel splits: the sums' order, and so their last bits, vary by run
    // (torch.use_deterministic_algorithms(True) raises here; the Triton backend is deterministic).
    at::globalContext().alertNotDeterministic("atbsn::blind_spot_conv2d_backward (CUDA backend): weight and bias gradients");
  }
  if (output_mask[0]) {
    grad_x = at::empty(x.sizes(), xc.options());
    if (grad_x.numel() > 0) {
      C10_CUDA_CHECK(cuda::blind_spot_conv2d_grad_input(p, gc.const_data_ptr(), gate, wc.const_data_ptr(),
                                                        grad_x.mutable_data_ptr(), stream));
    }
  }
  if (output_mask[1]) {
    grad_w = at::empty(weight.sizes(), wc.options());
    if (grad_w.numel() > 0) {
      auto sums = at::empty({weight.size(0) * weight.size(1) * p.num_taps}, fp32);
      C10_CUDA_CHECK(cuda::blind_spot_conv2d_grad_weight(p, gc.const_data_ptr(), gate, xc.const_data_ptr(),
                                                         sums.mutable_data_ptr<float>(), grad_w.mutable_data_ptr(),
                                                         stream));
    }
    grad_w = grad_w.to(weight.scalar_type());
  }
  if (output_mask[2]) {
    grad_b = at::empty({weight.size(0)}, wc.options());
    if (grad_b.numel() > 0) {
      auto sums = at::empty({weight.size(0)}, fp32);
      C10_CUDA_CHECK(cuda::blind_spot_conv2d_grad_bias(p, gc.const_data_ptr(), gate, sums.mutable_data_ptr<float>(),
                                                       grad_b.mutable_data_ptr(), stream));
    }
    grad_b = grad_b.to(weight.scalar_type());
  }
  return {grad_x, grad_w, grad_b};
}

}  // namespace
}  // namespace atbsn

TORCH_LIBRARY_IMPL(atbsn, CUDA, m) {
  m.impl("blind_spot_conv2d", &atbsn::blind_spot_conv2d_cuda);
  m.impl("blind_spot_conv2d_backward", &atbsn::blind_spot_conv2d_backward_cuda);
}

#endif  // WITH_CUDA
