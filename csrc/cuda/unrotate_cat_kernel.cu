// CUDA kernels of AT-BSN's head input: the features of the four turns of the image, each shifted
// down and turned back, concatenated along the channels in one pass (semantics:
// docs/kernel-contract.md).
//
// features [4N, C, S, S] holds turn k in batch block k; the output [N, 4C, S, S] holds in channel
// block k that turn shifted down `shift` rows in its own frame and turned back,
// rot90(shift_down(turn k), k). Neither the shifted nor the turned maps are ever materialised.
//
//   forward   one thread per output element: it copies turn k's pixel (r - shift, q), with (r, q)
//             the pixel that rot90(., k) moves to the thread's (i, j), bit for bit, or writes 0
//             where r < shift (a row shifted in at the top)
//   backward  one thread per element of grad_features (gather): it copies the grad_out element
//             its features element was copied to, or writes 0 in the last `shift` rows (shifted
//             out). Every output element has one writer: no memset, no atomics.
//
// The input is addressed through its element strides (any layout, expanded gradients included).
#include "cuda/unrotate_cat_kernel.cuh"
#include "cuda/element_types.cuh"
#include "cuda/grid_stride.cuh"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

namespace atbsn {
namespace cuda {
namespace {

// batch images per turn, channels planes per turn of size x size; 0 <= shift <= size.
struct Shape {
  int64_t batch, channels, size, shift;
};

struct Pixel {
  int64_t row, col;
};

// (r, q) with rot90(y, turns, (2, 3))[i, j] = y[r, q] for size x size maps y; turns in 0..3.
__device__ __forceinline__ Pixel rot90_source(int64_t turns, int64_t i, int64_t j, int64_t size) {
  switch (turns) {
    case 0:
      return {i, j};
    case 1:
      return {j, size - 1 - i};
    case 2:
      return {size - 1 - i, size - 1 - j};
    default:
      return {size - 1 - j, i};
  }
}

template <typename T>
__global__ void unrotate_cat_forward_kernel(const T* __restrict__ features, T* __restrict__ out, Shape s,
                                            UnrotateCatStrides f) {
  const int64_t out_channels = 4 * s.channels;
  const int64_t count = s.batch * out_channels * s.size * s.size;
  for (int64_t o = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; o < count; o += int64_t(gridDim.x) * blockDim.x) {
    const int64_t j = o % s.size, rows = o / s.size;
    const int64_t i = rows % s.size, plane = rows / s.size;
    const int64_t n = plane / out_channels, k = plane % out_channels / s.channels, c = plane % s.channels;
    const Pixel p = rot90_source(k, i, j, s.size);
    const int64_t row = p.row - s.shift;  // the features row that shift_down moves to row p.row
    out[o] = row >= 0 ? features[(k * s.batch + n) * f.n + c * f.c + row * f.h + p.col * f.w] : from_float<T>(0.f);
  }
}

template <typename T>
__global__ void unrotate_cat_backward_kernel(const T* __restrict__ grad_out, T* __restrict__ grad_features, Shape s,
                                             UnrotateCatStrides g) {
  const int64_t count = 4 * s.batch * s.channels * s.size * s.size;
  for (int64_t o = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; o < count; o += int64_t(gridDim.x) * blockDim.x) {
    const int64_t b = o % s.size, rows = o / s.size;
    const int64_t a = rows % s.size, plane = rows / s.size;
    const int64_t k = plane / s.channels / s.batch, n = plane / s.channels % s.batch, c = plane % s.channels;
    const int64_t r = a + s.shift;  // the row of turn k's shifted map that features row a moved to
    const Pixel p = rot90_source((4 - k) % 4, r, b, s.size);  // rot90(., -k) = rot90(., 4 - k)
    grad_features[o] = r < s.size ? grad_out[n * g.n + (k * s.channels + c) * g.c + p.row * g.h + p.col * g.w]
                                  : from_float<T>(0.f);
  }
}

bool valid(const UnrotateCatParams& p) {
  return p.batch >= 0 && p.channels >= 0 && p.size >= 0 && p.shift >= 0;
}

// Any shift >= size shifts every row out, as size does: clamped, a + shift cannot overflow.
Shape shape_of(const UnrotateCatParams& p) { return {p.batch, p.channels, p.size, std::min(p.shift, p.size)}; }

// Launches kernel_of(Type<T>{}), the forward or the backward kernel<T> (one signature), over its
// output: 4 N C S^2 elements in both directions.
template <typename KernelOf>
cudaError_t launch(const UnrotateCatParams& p, const void* in, const UnrotateCatStrides& strides, void* out,
                   cudaStream_t stream, KernelOf kernel_of) {
  if (!valid(p)) return cudaErrorInvalidValue;
  const Shape s = shape_of(p);
  const int64_t count = 4 * s.batch * s.channels * s.size * s.size;
  if (count == 0) return cudaSuccess;
  return dispatch(p.dtype, [&](auto type) {
    using T = typename decltype(type)::type;
    kernel_of(type)<<<grid_stride_blocks(count), kGridStrideThreads, 0, stream>>>(static_cast<const T*>(in),
                                                                                  static_cast<T*>(out), s, strides);
    return cudaGetLastError();
  });
}

}  // namespace

cudaError_t unrotate_cat_forward(const UnrotateCatParams& p, const void* features, const UnrotateCatStrides& strides,
                                 void* out, cudaStream_t stream) {
  return launch(p, features, strides, out, stream,
                [](auto type) { return unrotate_cat_forward_kernel<typename decltype(type)::type>; });
}

cudaError_t unrotate_cat_backward(const UnrotateCatParams& p, const void* grad_out, const UnrotateCatStrides& strides,
                                  void* grad_features, cudaStream_t stream) {
  return launch(p, grad_out, strides, grad_features, stream,
                [](auto type) { return unrotate_cat_backward_kernel<typename decltype(type)::type>; });
}

}  // namespace cuda
}  // namespace atbsn
