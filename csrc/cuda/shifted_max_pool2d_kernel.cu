// CUDA kernels of the AT-BSN shifted 2x2 max-pool (semantics: docs/kernel-contract.md).
//
// Window (i, j) reads input rows 2i - 1 (row -1 is the zero row) and 2i, columns 2j and 2j + 1,
// in row-major slot order 0..3. Its argmax follows PyTorch's max_pool2d: a slot replaces the
// running maximum when it is strictly greater or NaN (compared in fp32), so the first maximum
// wins ties and the last NaN wins; the output is the winning stored value, bit for bit.
//
//   forward   one thread per output element
//   backward  one thread per window of the extended grid (H/2 + 1) x ceil(W/2), which covers every
//             input element exactly once: it writes grad_out at the argmax and zeros elsewhere
//             (windows past the output grid, and the zero row's slots, have no gradient), so
//             grad_x needs neither a memset nor atomics.
#include "cuda/shifted_max_pool2d_kernel.cuh"
#include "cuda/element_types.cuh"
#include "cuda/grid_stride.cuh"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace atbsn {
namespace cuda {
namespace {

struct Shape {
  int64_t planes, height, width, out_height, out_width;
};

// Running maximum of a window: compare key, stored value, slot.
template <typename T>
struct Winner {
  float key;
  T value;
  int slot;
};

template <typename T>
__device__ __forceinline__ void take(Winner<T>& w, T v, int slot) {
  const float key = to_float(v);
  if (key > w.key || isnan(key)) w = {key, v, slot};
}

// Maximum of window (i, j) of plane `plane`; i < out_height, j < out_width.
template <typename T>
__device__ __forceinline__ Winner<T> window_max(const T* __restrict__ x, const Shape& s, int64_t plane, int64_t i,
                                                int64_t j) {
  const int64_t bottom = (plane * s.height + 2 * i) * s.width + 2 * j;
  Winner<T> w{0.f, from_float<T>(0.f), 0};  // the zero row: slot 1 never beats slot 0
  if (i > 0) {
    w = {to_float(x[bottom - s.width]), x[bottom - s.width], 0};
    take(w, x[bottom - s.width + 1], 1);
  }
  take(w, x[bottom], 2);
  take(w, x[bottom + 1], 3);
  return w;
}

template <typename T>
__global__ void pool_forward_kernel(const T* __restrict__ x, T* __restrict__ out, Shape s) {
  const int64_t count = s.planes * s.out_height * s.out_width;
  for (int64_t o = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; o < count; o += int64_t(gridDim.x) * blockDim.x) {
    const int64_t rows = o / s.out_width;
    out[o] = window_max(x, s, rows / s.out_height, rows % s.out_height, o % s.out_width).value;
  }
}

template <typename T>
__global__ void pool_backward_kernel(const T* __restrict__ grad_out, const T* __restrict__ x, T* __restrict__ grad_x,
                                     Shape s) {
  const int64_t ext_h = s.height / 2 + 1, ext_w = (s.width + 1) / 2;
  const int64_t count = s.planes * ext_h * ext_w;
  const T z = from_float<T>(0.f);
  for (int64_t o = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; o < count; o += int64_t(gridDim.x) * blockDim.x) {
    const int64_t j = o % ext_w, rows = o / ext_w;
    const int64_t i = rows % ext_h, plane = rows / ext_h;
    int slot = -1;
    T g = z;
    if (i < s.out_height && j < s.out_width) {
      slot = window_max(x, s, plane, i, j).slot;
      g = grad_out[(plane * s.out_height + i) * s.out_width + j];
    }
    const int64_t bottom = (plane * s.height + 2 * i) * s.width + 2 * j;
    const bool right = 2 * j + 1 < s.width;
    if (i > 0) {
      grad_x[bottom - s.width] = slot == 0 ? g : z;
      if (right) grad_x[bottom - s.width + 1] = slot == 1 ? g : z;
    }
    if (2 * i < s.height) {
      grad_x[bottom] = slot == 2 ? g : z;
      if (right) grad_x[bottom + 1] = slot == 3 ? g : z;
    }
  }
}

bool valid(const PoolParams& p) { return p.planes >= 0 && p.height >= 0 && p.width >= 0; }

Shape shape_of(const PoolParams& p) { return {p.planes, p.height, p.width, p.height / 2, p.width / 2}; }

}  // namespace

cudaError_t shifted_max_pool2d_forward(const PoolParams& p, const void* x, void* out, cudaStream_t stream) {
  if (!valid(p)) return cudaErrorInvalidValue;
  const Shape s = shape_of(p);
  const int64_t count = s.planes * s.out_height * s.out_width;
  if (count == 0) return cudaSuccess;
  return dispatch(p.dtype, [&](auto type) {
    using T = typename decltype(type)::type;
    pool_forward_kernel<T><<<grid_stride_blocks(count), kGridStrideThreads, 0, stream>>>(
        static_cast<const T*>(x), static_cast<T*>(out), s);
    return cudaGetLastError();
  });
}

cudaError_t shifted_max_pool2d_backward(const PoolParams& p, const void* grad_out, const void* x, void* grad_x,
                                        cudaStream_t stream) {
  if (!valid(p)) return cudaErrorInvalidValue;
  const Shape s = shape_of(p);
  const int64_t count = s.planes * (s.height / 2 + 1) * ((s.width + 1) / 2);
  if (s.planes * s.height * s.width == 0) return cudaSuccess;
  return dispatch(p.dtype, [&](auto type) {
    using T = typename decltype(type)::type;
    pool_backward_kernel<T><<<grid_stride_blocks(count), kGridStrideThreads, 0, stream>>>(
        static_cast<const T*>(grad_out), static_cast<const T*>(x), static_cast<T*>(grad_x), s);
    return cudaGetLastError();
  });
}

}  // namespace cuda
}  // namespace atbsn
