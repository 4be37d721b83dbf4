// Shifted 2x2 max-pool on the CPU: one (n, c) plane at a time, one pass over the plane.
//
// Output row i pools input rows 2i - 1 (row -1 is the zero row) and 2i. The window's slots are
// row-major, (2i-1, 2j), (2i-1, 2j+1), (2i, 2j), (2i, 2j+1), and the argmax follows PyTorch's
// max_pool2d: a slot replaces the running maximum when it is strictly greater or NaN, so the
// first maximum wins ties and the last NaN wins. Values are compared in float (double for
// double); the output is the winning input value, so it is exact. The zero row is a row of zeros
// read like any other row; in the backward its gradients go to a scratch row that is dropped.
// The backward recomputes the argmax from x and writes every element of grad_x exactly once.
#include "cpu/shifted_max_pool2d_cpu.h"

#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <type_traits>
#include <vector>

namespace atbsn {
namespace {

// Input elements per parallel task, at least: small planes are grouped.
constexpr int64_t kGrainElements = 32 * 1024;

// Running maximum of a window and its slot.
template <typename acc_t>
struct WindowMax {
  acc_t value;
  int slot;
};

template <typename acc_t>
inline void take(WindowMax<acc_t>& m, acc_t v, int slot) {
  const bool better = v > m.value || std::isnan(v);
  m.value = better ? v : m.value;
  m.slot = better ? slot : m.slot;
}

// Maximum and argmax slot of window j of the row pair (top, bottom).
template <typename scalar_t, typename acc_t = at::opmath_type<scalar_t>>
inline WindowMax<acc_t> window_max(const scalar_t* top, const scalar_t* bottom, int64_t j) {
  WindowMax<acc_t> m{static_cast<acc_t>(top[2 * j]), 0};
  take(m, static_cast<acc_t>(top[2 * j + 1]), 1);
  take(m, static_cast<acc_t>(bottom[2 * j]), 2);
  take(m, static_cast<acc_t>(bottom[2 * j + 1]), 3);
  return m;
}

// out[j] = max of window j, j < wo.
template <typename scalar_t>
void pool_row(const scalar_t* top, const scalar_t* bottom, scalar_t* out, int64_t wo) {
  for (int64_t j = 0; j < wo; ++j) out[j] = static_cast<scalar_t>(window_max(top, bottom, j).value);
}

// g where `keep`, else +0, as a bit mask: unlike a select between floats, this lets the loop vectorize.
template <typename scalar_t>
inline scalar_t keep_if(scalar_t g, bool keep) {
  using bits_t = std::conditional_t<sizeof(scalar_t) == 8, uint64_t,
                                    std::conditional_t<sizeof(scalar_t) == 4, uint32_t, uint16_t>>;
  static_assert(sizeof(bits_t) == sizeof(scalar_t));
  return std::bit_cast<scalar_t>(static_cast<bits_t>(std::bit_cast<bits_t>(g) & -static_cast<bits_t>(keep)));
}

// Gradient rows gtop, gbottom [width]: grad[j] at the argmax of window j, zero elsewhere.
template <typename scalar_t>
void route_row(const scalar_t* top, const scalar_t* bottom, const scalar_t* grad, scalar_t* gtop, scalar_t* gbottom,
               int64_t wo, int64_t width) {
  for (int64_t j = 0; j < wo; ++j) {
    const int slot = window_max(top, bottom, j).slot;
    const scalar_t g = grad[j];
    gtop[2 * j] = keep_if(g, slot == 0);
    gtop[2 * j + 1] = keep_if(g, slot == 1);
    gbottom[2 * j] = keep_if(g, slot == 2);
    gbottom[2 * j + 1] = keep_if(g, slot == 3);
  }
  std::fill(gtop + 2 * wo, gtop + width, scalar_t(0));
  std::fill(gbottom + 2 * wo, gbottom + width, scalar_t(0));
}

// Per-task rows: the zero row (input row -1) and a scratch row for its dropped gradients.
template <typename scalar_t>
struct EdgeRows {
  std::vector<scalar_t> zero, scratch;
  explicit EdgeRows(int64_t width) : zero(width, scalar_t(0)), scratch(width) {}
};

// Input row 2i - 1 of a plane [h, w]: the zero row for i == 0.
template <typename scalar_t>
const scalar_t* top_row(const scalar_t* plane, int64_t i, int64_t w, const EdgeRows<scalar_t>& edge) {
  return i == 0 ? edge.zero.data() : plane + (2 * i - 1) * w;
}

// One plane x [h, w] -> out [h / 2, w / 2].
template <typename scalar_t>
void forward_plane(const scalar_t* x, scalar_t* out, int64_t h, int64_t w, const EdgeRows<scalar_t>& edge) {
  const int64_t wo = w / 2;
  for (int64_t i = 0; i < h / 2; ++i) pool_row(top_row(x, i, w, edge), x + 2 * i * w, out + i * wo, wo);
}

// One plane: grad_x [h, w] from x [h, w] and grad [h / 2, w / 2]; rows no window reads get zeros.
template <typename scalar_t>
void backward_plane(const scalar_t* x, const scalar_t* grad, scalar_t* gx, int64_t h, int64_t w,
                    EdgeRows<scalar_t>& edge) {
  const int64_t ho = h / 2, wo = w / 2;
  for (int64_t i = 0; i < ho; ++i) {
    scalar_t* gtop = i == 0 ? edge.scratch.data() : gx + (2 * i - 1) * w;
    route_row(top_row(x, i, w, edge), x + 2 * i * w, grad + i * wo, gtop, gx + 2 * i * w, wo, w);
  }
  std::fill(gx + std::max<int64_t>(0, 2 * ho - 1) * w, gx + h * w, scalar_t(0));
}

// body(plane) for every plane of [planes, h, w], in parallel; each task gets its own EdgeRows.
template <typename scalar_t, typename F>
void for_each_plane(int64_t planes, int64_t h, int64_t w, const F& body) {
  const int64_t grain = std::max<int64_t>(1, kGrainElements / std::max<int64_t>(1, h * w));
  at::parallel_for(0, planes, grain, [&](int64_t begin, int64_t end) {
    EdgeRows<scalar_t> edge(w);
    for (int64_t p = begin; p < end; ++p) body(p, edge);
  });
}

void check_input(const at::Tensor& x, const char* op) {
  TORCH_CHECK(x.dim() == 4, op, " (CPU): expected x [N, C, H, W], got shape ", x.sizes());
}

}  // namespace

at::Tensor shifted_max_pool2d_cpu(const at::Tensor& x) {
  check_input(x, "shifted_max_pool2d");
  const auto xc = x.contiguous();
  const int64_t h = x.size(2), w = x.size(3);
  auto out = at::empty({x.size(0), x.size(1), h / 2, w / 2}, xc.options());
  if (out.numel() == 0) return out;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "shifted_max_pool2d_cpu", [&] {
    const scalar_t* src = xc.const_data_ptr<scalar_t>();
    scalar_t* dst = out.mutable_data_ptr<scalar_t>();
    const int64_t out_plane = (h / 2) * (w / 2);
    for_each_plane<scalar_t>(x.size(0) * x.size(1), h, w, [&](int64_t p, EdgeRows<scalar_t>& edge) {
      forward_plane(src + p * h * w, dst + p * out_plane, h, w, edge);
    });
  });
  return out;
}

at::Tensor shifted_max_pool2d_backward_cpu(const at::Tensor& grad_out, const at::Tensor& x) {
  check_input(x, "shifted_max_pool2d_backward");
  const int64_t h = x.size(2), w = x.size(3);
  TORCH_CHECK(grad_out.sizes() == at::IntArrayRef({x.size(0), x.size(1), h / 2, w / 2}),
              "shifted_max_pool2d_backward (CPU): grad_out must be [N, C, H/2, W/2], got shape ", grad_out.sizes());
  const auto xc = x.contiguous();
  const auto gc = grad_out.to(x.scalar_type()).contiguous();
  auto grad_x = at::empty(x.sizes(), xc.options());
  if (grad_x.numel() == 0) return grad_x;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "shifted_max_pool2d_backward_cpu", [&] {
    const scalar_t* src = xc.const_data_ptr<scalar_t>();
    const scalar_t* grad = gc.const_data_ptr<scalar_t>();
    scalar_t* dst = grad_x.mutable_data_ptr<scalar_t>();
    const int64_t out_plane = (h / 2) * (w / 2);
    for_each_plane<scalar_t>(x.size(0) * x.size(1), h, w, [&](int64_t p, EdgeRows<scalar_t>& edge) {
      backward_plane(src + p * h * w, grad + p * out_plane, dst + p * h * w, h, w, edge);
    });
  });
  return grad_x;
}

}  // namespace atbsn
