// What every CUDA op shares, host-safe (included by the .cu kernels and by the torch glue in
// csrc/ops): the element types the kernels take and the largest kernel they take.
#pragma once

namespace atbsn {
namespace cuda {

enum class DType { kFloat32, kFloat16, kBFloat16 };

// The largest (odd) kernel size of the blind-spot conv kernels; Python's own limit is
// atbsn_kernels._checks.MAX_KERNEL_SIZE.
constexpr int kMaxKernelSize = 11;
constexpr int kMaxTaps = kMaxKernelSize * kMaxKernelSize;

}  // namespace cuda
}  // namespace atbsn
