// Device-side element types shared by the CUDA kernels: storage T (float, __half, __nv_bfloat16),
// arithmetic in fp32, and a host switch from DType to T. Include from .cu files only.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "cuda/common.cuh"  // DType

namespace atbsn {
namespace cuda {

__device__ __forceinline__ float to_float(float v) { return v; }
__device__ __forceinline__ float to_float(__half v) { return __half2float(v); }
__device__ __forceinline__ float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }

template <typename T>
__device__ __forceinline__ T from_float(float v);
template <>
__device__ __forceinline__ float from_float<float>(float v) { return v; }
template <>
__device__ __forceinline__ __half from_float<__half>(float v) { return __float2half_rn(v); }
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }

template <typename T>
struct Type {
  using type = T;
};

// Calls f(Type<element type of dtype>{}).
template <typename F>
cudaError_t dispatch(DType dtype, F&& f) {
  switch (dtype) {
    case DType::kFloat32:
      return f(Type<float>{});
    case DType::kFloat16:
      return f(Type<__half>{});
    case DType::kBFloat16:
      return f(Type<__nv_bfloat16>{});
  }
  return cudaErrorInvalidValue;
}

}  // namespace cuda
}  // namespace atbsn
