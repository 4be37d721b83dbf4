// Host launchers of the CUDA unrotate-and-concatenate of AT-BSN's head input (semantics:
// docs/kernel-contract.md). Plain C++ (no torch headers): a raw pointer to the input with its
// element strides (any layout, 0 for an expanded dimension), a raw pointer to the contiguous NCHW
// output of the same dtype, sizes, and a stream. Each launcher only enqueues work on `stream` and
// returns the first CUDA error it met (cudaSuccess when every launch went through).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "cuda/common.cuh"  // DType

namespace atbsn {
namespace cuda {

// Four turns of batch images, each with channels planes of size x size, shifted down shift rows
// (any shift >= 0; shift >= size shifts every row out). The features are [4 batch, channels,
// size, size], the output [batch, 4 channels, size, size].
struct UnrotateCatParams {
  int64_t batch, channels, size, shift;
  DType dtype;
};

// Element strides of a 4-D input.
struct UnrotateCatStrides {
  int64_t n, c, h, w;
};

// out [N, 4C, S, S]: channel block k is rot90(shift_down(features[kN : kN + N], shift), k) of
// features [4N, C, S, S] (zeros in the rows shifted in).
cudaError_t unrotate_cat_forward(const UnrotateCatParams& p, const void* features, const UnrotateCatStrides& strides,
                                 void* out, cudaStream_t stream);

// grad_features [4N, C, S, S] from grad_out [N, 4C, S, S]: each element of features gets the one
// element of grad_out it was copied to, and 0 in its last shift rows (shifted out).
cudaError_t unrotate_cat_backward(const UnrotateCatParams& p, const void* grad_out, const UnrotateCatStrides& strides,
                                  void* grad_features, cudaStream_t stream);

}  // namespace cuda
}  // namespace atbsn
