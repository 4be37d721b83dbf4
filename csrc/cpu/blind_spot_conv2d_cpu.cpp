// Blind-spot convolution on the CPU as "shift-GEMM" over zero-padded planes.
//
// Every image is copied once into zero-padded channel planes [C, Hp * Wp] (Hp = H + 2 pad,
// Wp = W + 2 pad). Output pixel (y, x) is computed at grid position q = y * Wp + x of an H x Wp
// grid (columns x >= W are computed and dropped), where active tap (i, j) reads padded position
// q + dilation * (i * Wp + j). So one tap is one GEMM [Cout, Cin] @ [Cin, len] whose right
// operand is a plain window of the padded planes (no im2col), and masked taps cost nothing.
// Work is split into (image, band of rows) jobs whose accumulators stay in cache; the GEMMs are
// oneDNN's single-threaded batch-reduce GEMM micro-kernel (fp32) or a plain loop (fp64).
#include "cpu/blind_spot_conv2d_cpu.h"

#include <ATen/Parallel.h>
#include <ATen/native/CPUBlas.h>

#include <algorithm>
#include <vector>

namespace atbsn {
namespace {

// Geometry of the padded planes and of the row bands that form the parallel jobs.
struct Geometry {
  int64_t height, width, pad;
  int64_t padded_width;  // Wp = W + 2 pad
  int64_t plane;         // channel stride of padded planes: Hp * Wp + 2 pad spare zeros, rounded up to 16
  int64_t origin;        // plane index of pixel (0, 0): pad * Wp + pad
  int64_t band_rows;     // output rows per job
  int64_t bands;         // jobs per image
  int64_t band_len;      // grid positions of a full band: band_rows * Wp
};

// About this many accumulator elements per job keep a band and its input windows in L2.
constexpr int64_t kBandElements = 48 * 1024;

Geometry make_geometry(int64_t batch, int64_t height, int64_t width, int64_t pad, int64_t channels) {
  Geometry g;
  g.height = height;
  g.width = width;
  g.pad = pad;
  g.padded_width = width + 2 * pad;
  g.plane = ((height + 2 * pad) * g.padded_width + 2 * pad + 15) / 16 * 16;
  g.origin = pad * g.padded_width + pad;
  g.band_rows = std::clamp<int64_t>(kBandElements / std::max<int64_t>(1, channels * g.padded_width), 1, height);
  // At least four jobs per thread so that the threads finish together.
  const int64_t min_jobs = 4 * at::get_num_threads();
  while (g.band_rows > 1 && batch * ((height + g.band_rows - 1) / g.band_rows) < min_jobs) {
    g.band_rows = (g.band_rows + 1) / 2;
  }
  g.bands = (height + g.band_rows - 1) / g.band_rows;
  g.band_len = g.band_rows * g.padded_width;
  return g;
}

// First output row and row count of band `band`.
std::pair<int64_t, int64_t> band_rows(const Geometry& g, int64_t band) {
  const int64_t y0 = band * g.band_rows;
  return {y0, std::min(g.band_rows, g.height - y0)};
}

// Plane offset read by tap (i, j): padded pixel (y + dilation i, x + dilation j) of output (y, x).
int64_t tap_offset(const Geometry& g, int64_t i, int64_t j, int64_t dilation) {
  return dilation * (i * g.padded_width + j);
}

// C[M, N] = A[M, K] @ B[K, N] (+ C if accumulate); row-major with leading dimensions.
void gemm(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b, int64_t ldb, float* c,
          int64_t ldc, bool accumulate) {
  at::native::cpublas::brgemm(m, n, k, lda, ldb, ldc, accumulate, a, b, c);
}

void gemm(int64_t m, int64_t n, int64_t k, const double* a, int64_t lda, const double* b, int64_t ldb, double* c,
          int64_t ldc, bool accumulate) {
  for (int64_t r = 0; r < m; ++r) {
    double* row = c + r * ldc;
    if (!accumulate) std::fill(row, row + n, 0.0);
    for (int64_t p = 0; p < k; ++p) {
      const double scale = a[r * lda + p];
      const double* src = b + p * ldb;
      for (int64_t col = 0; col < n; ++col) row[col] += scale * src[col];
    }
  }
}

// Read access to a [N, C, H, W] tensor in any memory format.
template <typename scalar_t>
struct Nchw {
  const scalar_t* data;
  int64_t stride[4];

  explicit Nchw(const at::Tensor& t)
      : data(t.const_data_ptr<scalar_t>()), stride{t.stride(0), t.stride(1), t.stride(2), t.stride(3)} {}

  // Row (n, c, y); its elements are `stride[3]` apart.
  const scalar_t* row(int64_t n, int64_t c, int64_t y) const {
    return data + n * stride[0] + c * stride[1] + y * stride[2];
  }
};

// Zero-padded planes [N, C, plane]: write_row(n, c, y, dst) fills dst[0, W) with row y of image
// plane (n, c); the border and the spare tail are zero.
template <typename scalar_t, typename WriteRow>
at::Tensor padded_planes(int64_t batch, int64_t channels, const Geometry& g, const at::TensorOptions& options,
                         const WriteRow& write_row) {
  auto planes = at::empty({batch, channels, g.plane}, options);
  scalar_t* base = planes.mutable_data_ptr<scalar_t>();
  const int64_t wp = g.padded_width, interior_end = (g.pad + g.height) * wp;
  at::parallel_for(0, batch * channels, 1, [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      scalar_t* plane = base + p * g.plane;
      std::fill(plane, plane + g.origin, scalar_t(0));  // top border and left pad of row 0
      for (int64_t y = 0; y < g.height; ++y) {
        scalar_t* row = plane + g.origin + y * wp;
        write_row(p / channels, p % channels, y, row);
        std::fill(row + g.width, row + wp, scalar_t(0));  // right pad of row y, left pad of row y + 1
      }
      std::fill(plane + interior_end + g.pad, plane + g.plane, scalar_t(0));  // bottom border and spare tail
    }
  });
  return planes;
}

// x [N, C, H, W] -> padded planes.
template <typename scalar_t>
at::Tensor pad_input(const at::Tensor& x, const Geometry& g) {
  const Nchw<scalar_t> src(x);
  return padded_planes<scalar_t>(x.size(0), x.size(1), g, x.options(), [&](int64_t n, int64_t c, int64_t y, scalar_t* dst) {
    const scalar_t* row = src.row(n, c, y);
    for (int64_t col = 0; col < g.width; ++col) dst[col] = row[col * src.stride[3]];
  });
}

// Pre-activation gradient grad_out * (out > 0 ? 1 : slope) -> padded planes (grad_out as is without activation).
template <typename scalar_t>
at::Tensor pad_pre_activation_grad(const at::Tensor& grad_out, const at::Tensor& out, std::optional<double> slope,
                                   const Geometry& g) {
  if (!slope.has_value()) return pad_input<scalar_t>(grad_out, g);
  const Nchw<scalar_t> grad(grad_out), gate(out);
  const auto s = static_cast<scalar_t>(*slope);
  return padded_planes<scalar_t>(grad_out.size(0), grad_out.size(1), g, grad_out.options(),
                                 [&](int64_t n, int64_t c, int64_t y, scalar_t* dst) {
                                   const scalar_t* gr = grad.row(n, c, y);
                                   const scalar_t* o = gate.row(n, c, y);
                                   for (int64_t col = 0; col < g.width; ++col) {
                                     const scalar_t v = gr[col * grad.stride[3]];
                                     dst[col] = o[col * gate.stride[3]] > scalar_t(0) ? v : v * s;
                                   }
                                 });
}

// A conv over padded planes: one [M, K] matrix and one plane offset per active tap.
struct TapGemms {
  at::Tensor matrices;  // [T, M, K]: output band [M, len] += matrix @ window [K, len]
  std::vector<int64_t> offsets;
};

at::Tensor taps_index(at::IntArrayRef taps) {
  return at::tensor(std::vector<int64_t>(taps.begin(), taps.end()), at::kLong);
}

// Active-tap slices of weight [Cout, Cin, k, k] as [Cout, Cin, T].
at::Tensor tap_slices(const at::Tensor& weight, at::IntArrayRef taps) {
  return weight.flatten(2).index_select(2, taps_index(taps));
}

// Forward: weight[:, :, i, j] [Cout, Cin] at offset (i, j).
TapGemms forward_taps(const at::Tensor& weight, at::IntArrayRef taps, int64_t dilation, const Geometry& g) {
  const int64_t k = weight.size(3);
  TapGemms gemms{tap_slices(weight, taps).permute({2, 0, 1}).contiguous(), {}};
  for (int64_t t : taps) gemms.offsets.push_back(tap_offset(g, t / k, t % k, dilation));
  return gemms;
}

// Input gradient: the conv of the pre-activation gradient with weight[:, :, i, j]^T [Cin, Cout]
// at the mirrored tap (k-1-i, k-1-j).
TapGemms input_grad_taps(const at::Tensor& weight, at::IntArrayRef taps, int64_t dilation, const Geometry& g) {
  const int64_t k = weight.size(3);
  TapGemms gemms{tap_slices(weight, taps).permute({2, 1, 0}).contiguous(), {}};
  for (int64_t t : taps) gemms.offsets.push_back(tap_offset(g, k - 1 - t / k, k - 1 - t % k, dilation));
  return gemms;
}

// Writes one band: out[n, c, y0 + r, x] = act(acc[c, r * Wp + x] + bias[c]) for x < W, where
// act(v) = v > 0 ? v : slope * v and slope = 1 means no activation.
template <typename scalar_t>
void store_band(const scalar_t* acc, const Geometry& g, const scalar_t* bias, scalar_t slope, int64_t rows,
                int64_t channels, scalar_t* out_band, int64_t out_channel_stride) {
  for (int64_t c = 0; c < channels; ++c) {
    const scalar_t b = bias ? bias[c] : scalar_t(0);
    for (int64_t r = 0; r < rows; ++r) {
      const scalar_t* src = acc + c * g.band_len + r * g.padded_width;
      scalar_t* dst = out_band + c * out_channel_stride + r * g.width;
      for (int64_t x = 0; x < g.width; ++x) {
        const scalar_t v = src[x] + b;
        dst[x] = v > scalar_t(0) ? v : v * slope;
      }
    }
  }
}

// out [N, M, H, W] = act(bias + sum over taps of gemms.matrices[t] @ planes[n, :, window_t]),
// planes [N, K, plane]; act as in store_band.
template <typename scalar_t>
void shift_conv(const at::Tensor& planes, const TapGemms& gemms, const Geometry& g, const scalar_t* bias,
                scalar_t slope, at::Tensor& out) {
  const int64_t m = out.size(1), k = planes.size(1), taps = gemms.matrices.size(0);
  const scalar_t* matrices = gemms.matrices.const_data_ptr<scalar_t>();
  const scalar_t* images = planes.const_data_ptr<scalar_t>();
  scalar_t* outputs = out.mutable_data_ptr<scalar_t>();
  at::parallel_for(0, out.size(0) * g.bands, 1, [&](int64_t begin, int64_t end) {
    std::vector<scalar_t> acc(m * g.band_len);  // [M, band_len]
    for (int64_t job = begin; job < end; ++job) {
      const int64_t n = job / g.bands;
      const auto [y0, rows] = band_rows(g, job % g.bands);
      const scalar_t* band = images + n * k * g.plane + y0 * g.padded_width;
      if (taps == 0) std::fill(acc.begin(), acc.end(), scalar_t(0));
      for (int64_t t = 0; t < taps; ++t) {
        gemm(m, rows * g.padded_width, k, matrices + t * m * k, k, band + gemms.offsets[t], g.plane, acc.data(),
             g.band_len, t > 0);
      }
      store_band(acc.data(), g, bias, slope, rows, m, outputs + n * out.stride(0) + y0 * g.width, out.stride(1));
    }
  });
}

// dst[q, c] = src[c * src_stride + q] for q < len, c < channels, in 16 x 16 tiles.
template <typename scalar_t>
void transpose(const scalar_t* src, int64_t src_stride, int64_t channels, int64_t len, scalar_t* dst) {
  constexpr int64_t tile = 16;
  for (int64_t q0 = 0; q0 < len; q0 += tile) {
    for (int64_t c0 = 0; c0 < channels; c0 += tile) {
      for (int64_t q = q0; q < std::min(q0 + tile, len); ++q) {
        for (int64_t c = c0; c < std::min(c0 + tile, channels); ++c) dst[q * channels + c] = src[c * src_stride + q];
      }
    }
  }
}

// Weight gradient of the active taps as [T, Cin, Cout]: for tap t the sum over images and bands
// of x_planes[n, :, window_t] [Cin, len] @ grad_band^T [len, Cout], where grad_band is the band of
// the padded pre-activation gradient on the H x Wp grid (its extra columns read zero padding).
// Per-thread partial sums, added at the end.
template <typename scalar_t>
at::Tensor tap_weight_grads(const at::Tensor& x_planes, const at::Tensor& grad_planes, const std::vector<int64_t>& offsets,
                            const Geometry& g) {
  const int64_t in_channels = x_planes.size(1), out_channels = grad_planes.size(1);
  const int64_t taps = static_cast<int64_t>(offsets.size()), tap_size = in_channels * out_channels;
  auto partial = at::zeros({at::get_num_threads(), taps, in_channels, out_channels}, x_planes.options());
  const scalar_t* images = x_planes.const_data_ptr<scalar_t>();
  const scalar_t* grads = grad_planes.const_data_ptr<scalar_t>();
  scalar_t* sums = partial.mutable_data_ptr<scalar_t>();
  at::parallel_for(0, x_planes.size(0) * g.bands, 1, [&](int64_t begin, int64_t end) {
    std::vector<scalar_t> grad_t(g.band_len * out_channels);  // [len, Cout]
    scalar_t* mine = sums + at::get_thread_num() * taps * tap_size;
    for (int64_t job = begin; job < end; ++job) {
      const int64_t n = job / g.bands;
      const auto [y0, rows] = band_rows(g, job % g.bands);
      const int64_t len = rows * g.padded_width, start = y0 * g.padded_width;
      transpose(grads + n * out_channels * g.plane + g.origin + start, g.plane, out_channels, len, grad_t.data());
      const scalar_t* band = images + n * in_channels * g.plane + start;
      for (int64_t t = 0; t < taps; ++t) {
        gemm(in_channels, out_channels, len, band + offsets[t], g.plane, grad_t.data(), out_channels,
             mine + t * tap_size, out_channels, true);
      }
    }
  });
  return partial.sum(0);
}

// Kernels compute in fp64 for fp64 and in fp32 otherwise.
at::ScalarType compute_type(const at::Tensor& x) {
  return x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
}

Geometry geometry_of(const at::Tensor& x, const at::Tensor& weight, int64_t dilation) {
  return make_geometry(x.size(0), x.size(2), x.size(3), dilation * (weight.size(3) / 2),
                       std::max(x.size(1), weight.size(0)));
}

// grad_x [N, Cin, H, W] from the padded pre-activation gradient.
template <typename scalar_t>
at::Tensor input_grad(const at::Tensor& grad_planes, const at::Tensor& weight, at::IntArrayRef taps, int64_t dilation,
                      const Geometry& g, int64_t in_channels) {
  auto grad_x = at::empty({grad_planes.size(0), in_channels, g.height, g.width}, grad_planes.options());
  shift_conv<scalar_t>(grad_planes, input_grad_taps(weight, taps, dilation, g), g, nullptr, scalar_t(1), grad_x);
  return grad_x;
}

// grad_weight [Cout, Cin, k, k], zero at masked taps.
template <typename scalar_t>
at::Tensor weight_grad(const at::Tensor& x, const at::Tensor& grad_planes, const at::Tensor& weight,
                       at::IntArrayRef taps, int64_t dilation, const Geometry& g) {
  const int64_t k = weight.size(3);
  auto grad_w = at::zeros({weight.size(0), weight.size(1), k * k}, weight.options());
  if (!taps.empty()) {
    std::vector<int64_t> offsets;
    for (int64_t t : taps) offsets.push_back(tap_offset(g, t / k, t % k, dilation));
    auto per_tap = tap_weight_grads<scalar_t>(pad_input<scalar_t>(x, g), grad_planes, offsets, g);  // [T, Cin, Cout]
    grad_w.index_copy_(2, taps_index(taps), per_tap.permute({2, 1, 0}));
  }
  return grad_w.view(weight.sizes());
}

}  // namespace

at::Tensor blind_spot_conv2d_cpu(const at::Tensor& x, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                                 at::IntArrayRef taps, int64_t dilation, std::optional<double> negative_slope) {
  const auto type = compute_type(x);
  auto xc = x.to(type);
  auto wc = weight.to(type);
  auto out = at::empty({x.size(0), weight.size(0), x.size(2), x.size(3)}, xc.options());
  if (out.numel() == 0) return out.to(x.scalar_type());
  const Geometry g = geometry_of(x, weight, dilation);
  at::Tensor bc = bias.has_value() ? bias->to(type).contiguous() : at::Tensor();
  AT_DISPATCH_FLOATING_TYPES(type, "blind_spot_conv2d_cpu", [&] {
    shift_conv<scalar_t>(pad_input<scalar_t>(xc, g), forward_taps(wc, taps, dilation, g), g,
                         bc.defined() ? bc.const_data_ptr<scalar_t>() : nullptr,
                         static_cast<scalar_t>(negative_slope.value_or(1.0)), out);
  });
  return out.to(x.scalar_type());
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> blind_spot_conv2d_backward_cpu(
    const at::Tensor& grad_out, const at::Tensor& x, const at::Tensor& weight, const at::Tensor& out,
    at::IntArrayRef taps, int64_t dilation, std::optional<double> negative_slope, std::array<bool, 3> output_mask) {
  const auto type = compute_type(x);
  auto grad_x = at::empty({0}, x.options()), grad_w = at::empty({0}, weight.options());
  auto grad_b = at::empty({0}, weight.options());
  const Geometry g = geometry_of(x, weight, dilation);
  auto wc = weight.to(type);
  AT_DISPATCH_FLOATING_TYPES(type, "blind_spot_conv2d_backward_cpu", [&] {
    // [N, Cout, plane]: the padded pre-activation gradient, shared by all three gradients.
    auto grad_planes = pad_pre_activation_grad<scalar_t>(grad_out.to(type), out.to(type), negative_slope, g);
    if (output_mask[0]) {
      grad_x = input_grad<scalar_t>(grad_planes, wc, taps, dilation, g, x.size(1)).to(x.scalar_type());
    }
    if (output_mask[1]) {
      grad_w = weight_grad<scalar_t>(x.to(type), grad_planes, wc, taps, dilation, g).to(weight.scalar_type());
    }
    if (output_mask[2]) grad_b = grad_planes.sum({0, 2}).to(weight.scalar_type());
  });
  return {grad_x, grad_w, grad_b};
}

}  // namespace atbsn
