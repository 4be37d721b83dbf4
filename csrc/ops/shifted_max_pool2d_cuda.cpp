// CUDA kernels of the shifted max-pool ops (schema: shifted_max_pool2d.cpp; semantics:
// docs/kernel-contract.md). Compiled only with WITH_CUDA: makes the inputs contiguous NCHW,
// allocates the outputs and calls the launchers of cuda/shifted_max_pool2d_kernel.cuh on the
// current stream of the inputs' device.
#ifdef WITH_CUDA

#include <ATen/ATen.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "cuda/shifted_max_pool2d_kernel.cuh"
#include "ops/cuda_dtype.h"

namespace atbsn {
namespace {

// Launch parameters of x [N, C, H, W].
cuda::PoolParams make_params(const at::Tensor& x, const char* op) {
  TORCH_CHECK(x.is_cuda(), op, " (CUDA): x must be a CUDA tensor");
  TORCH_CHECK(x.dim() == 4, op, " (CUDA): expected x [N, C, H, W], got shape ", x.sizes());
  return {x.size(0) * x.size(1), x.size(2), x.size(3), kernel_dtype(x.scalar_type(), op)};
}

at::Tensor shifted_max_pool2d_cuda(const at::Tensor& x) {
  const cuda::PoolParams p = make_params(x, "shifted_max_pool2d");
  const c10::cuda::CUDAGuard guard(x.device());
  const auto xc = x.contiguous();
  auto out = at::empty({x.size(0), x.size(1), x.size(2) / 2, x.size(3) / 2}, xc.options());
  if (out.numel() == 0) return out;
  C10_CUDA_CHECK(cuda::shifted_max_pool2d_forward(p, xc.const_data_ptr(), out.mutable_data_ptr(),
                                                  c10::cuda::getCurrentCUDAStream()));
  return out;
}

at::Tensor shifted_max_pool2d_backward_cuda(const at::Tensor& grad_out, const at::Tensor& x) {
  const cuda::PoolParams p = make_params(x, "shifted_max_pool2d_backward");
  const c10::cuda::CUDAGuard guard(x.device());
  TORCH_CHECK(grad_out.device() == x.device(), "shifted_max_pool2d_backward (CUDA): grad_out must be on ", x.device(),
              ", got ", grad_out.device());
  TORCH_CHECK(grad_out.sizes() == at::IntArrayRef({x.size(0), x.size(1), x.size(2) / 2, x.size(3) / 2}),
              "shifted_max_pool2d_backward (CUDA): grad_out must be [N, C, H/2, W/2], got shape ", grad_out.sizes());
  const auto xc = x.contiguous();
  const auto gc = grad_out.to(x.scalar_type()).contiguous();
  auto grad_x = at::empty(x.sizes(), xc.options());
  if (grad_x.numel() == 0) return grad_x;
  C10_CUDA_CHECK(cuda::shifted_max_pool2d_backward(p, gc.const_data_ptr(), xc.const_data_ptr(),
                                                   grad_x.mutable_data_ptr(), c10::cuda::getCurrentCUDAStream()));
  return grad_x;
}

}  // namespace
}  // namespace atbsn

TORCH_LIBRARY_IMPL(atbsn, CUDA, m) {
  m.impl("shifted_max_pool2d", &atbsn::shifted_max_pool2d_cuda);
  m.impl("shifted_max_pool2d_backward", &atbsn::shifted_max_pool2d_backward_cuda);
}

#endif  // WITH_CUDA
