// Host launchers of the CUDA upsample-and-concatenate (semantics: docs/kernel-contract.md).
// Plain C++ (no torch headers): raw pointers to contiguous NCHW tensors of one dtype, sizes, and
// a stream. Each launcher only enqueues work on `stream` and returns the first CUDA error it met
// (cudaSuccess when every launch went through).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "cuda/common.cuh"  // DType

namespace atbsn {
namespace cuda {

// batch images; x has x_channels planes of height x width, skip has skip_channels planes of
// 2 height x 2 width, the output x_channels + skip_channels planes of 2 height x 2 width.
struct UpsampleCatParams {
  int64_t batch, x_channels, skip_channels, height, width;
  DType dtype;
};

// out [N, Cx + Cs, 2h, 2w] = cat(nearest 2x upsampling of x [N, Cx, h, w], skip [N, Cs, 2h, 2w]).
cudaError_t upsample_cat_forward(const UpsampleCatParams& p, const void* x, const void* skip, void* out,
                                 cudaStream_t stream);

// From grad_out [N, Cx + Cs, 2h, 2w]: grad_x [N, Cx, h, w], the 2x2 block sums of its first Cx
// channels (in fp32, one rounding), and grad_skip [N, Cs, 2h, 2w], a copy of the others.
cudaError_t upsample_cat_backward(const UpsampleCatParams& p, const void* grad_out, void* grad_x, void* grad_skip,
                                  cudaStream_t stream);

}  // namespace cuda
}  // namespace atbsn
