// CUDA kernels of the unrotate-and-concatenate ops (schema: unrotate_cat.cpp; semantics:
// docs/kernel-contract.md). Compiled only with WITH_CUDA: checks the shapes, allocates the
// contiguous NCHW output and calls the launchers of cuda/unrotate_cat_kernel.cuh on the current
// stream of the input's device. The launchers read the input through its strides, so it is not
// made contiguous first (an expanded gradient is never materialised).
#ifdef WITH_CUDA

#include <ATen/ATen.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "cuda/unrotate_cat_kernel.cuh"
#include "ops/cuda_dtype.h"

namespace atbsn {
namespace {

// Checks of the input `t` (named `name`, expected shape `expected`) that both directions share.
void check_input(const at::Tensor& t, const char* op, const char* name, const char* expected, int64_t shift) {
  TORCH_CHECK(t.is_cuda(), op, " (CUDA): ", name, " must be a CUDA tensor");
  TORCH_CHECK(t.dim() == 4, op, " (CUDA): expected ", name, " ", expected, ", got shape ", t.sizes());
  TORCH_CHECK(t.size(2) == t.size(3), op, " (CUDA): ", name, " must be square (H == W), got shape ", t.sizes());
  TORCH_CHECK(shift >= 0, op, " (CUDA): shift must be >= 0, got ", shift);
}

cuda::UnrotateCatStrides strides_of(const at::Tensor& t) { return {t.stride(0), t.stride(1), t.stride(2), t.stride(3)}; }

at::Tensor unrotate_cat_cuda(const at::Tensor& features, int64_t shift) {
  check_input(features, "unrotate_cat", "features", "[4N, C, S, S]", shift);
  TORCH_CHECK(features.size(0) % 4 == 0,
              "unrotate_cat (CUDA): the batch of features must be 4N (one block per turn), got shape ",
              features.sizes());
  const cuda::UnrotateCatParams p{features.size(0) / 4, features.size(1), features.size(2), shift,
                                  kernel_dtype(features.scalar_type(), "unrotate_cat")};
  const c10::cuda::CUDAGuard guard(features.device());
  auto out = at::empty({p.batch, 4 * p.channels, p.size, p.size}, features.options());
  if (out.numel() == 0) return out;
  C10_CUDA_CHECK(cuda::unrotate_cat_forward(p, features.const_data_ptr(), strides_of(features),
                                            out.mutable_data_ptr(), c10::cuda::getCurrentCUDAStream()));
  return out;
}

at::Tensor unrotate_cat_backward_cuda(const at::Tensor& grad_out, int64_t shift) {
  check_input(grad_out, "unrotate_cat_backward", "grad_out", "[N, 4C, S, S]", shift);
  TORCH_CHECK(grad_out.size(1) % 4 == 0,
              "unrotate_cat_backward (CUDA): the channels of grad_out must be 4C (one block per turn), got shape ",
              grad_out.sizes());
  const cuda::UnrotateCatParams p{grad_out.size(0), grad_out.size(1) / 4, grad_out.size(2), shift,
                                  kernel_dtype(grad_out.scalar_type(), "unrotate_cat_backward")};
  const c10::cuda::CUDAGuard guard(grad_out.device());
  auto grad_features = at::empty({4 * p.batch, p.channels, p.size, p.size}, grad_out.options());
  if (grad_features.numel() == 0) return grad_features;
  C10_CUDA_CHECK(cuda::unrotate_cat_backward(p, grad_out.const_data_ptr(), strides_of(grad_out),
                                             grad_features.mutable_data_ptr(), c10::cuda::getCurrentCUDAStream()));
  return grad_features;
}

}  // namespace
}  // namespace atbsn

TORCH_LIBRARY_IMPL(atbsn, CUDA, m) {
  m.impl("unrotate_cat", &atbsn::unrotate_cat_cuda);
  m.impl("unrotate_cat_backward", &atbsn::unrotate_cat_backward_cuda);
}

#endif  // WITH_CUDA
