// Blind-spot convolution on the CPU as "shift-GEMM": every image is zero-padded once into a
// channels-last plane [positions, C], so for output position q of an H x Wp grid (Wp = padded
// width; columns >= W are discarded) the input pixel under active tap t is simply row
// q + offset_t. Each active tap is then one GEMM on a contiguous block of rows of the padded
// image: no im2col copy, and masked taps cost nothing. Work is split into (image, band of rows)
// jobs whose operands stay in cache.
#include "cpu/blind_spot_conv2d_cpu.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdlib>
#include <vector>

namespace atbsn {
namespace {

// Padded, flattened geometry shared by the forward and backward passes.
struct Layout {
  int64_t height, width, pad, padded_width;
  int64_t plane;      // elements per padded channel: (H + 2 pad + 1) * Wp; the spare zero row keeps windows in range
  int64_t band_rows;  // output rows per job
  int64_t bands;      // jobs per image
};

Layout make_layout(int64_t batch, int64_t height, int64_t width, int64_t pad, int64_t channels) {
  Layout l;
  l.height = height;
  l.width = width;
  l.pad = pad;
  l.padded_width = width + 2 * pad;
  l.plane = (height + 2 * pad + 1) * l.padded_width;
  // About 64K accumulator elements per job keeps the output band and its input windows in L2.
  static const int64_t target = std::getenv("ATBSN_BAND") ? std::atoll(std::getenv("ATBSN_BAND")) : 65536;
  const int64_t target_rows = std::max<int64_t>(1, target / std::max<int64_t>(1, channels * l.padded_width));
  l.band_rows = std::min(height, target_rows);
  const int64_t min_jobs = 4 * at::get_num_threads();
  while (l.band_rows > 1 && batch * ((height + l.band_rows - 1) / l.band_rows) < min_jobs) {
    l.band_rows = (l.band_rows + 1) / 2;
  }
  l.bands = (height + l.band_rows - 1) / l.band_rows;
  return l;
}

// Offset of tap (i, j) in a padded plane: it reads padded pixel (y + dilation i, x + dilation j).
int64_t tap_offset(int64_t i, int64_t j, int64_t dilation, const Layout& l) {
  return dilation * (i * l.padded_width + j);
}

// x [N, C, H, W] (any memory format) -> zero-padded channels-last planes [N, plane, C].
at::Tensor pad_planes(const at::Tensor& x, const Layout& l) {
  auto padded = at::zeros({x.size(0), l.plane / l.padded_width, l.padded_width, x.size(1)}, x.options());
  padded.narrow(1, l.pad, l.height).narrow(2, l.pad, l.width).copy_(x.permute({0, 2, 3, 1}));
  return padded.view({x.size(0), l.plane, x.size(1)});
}

// A conv over padded planes: one [Cout, Cin] matrix and one plane offset per active tap.
struct TapGemms {
  at::Tensor matrices;           // [T, Cin, Cout]: output rows = window [len, Cin] @ matrix
  std::vector<int64_t> offsets;  // T plane offsets
};

// Forward taps: weight[:, :, i, j]^T at offset(i, j).
TapGemms forward_taps(const at::Tensor& weight, at::IntArrayRef taps, int64_t dilation, const Layout& l) {
  const int64_t k = weight.size(3);
  TapGemms g;
  auto index = at::tensor(std::vector<int64_t>(taps.begin(), taps.end()), at::kLong);
  g.matrices = weight.flatten(2).index_select(2, index).permute({2, 1, 0}).contiguous();
  for (int64_t t : taps) g.offsets.push_back(tap_offset(t / k, t % k, dilation, l));
  return g;
}

// Input-gradient taps: grad_x = conv of grad_pre with weight[:, :, i, j] at the mirrored tap (k-1-i, k-1-j).
TapGemms transposed_taps(const at::Tensor& weight, at::IntArrayRef taps, int64_t dilation, const Layout& l) {
  const int64_t k = weight.size(3);
  TapGemms g = forward_taps(weight, taps, dilation, l);
  g.matrices = g.matrices.transpose(1, 2).contiguous();
  for (size_t t = 0; t < taps.size(); ++t) {
    g.offsets[t] = tap_offset(k - 1 - taps[t] / k, k - 1 - taps[t] % k, dilation, l);
  }
  return g;
}

// Writes one band: out[n, c, y0 + r, x] = act(acc[r * Wp + x, c] + bias[c]) for x < W.
template <typename scalar_t>
void store_band(const at::Tensor& acc, const scalar_t* bias, std::optional<double> slope, const Layout& l, int64_t rows,
                scalar_t* out_image_band, int64_t out_channel_stride) {
  const int64_t channels = acc.size(1);
  const scalar_t* src = acc.const_data_ptr<scalar_t>();
  const scalar_t s = static_cast<scalar_t>(slope.value_or(1.0));
  for (int64_t c = 0; c < channels; ++c) {
    const scalar_t b = bias ? bias[c] : scalar_t(0);
    for (int64_t r = 0; r < rows; ++r) {
      const scalar_t* row = src + r * l.padded_width * channels + c;
      scalar_t* dst = out_image_band + c * out_channel_stride + r * l.width;
      for (int64_t x = 0; x < l.width; ++x) {
        const scalar_t v = row[x * channels] + b;
        dst[x] = (slope && v <= scalar_t(0)) ? v * s : v;
      }
    }
  }
}

// out [N, Cout, H, W] = act(bias + sum_t planes[n, window_t, :] @ gemms.matrices[t]).
template <typename scalar_t>
void conv_planes(const at::Tensor& planes, const TapGemms& gemms, const scalar_t* bias, std::optional<double> slope,
                 const Layout& l, at::Tensor& out) {
  const int64_t out_channels = out.size(1), taps = gemms.matrices.size(0);
  at::parallel_for(0, out.size(0) * l.bands, 1, [&](int64_t begin, int64_t end) {
    auto acc_full = at::empty({l.band_rows * l.padded_width, out_channels}, planes.options());
    for (int64_t job = begin; job < end; ++job) {
      const int64_t n = job / l.bands, y0 = (job % l.bands) * l.band_rows;
      const int64_t rows = std::min(l.band_rows, l.height - y0), len = rows * l.padded_width;
      auto acc = acc_full.narrow(0, 0, len);  // [len, Cout]
      auto image = planes.select(0, n);
      if (taps == 0) acc.zero_();
      for (int64_t t = 0; t < taps; ++t) {
        auto window = image.narrow(0, y0 * l.padded_width + gemms.offsets[t], len);  // [len, Cin]
        if (t == 0) {
          at::mm_out(acc, window, gemms.matrices[t]);
        } else {
          acc.addmm_(window, gemms.matrices[t]);
        }
      }
      scalar_t* dst = out.data_ptr<scalar_t>() + n * out.stride(0) + y0 * l.width;
      store_band<scalar_t>(acc, bias, slope, l, rows, dst, out.stride(1));
    }
  });
}

// grad_weight of the active taps, [T, Cout, Cin]: sum over images and bands of
// grad_pre[n, band, :]^T @ planes[n, window_t, :], with per-thread partial sums.
at::Tensor tap_weight_grads(const at::Tensor& planes, const at::Tensor& grad_planes, const TapGemms& gemms,
                            const Layout& l) {
  const int64_t taps = gemms.matrices.size(0);
  const int64_t base = l.pad * l.padded_width + l.pad;  // grad_planes offset of output pixel (0, 0)
  auto partial = at::zeros({at::get_num_threads(), taps, grad_planes.size(2), planes.size(2)}, planes.options());
  at::parallel_for(0, planes.size(0) * l.bands, 1, [&](int64_t begin, int64_t end) {
    auto mine = partial[at::get_thread_num()];
    for (int64_t job = begin; job < end; ++job) {
      const int64_t n = job / l.bands, y0 = (job % l.bands) * l.band_rows;
      const int64_t len = std::min(l.band_rows, l.height - y0) * l.padded_width;
      auto grad = grad_planes.select(0, n).narrow(0, base + y0 * l.padded_width, len).t();  // [Cout, len]
      auto image = planes.select(0, n);
      for (int64_t t = 0; t < taps; ++t) {
        mine[t].addmm_(grad, image.narrow(0, y0 * l.padded_width + gemms.offsets[t], len));
      }
    }
  });
  return partial.sum(0);
}

at::ScalarType compute_type(const at::Tensor& x) {
  return x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
}

at::Tensor taps_index(at::IntArrayRef taps) {
  return at::tensor(std::vector<int64_t>(taps.begin(), taps.end()), at::kLong);
}

}  // namespace

at::Tensor blind_spot_conv2d_cpu(const at::Tensor& x, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                                 at::IntArrayRef taps, int64_t dilation, std::optional<double> negative_slope) {
  TORCH_CHECK(x.dim() == 4 && weight.dim() == 4 && x.size(1) == weight.size(1), "blind_spot_conv2d: bad shapes");
  TORCH_CHECK(dilation >= 1, "blind_spot_conv2d: dilation must be >= 1");
  const auto type = compute_type(x);
  auto xc = x.to(type).contiguous();
  auto wc = weight.to(type).contiguous();
  const int64_t batch = x.size(0), out_channels = weight.size(0), k = weight.size(3);
  auto out = at::empty({batch, out_channels, x.size(2), x.size(3)}, xc.options());
  if (out.numel() == 0) return out.to(x.scalar_type());
  const Layout l = make_layout(batch, x.size(2), x.size(3), dilation * (k / 2), std::max(x.size(1), out_channels));
  auto planes = pad_planes(xc, l);
  const TapGemms gemms = forward_taps(wc, taps, dilation, l);
  at::Tensor bc = bias.has_value() ? bias->to(type).contiguous() : at::Tensor();
  AT_DISPATCH_FLOATING_TYPES(type, "blind_spot_conv2d_cpu", [&] {
    conv_planes<scalar_t>(planes, gemms, bc.defined() ? bc.const_data_ptr<scalar_t>() : nullptr, negative_slope, l, out);
  });
  return out.to(x.scalar_type());
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> blind_spot_conv2d_backward_cpu(
    const at::Tensor& grad_out, const at::Tensor& x, const at::Tensor& weight, const at::Tensor& out,
    at::IntArrayRef taps, int64_t dilation, std::optional<double> negative_slope, std::array<bool, 3> output_mask) {
  const auto type = compute_type(x);
  const int64_t batch = x.size(0), in_channels = x.size(1), out_channels = weight.size(0), k = weight.size(3);
  auto wc = weight.to(type).contiguous();
  // Pre-activation gradient: LeakyReLU' is 1 where out > 0, else the slope.
  auto grad_pre = grad_out.to(type);
  if (negative_slope.has_value()) {
    grad_pre = at::where(out > 0, grad_pre, grad_pre * *negative_slope);
  }
  at::Tensor grad_x = at::empty({0}, x.options()), grad_w = at::empty({0}, weight.options());
  at::Tensor grad_b = at::empty({0}, weight.options());
  if (output_mask[2]) grad_b = grad_pre.sum({0, 2, 3}).to(weight.scalar_type());
  if (!output_mask[0] && !output_mask[1]) return {grad_x, grad_w, grad_b};

  const Layout l = make_layout(batch, x.size(2), x.size(3), dilation * (k / 2), std::max(in_channels, out_channels));
  auto grad_planes = pad_planes(grad_pre, l);
  if (output_mask[0]) {
    auto gx = at::empty({batch, in_channels, x.size(2), x.size(3)}, grad_planes.options());
    if (gx.numel() > 0) {
      const TapGemms gemms = transposed_taps(wc, taps, dilation, l);
      AT_DISPATCH_FLOATING_TYPES(type, "blind_spot_conv2d_backward_cpu", [&] {
        conv_planes<scalar_t>(grad_planes, gemms, nullptr, std::nullopt, l, gx);
      });
    }
    grad_x = gx.to(x.scalar_type());
  }
  if (output_mask[1]) {
    auto gw = at::zeros({out_channels, in_channels, k * k}, wc.options());
    if (!taps.empty() && batch > 0) {
      auto planes = pad_planes(x.to(type).contiguous(), l);
      auto per_tap = tap_weight_grads(planes, grad_planes, forward_taps(wc, taps, dilation, l), l);
      gw.index_copy_(2, taps_index(taps), per_tap.permute({1, 2, 0}));
    }
    grad_w = gw.view({out_channels, in_channels, k, k}).to(weight.scalar_type());
  }
  return {grad_x, grad_w, grad_b};
}

}  // namespace atbsn
