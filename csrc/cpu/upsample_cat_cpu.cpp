// upsample_cat on the CPU: one output plane at a time, every element written once.
//
// Forward: plane c < Cx of the output is x's plane c with each pixel repeated into a 2x2 block
// (each input row makes one output row, copied to the row below); the other planes are skip's,
// copied. Backward: one pass over grad_out's planes; plane c < Cx is reduced to its 2x2 block sums
// (row-major order, in float, double for double, rounded once), the others are copied to grad_skip.
#include "cpu/upsample_cat_cpu.h"

#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

namespace atbsn {
namespace {

// Output elements per parallel task, at least: small planes are grouped.
constexpr int64_t kGrainElements = 32 * 1024;

// Rows 2i and 2i + 1 of an upsampled plane [2h, 2w] from row i of x [h, w].
template <typename scalar_t>
void upsample_row(const scalar_t* __restrict src, scalar_t* __restrict dst, int64_t w) {
  for (int64_t j = 0; j < w; ++j) {
    dst[2 * j] = src[j];
    dst[2 * j + 1] = src[j];
  }
  std::memcpy(dst + 2 * w, dst, sizeof(scalar_t) * 2 * w);
}

// Row i of the block sums [H/2, W/2] from rows 2i, 2i + 1 of a gradient plane [H, W].
template <typename scalar_t, typename acc_t = at::opmath_type<scalar_t>>
void block_sum_row(const scalar_t* __restrict top, const scalar_t* __restrict bottom, scalar_t* __restrict dst,
                   int64_t w) {
  for (int64_t j = 0; j < w; ++j) {
    const acc_t sum = static_cast<acc_t>(top[2 * j]) + static_cast<acc_t>(top[2 * j + 1]) +
                      static_cast<acc_t>(bottom[2 * j]) + static_cast<acc_t>(bottom[2 * j + 1]);
    dst[j] = static_cast<scalar_t>(sum);
  }
}

// body(plane) for every plane of [planes, plane_elements], in parallel.
template <typename F>
void for_each_plane(int64_t planes, int64_t plane_elements, const F& body) {
  const int64_t grain = std::max<int64_t>(1, kGrainElements / std::max<int64_t>(1, plane_elements));
  at::parallel_for(0, planes, grain, [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) body(p);
  });
}

}  // namespace

at::Tensor upsample_cat_cpu(const at::Tensor& x, const at::Tensor& skip) {
  TORCH_CHECK(x.dim() == 4 && skip.dim() == 4, "upsample_cat (CPU): expected x [N, Cx, h, w] and skip [N, Cs, 2h, 2w], got ",
              x.sizes(), " and ", skip.sizes());
  const int64_t n = x.size(0), cx = x.size(1), h = x.size(2), w = x.size(3), cs = skip.size(1);
  TORCH_CHECK(skip.size(0) == n && skip.size(2) == 2 * h && skip.size(3) == 2 * w,
              "upsample_cat (CPU): skip must be [N, Cs, 2h, 2w] = [", n, ", Cs, ", 2 * h, ", ", 2 * w, "], got ", skip.sizes());
  TORCH_CHECK(skip.scalar_type() == x.scalar_type(), "upsample_cat (CPU): x and skip must have one dtype, got ",
              x.scalar_type(), " and ", skip.scalar_type());
  const auto xc = x.contiguous();
  const auto sc = skip.contiguous();
  auto out = at::empty({n, cx + cs, 2 * h, 2 * w}, xc.options());
  if (out.numel() == 0) return out;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "upsample_cat_cpu", [&] {
    const scalar_t* src = xc.const_data_ptr<scalar_t>();
    const scalar_t* skip_src = sc.const_data_ptr<scalar_t>();
    scalar_t* dst = out.mutable_data_ptr<scalar_t>();
    const int64_t plane = 4 * h * w;
    for_each_plane(n * (cx + cs), plane, [&](int64_t p) {
      const int64_t b = p / (cx + cs), c = p % (cx + cs);
      scalar_t* out_plane = dst + p * plane;
      if (c >= cx) {
        std::memcpy(out_plane, skip_src + (b * cs + c - cx) * plane, sizeof(scalar_t) * plane);
        return;
      }
      const scalar_t* in_plane = src + (b * cx + c) * h * w;
      for (int64_t i = 0; i < h; ++i) upsample_row(in_plane + i * w, out_plane + 4 * i * w, w);
    });
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor> upsample_cat_backward_cpu(const at::Tensor& grad_out, int64_t x_channels) {
  TORCH_CHECK(grad_out.dim() == 4, "upsample_cat_backward (CPU): expected grad_out [N, Cx + Cs, H, W], got shape ",
              grad_out.sizes());
  const int64_t n = grad_out.size(0), channels = grad_out.size(1), height = grad_out.size(2), width = grad_out.size(3);
  TORCH_CHECK(height % 2 == 0 && width % 2 == 0, "upsample_cat_backward (CPU): grad_out's H and W must be even, got ",
              grad_out.sizes());
  TORCH_CHECK(0 <= x_channels && x_channels <= channels, "upsample_cat_backward (CPU): x_channels must be in 0..",
              channels, ", got ", x_channels);
  const int64_t h = height / 2, w = width / 2, cs = channels - x_channels;
  const auto gc = grad_out.contiguous();
  auto grad_x = at::empty({n, x_channels, h, w}, gc.options());
  auto grad_skip = at::empty({n, cs, height, width}, gc.options());
  if (gc.numel() == 0) return {grad_x, grad_skip};
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, gc.scalar_type(), "upsample_cat_backward_cpu", [&] {
    const scalar_t* src = gc.const_data_ptr<scalar_t>();
    scalar_t* gx = grad_x.mutable_data_ptr<scalar_t>();
    scalar_t* gs = grad_skip.mutable_data_ptr<scalar_t>();
    const int64_t plane = height * width;
    for_each_plane(n * channels, plane, [&](int64_t p) {
      const int64_t b = p / channels, c = p % channels;
      const scalar_t* in_plane = src + p * plane;
      if (c >= x_channels) {
        std::memcpy(gs + (b * cs + c - x_channels) * plane, in_plane, sizeof(scalar_t) * plane);
        return;
      }
      scalar_t* out_plane = gx + (b * x_channels + c) * h * w;
      for (int64_t i = 0; i < h; ++i) block_sum_row(in_plane + 2 * i * width, in_plane + (2 * i + 1) * width, out_plane + i * w, w);
    });
  });
  return {grad_x, grad_skip};
}

}  // namespace atbsn
