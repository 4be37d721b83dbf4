// Torch glue shared by the CUDA ops: the kernels' DType of a torch dtype.
#pragma once

#include <ATen/ATen.h>

#include "cuda/common.cuh"  // DType

namespace atbsn {

// DType of `type` for the CUDA launchers; float32, float16 and bfloat16 only (`op` names the caller in the error).
inline cuda::DType kernel_dtype(at::ScalarType type, const char* op) {
  TORCH_CHECK(type == at::kFloat || type == at::kHalf || type == at::kBFloat16, op, " (CUDA): dtype ", type,
              " is not supported; use float32, float16 or bfloat16 (float64 runs on the CPU backend)");
  return type == at::kFloat ? cuda::DType::kFloat32 : type == at::kHalf ? cuda::DType::kFloat16 : cuda::DType::kBFloat16;
}

}  // namespace atbsn
