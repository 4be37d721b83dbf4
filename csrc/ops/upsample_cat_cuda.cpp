// CUDA kernels of the upsample-and-concatenate ops (schema: upsample_cat.cpp; semantics:
// docs/kernel-contract.md). Compiled only with WITH_CUDA: makes the inputs contiguous NCHW,
// allocates the outputs and calls the launchers of cuda/upsample_cat_kernel.cuh on the current
// stream of the inputs' device.
#ifdef WITH_CUDA

#include <ATen/ATen.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <tuple>

#include "cuda/upsample_cat_kernel.cuh"
#include "ops/cuda_dtype.h"

namespace atbsn {
namespace {

at::Tensor upsample_cat_cuda(const at::Tensor& x, const at::Tensor& skip) {
  TORCH_CHECK(x.is_cuda(), "upsample_cat (CUDA): x must be a CUDA tensor");
  TORCH_CHECK(x.dim() == 4, "upsample_cat (CUDA): expected x [N, Cx, h, w], got shape ", x.sizes());
  TORCH_CHECK(skip.device() == x.device(), "upsample_cat (CUDA): skip must be on ", x.device(), ", got ",
              skip.device());
  TORCH_CHECK(skip.scalar_type() == x.scalar_type(), "upsample_cat (CUDA): skip must have x's dtype ",
              x.scalar_type(), ", got ", skip.scalar_type());
  TORCH_CHECK(skip.dim() == 4 && skip.size(0) == x.size(0) && skip.size(2) == 2 * x.size(2) &&
                  skip.size(3) == 2 * x.size(3),
              "upsample_cat (CUDA): skip must be [N, Cs, 2h, 2w] for x of shape ", x.sizes(), ", got shape ",
              skip.sizes());
  const cuda::UpsampleCatParams p{x.size(0), x.size(1), skip.size(1), x.size(2), x.size(3),
                                  kernel_dtype(x.scalar_type(), "upsample_cat")};
  const c10::cuda::CUDAGuard guard(x.device());
  const auto xc = x.contiguous();
  const auto sc = skip.contiguous();
  auto out = at::empty({p.batch, p.x_channels + p.skip_channels, 2 * p.height, 2 * p.width}, xc.options());
  if (out.numel() == 0) return out;
  C10_CUDA_CHECK(cuda::upsample_cat_forward(p, xc.const_data_ptr(), sc.const_data_ptr(), out.mutable_data_ptr(),
                                            c10::cuda::getCurrentCUDAStream()));
  return out;
}

std::tuple<at::Tensor, at::Tensor> upsample_cat_backward_cuda(const at::Tensor& grad_out, int64_t x_channels) {
  TORCH_CHECK(grad_out.is_cuda(), "upsample_cat_backward (CUDA): grad_out must be a CUDA tensor");
  TORCH_CHECK(grad_out.dim() == 4, "upsample_cat_backward (CUDA): expected grad_out [N, Cx + Cs, H, W], got shape ",
              grad_out.sizes());
  TORCH_CHECK(grad_out.size(2) % 2 == 0 && grad_out.size(3) % 2 == 0,
              "upsample_cat_backward (CUDA): grad_out must have even H and W, got shape ", grad_out.sizes());
  TORCH_CHECK(0 <= x_channels && x_channels <= grad_out.size(1),
              "upsample_cat_backward (CUDA): x_channels must be in [0, ", grad_out.size(1), "], got ", x_channels);
  const cuda::UpsampleCatParams p{grad_out.size(0), x_channels, grad_out.size(1) - x_channels, grad_out.size(2) / 2,
                                  grad_out.size(3) / 2, kernel_dtype(grad_out.scalar_type(), "upsample_cat_backward")};
  const c10::cuda::CUDAGuard guard(grad_out.device());
  const auto gc = grad_out.contiguous();
  auto grad_x = at::empty({p.batch, p.x_channels, p.height, p.width}, gc.options());
  auto grad_skip = at::empty({p.batch, p.skip_channels, 2 * p.height, 2 * p.width}, gc.options());
  if (gc.numel() == 0) return {grad_x, grad_skip};
  C10_CUDA_CHECK(cuda::upsample_cat_backward(p, gc.const_data_ptr(), grad_x.mutable_data_ptr(),
                                             grad_skip.mutable_data_ptr(), c10::cuda::getCurrentCUDAStream()));
  return {grad_x, grad_skip};
}

}  // namespace
}  // namespace atbsn

TORCH_LIBRARY_IMPL(atbsn, CUDA, m) {
  m.impl("upsample_cat", &atbsn::upsample_cat_cuda);
  m.impl("upsample_cat_backward", &atbsn::upsample_cat_backward_cuda);
}

#endif  // WITH_CUDA
