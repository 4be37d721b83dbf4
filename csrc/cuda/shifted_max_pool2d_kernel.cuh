// Host launchers of the CUDA shifted 2x2 max-pool (semantics: docs/kernel-contract.md).
// Plain C++ (no torch headers): raw pointers to contiguous NCHW tensors of one dtype, sizes, and
// a stream. Each launcher only enqueues work on `stream` and returns the first CUDA error it met
// (cudaSuccess when every launch went through).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "cuda/common.cuh"  // DType

namespace atbsn {
namespace cuda {

// planes = N * C images of height x width; the output is height / 2 x width / 2 per plane.
struct PoolParams {
  int64_t planes, height, width;
  DType dtype;
};

// out [N, C, H/2, W/2] = 2x2 max-pool of x [N, C, H, W] shifted down one row (zero row on top).
cudaError_t shifted_max_pool2d_forward(const PoolParams& p, const void* x, void* out, cudaStream_t stream);

// grad_x [N, C, H, W]: grad_out [N, C, H/2, W/2] at the argmax of each window, zero elsewhere.
cudaError_t shifted_max_pool2d_backward(const PoolParams& p, const void* grad_out, const void* x, void* grad_x,
                                        cudaStream_t stream);

}  // namespace cuda
}  // namespace atbsn
