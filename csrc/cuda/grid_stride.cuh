// Launch shape of the element-per-thread CUDA kernels (shifted max-pool, upsample_cat): blocks of
// kGridStrideThreads threads, at most kGridStrideMaxBlocks blocks, grid-stride loops beyond that.
#pragma once

#include <algorithm>
#include <cstdint>

namespace atbsn {
namespace cuda {

constexpr int kGridStrideThreads = 256;
constexpr int64_t kGridStrideMaxBlocks = 1 << 16;

// Blocks for `count` elements (at least one).
inline unsigned int grid_stride_blocks(int64_t count) {
  return static_cast<unsigned int>(
      std::clamp<int64_t>((count + kGridStrideThreads - 1) / kGridStrideThreads, 1, kGridStrideMaxBlocks));
}

}  // namespace cuda
}  // namespace atbsn
