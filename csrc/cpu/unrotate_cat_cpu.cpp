// unrotate_cat on the CPU: every output plane is one source plane read through an affine map.
//
// Each direction of each turn is a gather dst[i][j] = src[offset + i * di + j * dj] over a box of
// (i, j), zero outside it (the rows shifted out), with (di, dj) a permutation of (+-S, +-1): turn 0
// and 2 read source rows forwards or backwards (|dj| = 1), turns 1 and 3 read source columns
// (|di| = 1), which are gathered in tiles of kTile output rows so that each source row is read
// kTile elements at a time. Values are copied, never converted: exact in every dtype.
#include "cpu/unrotate_cat_cpu.h"

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>

namespace atbsn {
namespace {

constexpr int64_t kGrainElements = 32 * 1024;  // output elements per parallel task, at least
constexpr int64_t kTile = 16;                  // output rows per column gather

// dst[i][j] = src[offset + i * di + j * dj] for i in [i_begin, i_end), j in [j_begin, j_end); else 0.
struct PlaneMap {
  int64_t offset, di, dj, i_begin, i_end, j_begin, j_end;
};

// The map of turn k, forward (out plane from features plane) or backward, for planes of side s
// and a shift of `shift` rows (see docs/kernel-contract.md for the index formulas).
PlaneMap plane_map(int k, bool backward, int64_t s, int64_t shift) {
  const int64_t kept = std::max<int64_t>(0, s - shift);  // rows of a turn that are not shifted out
  if (backward) {
    switch (k) {
      case 0: return {shift * s, s, 1, 0, kept, 0, s};
      case 1: return {(s - 1) * s + shift, 1, -s, 0, kept, 0, s};
      case 2: return {(s - 1 - shift) * s + s - 1, -s, -1, 0, kept, 0, s};
      default: return {s - 1 - shift, -1, s, 0, kept, 0, s};
    }
  }
  switch (k) {
    case 0: return {-shift * s, s, 1, s - kept, s, 0, s};
    case 1: return {-shift * s + s - 1, -1, s, 0, s, s - kept, s};
    case 2: return {(s - 1 - shift) * s + s - 1, -s, -1, 0, kept, 0, s};
    default: return {(s - 1 - shift) * s, 1, -s, 0, s, 0, kept};
  }
}

template <typename scalar_t>
void gather_plane(const scalar_t* __restrict src, scalar_t* __restrict dst, int64_t s, const PlaneMap& m) {
  std::fill(dst, dst + m.i_begin * s, scalar_t(0));
  std::fill(dst + m.i_end * s, dst + s * s, scalar_t(0));
  for (int64_t i = m.i_begin; i < m.i_end; ++i) {
    std::fill(dst + i * s, dst + i * s + m.j_begin, scalar_t(0));
    std::fill(dst + i * s + m.j_end, dst + (i + 1) * s, scalar_t(0));
  }
  if (m.dj == 1 || m.dj == -1) {
    for (int64_t i = m.i_begin; i < m.i_end; ++i) {
      const scalar_t* row = src + m.offset + i * m.di;
      scalar_t* out = dst + i * s;
      if (m.dj == 1) {
        for (int64_t j = m.j_begin; j < m.j_end; ++j) out[j] = row[j];
      } else {
        for (int64_t j = m.j_begin; j < m.j_end; ++j) out[j] = row[-j];
      }
    }
    return;
  }
  for (int64_t i0 = m.i_begin; i0 < m.i_end; i0 += kTile) {
    const int64_t rows = std::min(kTile, m.i_end - i0);
    for (int64_t j = m.j_begin; j < m.j_end; ++j) {
      const scalar_t* column = src + m.offset + i0 * m.di + j * m.dj;
      for (int64_t r = 0; r < rows; ++r) dst[(i0 + r) * s + j] = column[r * m.di];
    }
  }
}

void check_square(const at::Tensor& t, const char* op, const char* name) {
  TORCH_CHECK(t.dim() == 4 && t.size(2) == t.size(3), op, " (CPU): expected ", name, " [., ., S, S], got shape ", t.sizes());
}

}  // namespace

at::Tensor unrotate_cat_cpu(const at::Tensor& features, int64_t shift) {
  check_square(features, "unrotate_cat", "features");
  TORCH_CHECK(features.size(0) % 4 == 0, "unrotate_cat (CPU): features' batch must hold 4 turns (a multiple of 4), got ",
              features.size(0));
  TORCH_CHECK(shift >= 0, "unrotate_cat (CPU): shift must be >= 0, got ", shift);
  const int64_t n = features.size(0) / 4, c = features.size(1), s = features.size(2);
  const auto fc = features.contiguous();
  auto out = at::empty({n, 4 * c, s, s}, fc.options());
  if (out.numel() == 0) return out;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, fc.scalar_type(), "unrotate_cat_cpu", [&] {
    const scalar_t* src = fc.const_data_ptr<scalar_t>();
    scalar_t* dst = out.mutable_data_ptr<scalar_t>();
    const int64_t plane = s * s;
    at::parallel_for(0, n * 4 * c, std::max<int64_t>(1, kGrainElements / plane), [&](int64_t begin, int64_t end) {
      for (int64_t p = begin; p < end; ++p) {
        const int64_t b = p / (4 * c), k = (p / c) % 4, ch = p % c;
        gather_plane(src + ((k * n + b) * c + ch) * plane, dst + p * plane, s, plane_map(int(k), false, s, shift));
      }
    });
  });
  return out;
}

at::Tensor unrotate_cat_backward_cpu(const at::Tensor& grad_out, int64_t shift) {
  check_square(grad_out, "unrotate_cat_backward", "grad_out");
  TORCH_CHECK(grad_out.size(1) % 4 == 0, "unrotate_cat_backward (CPU): grad_out's channels must hold 4 turns (a multiple of 4), got ",
              grad_out.size(1));
  TORCH_CHECK(shift >= 0, "unrotate_cat_backward (CPU): shift must be >= 0, got ", shift);
  const int64_t n = grad_out.size(0), c = grad_out.size(1) / 4, s = grad_out.size(2);
  const auto gc = grad_out.contiguous();
  auto grad = at::empty({4 * n, c, s, s}, gc.options());
  if (grad.numel() == 0) return grad;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, gc.scalar_type(), "unrotate_cat_backward_cpu", [&] {
    const scalar_t* src = gc.const_data_ptr<scalar_t>();
    scalar_t* dst = grad.mutable_data_ptr<scalar_t>();
    const int64_t plane = s * s;
    at::parallel_for(0, 4 * n * c, std::max<int64_t>(1, kGrainElements / plane), [&](int64_t begin, int64_t end) {
      for (int64_t p = begin; p < end; ++p) {
        const int64_t k = p / (n * c), b = (p / c) % n, ch = p % c;
        gather_plane(src + ((b * 4 + k) * c + ch) * plane, dst + p * plane, s, plane_map(int(k), true, s, shift));
      }
    });
  });
  return grad;
}

}  // namespace atbsn
