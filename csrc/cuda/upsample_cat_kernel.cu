// CUDA kernels of the U-Net decoder input: nearest 2x upsampling of x and concatenation with skip
// along the channels, in one pass (semantics: docs/kernel-contract.md).
//
// The output [N, Cx + Cs, 2h, 2w] holds x [N, Cx, h, w] upsampled in its first Cx channels and
// skip [N, Cs, 2h, 2w] in the others; the upsampled intermediate is never materialised.
//
//   forward   one thread per output element: it copies x's pixel (row / 2, col / 2) or skip's
//             pixel, by channel, bit for bit
//   backward  one thread per 2x2 block of one channel of grad_out, N * (Cx + Cs) * h * w blocks
//             covering grad_out exactly once. An x channel's thread adds its four values in the
//             order (2i, 2j) + (2i, 2j+1) + (2i+1, 2j) + (2i+1, 2j+1) in fp32 and rounds once into
//             grad_x; a skip channel's thread copies them into grad_skip. Every output element has
//             one writer: no memset, no atomics, the same bits on every run.
#include "cuda/upsample_cat_kernel.cuh"
#include "cuda/element_types.cuh"
#include "cuda/grid_stride.cuh"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace atbsn {
namespace cuda {
namespace {

// height x width is x's image; the output and skip images are 2 height x 2 width.
struct Shape {
  int64_t batch, x_channels, skip_channels, channels, height, width;
};

template <typename T>
__global__ void upsample_cat_forward_kernel(const T* __restrict__ x, const T* __restrict__ skip, T* __restrict__ out,
                                            Shape s) {
  const int64_t out_h = 2 * s.height, out_w = 2 * s.width;
  const int64_t count = s.batch * s.channels * out_h * out_w;
  for (int64_t o = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; o < count; o += int64_t(gridDim.x) * blockDim.x) {
    const int64_t col = o % out_w, rows = o / out_w;
    const int64_t row = rows % out_h, plane = rows / out_h;
    const int64_t n = plane / s.channels, c = plane % s.channels;
    out[o] = c < s.x_channels ? x[((n * s.x_channels + c) * s.height + row / 2) * s.width + col / 2]
                              : skip[((n * s.skip_channels + c - s.x_channels) * out_h + row) * out_w + col];
  }
}

template <typename T>
__global__ void upsample_cat_backward_kernel(const T* __restrict__ grad_out, T* __restrict__ grad_x,
                                             T* __restrict__ grad_skip, Shape s) {
  const int64_t out_h = 2 * s.height, out_w = 2 * s.width;
  const int64_t count = s.batch * s.channels * s.height * s.width;
  for (int64_t o = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; o < count; o += int64_t(gridDim.x) * blockDim.x) {
    const int64_t j = o % s.width, rows = o / s.width;
    const int64_t i = rows % s.height, plane = rows / s.height;
    const int64_t n = plane / s.channels, c = plane % s.channels;
    const T* top = grad_out + (plane * out_h + 2 * i) * out_w + 2 * j;
    const T g00 = top[0], g01 = top[1], g10 = top[out_w], g11 = top[out_w + 1];
    if (c < s.x_channels) {
      const float sum = to_float(g00) + to_float(g01) + to_float(g10) + to_float(g11);  // in this order
      grad_x[((n * s.x_channels + c) * s.height + i) * s.width + j] = from_float<T>(sum);
    } else {
      T* corner = grad_skip + ((n * s.skip_channels + c - s.x_channels) * out_h + 2 * i) * out_w + 2 * j;
      corner[0] = g00;
      corner[1] = g01;
      corner[out_w] = g10;
      corner[out_w + 1] = g11;
    }
  }
}

bool valid(const UpsampleCatParams& p) {
  return p.batch >= 0 && p.x_channels >= 0 && p.skip_channels >= 0 && p.height >= 0 && p.width >= 0;
}

Shape shape_of(const UpsampleCatParams& p) {
  return {p.batch, p.x_channels, p.skip_channels, p.x_channels + p.skip_channels, p.height, p.width};
}

}  // namespace

cudaError_t upsample_cat_forward(const UpsampleCatParams& p, const void* x, const void* skip, void* out,
                                 cudaStream_t stream) {
  if (!valid(p)) return cudaErrorInvalidValue;
  const Shape s = shape_of(p);
  const int64_t count = s.batch * s.channels * (2 * s.height) * (2 * s.width);
  if (count == 0) return cudaSuccess;
  return dispatch(p.dtype, [&](auto type) {
    using T = typename decltype(type)::type;
    upsample_cat_forward_kernel<T><<<grid_stride_blocks(count), kGridStrideThreads, 0, stream>>>(
        static_cast<const T*>(x), static_cast<const T*>(skip), static_cast<T*>(out), s);
    return cudaGetLastError();
  });
}

cudaError_t upsample_cat_backward(const UpsampleCatParams& p, const void* grad_out, void* grad_x, void* grad_skip,
                                  cudaStream_t stream) {
  if (!valid(p)) return cudaErrorInvalidValue;
  const Shape s = shape_of(p);
  const int64_t count = s.batch * s.channels * s.height * s.width;
  if (count == 0) return cudaSuccess;
  return dispatch(p.dtype, [&](auto type) {
    using T = typename decltype(type)::type;
    upsample_cat_backward_kernel<T><<<grid_stride_blocks(count), kGridStrideThreads, 0, stream>>>(
        static_cast<const T*>(grad_out), static_cast<T*>(grad_x), static_cast<T*>(grad_skip), s);
    return cudaGetLastError();
  });
}

}  // namespace cuda
}  // namespace atbsn
