// Blind-spot convolution on the CPU as "shift-GEMM" over zero-padded band windows.
//
// The output is computed in bands of rows; a band's input rows (plus a halo of `pad` rows above
// and below) are copied into a zero-padded window [C, (rows + 2 pad) * Wp] with Wp = W + 2 pad.
// Output pixel (y, x) of the band is computed at grid position q = y * Wp + x (columns x >= W are
// computed and dropped), and active tap (i, j) reads window position q + dilation * (i * Wp + j).
// So one tap is one GEMM [M, K] @ window[K, q + offset] whose right operand is a plain slice of the
// window: no im2col, and masked taps cost nothing. Each (image, band) job keeps its window and
// accumulator in cache; the GEMMs are oneDNN's single-threaded micro-kernel (fp32) or a plain
// loop (fp64). The backward computes grad input, grad weight and grad bias in one pass over bands.
#include "cpu/blind_spot_conv2d_cpu.h"

#include "cpu/conv_microkernels.h"

#include <ATen/Parallel.h>
#include <ATen/native/CPUBlas.h>

#include <unistd.h>

#include <algorithm>
#include <type_traits>
#include <vector>

namespace atbsn {
namespace {

// Geometry of the bands and of their zero-padded windows.
struct Geometry {
  int64_t height, width, pad;
  int64_t padded_width;  // Wp = W + 2 pad
  int64_t band_rows;     // output rows per job
  int64_t bands;         // jobs per image
  int64_t tile;          // grid positions per microkernel tile (1 on the GEMM path)
  int64_t step;          // grid positions per vector: convs compute multiples of it (1 on the GEMM path)
  int64_t acc_stride;    // row stride of band accumulators: >= band_rows * Wp grid positions, rounded up to steps
  int64_t window;        // channel stride of a window: >= (band_rows + 2 pad) * Wp + 2 pad + tile, zero beyond the rows
  int64_t origin;        // window position of the band's pixel (0, 0): pad * Wp + pad
};

// Grid positions a band's conv computes: len rounded up to whole vectors (the extra ones are dropped).
int64_t tiled(const Geometry& g, int64_t len) {
  return (len + g.step - 1) / g.step * g.step;
}

// A data cache's size in bytes: ATBSN_<name>_BYTES if set (to run, and test, the blocking of a
// machine with other caches), else sysconf's, else `fallback`.
int64_t cache_bytes(const char* env, int sysconf_name, int64_t fallback) {
  if (const char* forced = std::getenv(env)) return std::max<int64_t>(1024, std::atoll(forced));
  const long detected = sysconf(sysconf_name);
  return detected > 0 ? static_cast<int64_t>(detected) : fallback;
}

int64_t l1_bytes() {
  static const int64_t bytes = cache_bytes("ATBSN_L1_BYTES", _SC_LEVEL1_DCACHE_SIZE, 32 * 1024);
  return bytes;
}

// Accumulator elements per job: a sixteenth of L2 in floats (512 KiB accumulators on a 2 MiB L2,
// 128 KiB on a 512 KiB one), so that a job's accumulator, window and weights stay in L2 while bands
// stay large enough that the halo rows two windows both copy are a small fraction.
int64_t band_elements() {
  static const int64_t elements = std::max<int64_t>(
      4096, cache_bytes("ATBSN_L2_BYTES", _SC_LEVEL2_CACHE_SIZE, 512 * 1024) / 16);
  return elements;
}

// n rounded up to an odd multiple of 16 elements: rows that far apart spread over the cache sets
// (power-of-two strides would map them all to the same few sets).
int64_t row_stride(int64_t n) {
  return ((n + 15) / 16 | 1) * 16;
}

Geometry make_geometry(int64_t batch, int64_t height, int64_t width, int64_t pad, int64_t channels, int64_t tile,
                       int64_t step) {
  Geometry g;
  g.tile = tile;
  g.step = step;
  g.height = height;
  g.width = width;
  g.pad = pad;
  g.padded_width = width + 2 * pad;
  g.band_rows = std::clamp<int64_t>(band_elements() / std::max<int64_t>(1, channels * g.padded_width), 1, height);
  // At least four jobs per thread so that the threads finish together.
  const int64_t min_jobs = 4 * at::get_num_threads();
  while (g.band_rows > 1 && batch * ((height + g.band_rows - 1) / g.band_rows) < min_jobs) {
    g.band_rows = (g.band_rows + 1) / 2;
  }
  g.bands = (height + g.band_rows - 1) / g.band_rows;
  g.acc_stride = row_stride(tiled(g, g.band_rows * g.padded_width));
  g.window = row_stride((g.band_rows + 2 * pad) * g.padded_width + 2 * pad + tile);
  g.origin = pad * g.padded_width + pad;
  return g;
}

// The per-thread buffers of the band jobs.
enum class Scratch { kWindow, kAcc, kXWindow, kGradT, kCount };

// This thread's buffer `which` with room for n elements. Buffers live as long as the thread and
// only grow: a call allocates, zero-fills and page-faults none of them (every job writes all of a
// buffer that it reads). They cost the largest call's windows and accumulator, per thread.
template <typename scalar_t>
scalar_t* scratch(Scratch which, int64_t n) {
  thread_local std::vector<scalar_t> buffers[static_cast<int>(Scratch::kCount)];
  auto& buffer = buffers[static_cast<int>(which)];
  if (static_cast<int64_t>(buffer.size()) < n) buffer.resize(n);
  return buffer.data();
}

// One (image, band) job: image n, output rows [y0, y0 + rows), len = rows * Wp grid positions.
struct Band {
  int64_t n, y0, rows, len;
};

Band band_of(const Geometry& g, int64_t job) {
  const int64_t y0 = (job % g.bands) * g.band_rows;
  const int64_t rows = std::min(g.band_rows, g.height - y0);
  return {job / g.bands, y0, rows, rows * g.padded_width};
}

// Window offset read by tap (i, j): padded pixel (y + dilation i, x + dilation j) of output (y, x).
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

// Read access to a [N, C, H, W] tensor of elements T in any memory format.
template <typename T>
struct Nchw {
  const T* data;
  int64_t stride[4];

  explicit Nchw(const at::Tensor& t)
      : data(t.const_data_ptr<T>()), stride{t.stride(0), t.stride(1), t.stride(2), t.stride(3)} {}

  // Row (n, c, y); its elements are `stride[3]` apart.
  const T* row(int64_t n, int64_t c, int64_t y) const {
    return data + n * stride[0] + c * stride[1] + y * stride[2];
  }
};

// A gradient value times LeakyReLU'(out): the value where out > 0, value * slope elsewhere.
template <typename scalar_t>
inline scalar_t gated(scalar_t value, scalar_t out, scalar_t slope) {
  return out > scalar_t(0) ? value : value * slope;
}

// dst[x] = gated(v[x], o[x]) for x < n, in scalar_t, from unaliased rows of T, so that the loop
// vectorizes to a compare and a blend (with -fno-trapping-math; as a branch it stayed scalar and
// mispredicted on every other pixel).
template <typename scalar_t, typename T>
void gated_row(const T* __restrict v, const T* __restrict o, scalar_t slope, int64_t n, scalar_t* __restrict dst) {
  for (int64_t x = 0; x < n; ++x) dst[x] = gated(static_cast<scalar_t>(v[x]), static_cast<scalar_t>(o[x]), slope);
}

// The rows that fill the windows (in the compute type scalar_t) from tensors of T (scalar_t, or a
// half type read in fp32 without a converted copy): a tensor's rows, or the pre-activation gradient
// grad_out * LeakyReLU'(out) with LeakyReLU'(out) = out > 0 ? 1 : slope.
template <typename scalar_t, typename T>
struct RowSource {
  Nchw<T> values;
  std::optional<Nchw<T>> gate;
  scalar_t slope;  // LeakyReLU' where out <= 0

  // dst[0, width) = row (n, c, y). Rows with unit steps (NCHW) take loops the compiler vectorizes.
  void write(int64_t n, int64_t c, int64_t y, int64_t width, scalar_t* dst) const {
    const T* v = values.row(n, c, y);
    const int64_t step = values.stride[3];
    if (!gate) {
      if (step == 1) {
        std::copy(v, v + width, dst);
      } else {
        for (int64_t x = 0; x < width; ++x) dst[x] = static_cast<scalar_t>(v[x * step]);
      }
      return;
    }
    const T* o = gate->row(n, c, y);
    const int64_t gate_step = gate->stride[3];
    if (step == 1 && gate_step == 1) return gated_row(v, o, slope, width, dst);
    for (int64_t x = 0; x < width; ++x) {
      dst[x] = gated(static_cast<scalar_t>(v[x * step]), static_cast<scalar_t>(o[x * gate_step]), slope);
    }
  }
};

template <typename scalar_t, typename T>
RowSource<scalar_t, T> rows_of(const at::Tensor& t) {
  return {Nchw<T>(t), std::nullopt, scalar_t(1)};
}

template <typename scalar_t, typename T>
RowSource<scalar_t, T> pre_activation_rows(const at::Tensor& grad_out, const at::Tensor& out,
                                           std::optional<double> slope) {
  if (!slope.has_value()) return rows_of<scalar_t, T>(grad_out);
  return {Nchw<T>(grad_out), Nchw<T>(out), static_cast<scalar_t>(*slope)};
}

// window[c, r * Wp + pad + x] = row (band.y0 - pad + r, x) of channel c of image band.n for the
// rows + 2 pad window rows r; zero outside the image, in the pad columns and in the rest of the plane.
template <typename scalar_t, typename T>
void fill_window(const Geometry& g, const RowSource<scalar_t, T>& src, const Band& band, int64_t channels,
                 scalar_t* window) {
  const int64_t wp = g.padded_width, window_rows = band.rows + 2 * g.pad;
  for (int64_t c = 0; c < channels; ++c) {
    scalar_t* plane = window + c * g.window;
    for (int64_t r = 0; r < window_rows; ++r) {
      scalar_t* row = plane + r * wp;
      const int64_t y = band.y0 - g.pad + r;
      if (y < 0 || y >= g.height) {
        std::fill(row, row + wp, scalar_t(0));
        continue;
      }
      std::fill(row, row + g.pad, scalar_t(0));
      src.write(band.n, c, y, g.width, row + g.pad);
      std::fill(row + g.pad + g.width, row + wp, scalar_t(0));
    }
    std::fill(plane + window_rows * wp, plane + g.window, scalar_t(0));
  }
}

// A conv over windows: one [M, K] matrix and one window offset per active tap.
struct TapGemms {
  at::Tensor matrices;  // [T, M, K]: accumulator [M, len] += matrix @ window[K, offset + q]
  std::vector<int64_t> offsets;
  at::Tensor packed;    // fp32 on the microkernel path: the matrices in the conv tiles' order
  int64_t channel_block = 0;  // and the input channels per block of the conv tiles
};

// The microkernel ISA for tensors of `type` (fp32 only; fp64 takes the GEMM path).
cpu::Isa isa_for(at::ScalarType type) {
  return type == at::kFloat ? cpu::microkernel_isa() : cpu::Isa::kGeneric;
}

// Terms (channels x taps) per conv-tile block at most: each block's sum runs in registers from
// zero and is then added to the accumulator, so the block bounds the length of the sequential sums
// (16 channels x 9 taps = 144, as in oneDNN's 16-channel blocks; blocks of 24-31 channels x 9 taps
// gave 1.3x oneDNN's forward error, enough to flip more gates and argmaxes in a deep model). At 9
// taps, blocks of 16 to 48 channels run at the same speed (measured: within 2%); below 8 channels
// a block's accumulator load and store start to cost.
constexpr int64_t kMaxBlockTerms = 144, kMinChannelBlock = 8;

// Input channels per block of the conv tiles: at most max(kMinChannelBlock, kMaxBlockTerms / taps)
// and at most as many as keep the rows that one tile of positions reads (every tap's row, the tile
// plus the taps' column spread) within half the L1 cache (but at least 4), evened out over the
// blocks that takes (40 channels as 14 + 13 + 13, not 16 + 16 + 8: the short block pays the accumulator's
// load and store for a fifth of the work).
int64_t channel_block(const std::vector<int64_t>& offsets, const Geometry& g, int64_t in_channels) {
  std::vector<int64_t> rows;
  int64_t lo = 0, hi = 0;
  for (int64_t offset : offsets) {
    rows.push_back(offset / g.padded_width);
    lo = std::min(lo, offset % g.padded_width);
    hi = std::max(hi, offset % g.padded_width);
  }
  std::sort(rows.begin(), rows.end());
  const int64_t distinct = std::unique(rows.begin(), rows.end()) - rows.begin();
  const int64_t bytes_per_channel = std::max<int64_t>(1, distinct) * (g.tile + hi - lo + 16) * 4;
  const int64_t taps = std::max<int64_t>(1, static_cast<int64_t>(offsets.size()));
  const int64_t accurate = std::max(kMinChannelBlock, kMaxBlockTerms / taps);
  const int64_t largest = std::max<int64_t>(4, std::min(l1_bytes() / 2 / bytes_per_channel, accurate));
  const int64_t blocks = std::max<int64_t>(1, (in_channels + largest - 1) / largest);
  return (in_channels + blocks - 1) / blocks;
}

// gemms with their matrices packed for the microkernels of `isa`, and the channel block of the
// tiles for their taps' offsets in windows of geometry g (unchanged on the GEMM path).
TapGemms packed_for(cpu::Isa isa, TapGemms gemms, const Geometry& g) {
  if (isa == cpu::Isa::kGeneric) return gemms;
  const int64_t taps = gemms.matrices.size(0), m = gemms.matrices.size(1), k = gemms.matrices.size(2);
  gemms.channel_block = channel_block(gemms.offsets, g, k);
  gemms.packed = at::empty({cpu::packed_conv_weights_size(isa, taps, k, m)}, gemms.matrices.options());
  cpu::pack_conv_weights(isa, gemms.matrices.const_data_ptr<float>(), taps, k, m, gemms.channel_block,
                         gemms.packed.mutable_data_ptr<float>());
  return gemms;
}

at::Tensor taps_index(at::IntArrayRef taps) {
  return at::tensor(std::vector<int64_t>(taps.begin(), taps.end()), at::kLong);
}

// Active-tap matrices of weight [Cout, Cin, k, k]: [T, Cout, Cin], or [T, Cin, Cout] when `transposed`
// (a gather of whole tap planes: index_select along the last dimension is an element-wise gather).
at::Tensor tap_matrices(const at::Tensor& weight, at::IntArrayRef taps, bool transposed) {
  const auto planes = transposed ? weight.flatten(2).permute({2, 1, 0}) : weight.flatten(2).permute({2, 0, 1});
  return planes.index_select(0, taps_index(taps));
}

std::vector<int64_t> forward_offsets(const Geometry& g, at::IntArrayRef taps, int64_t k, int64_t dilation) {
  std::vector<int64_t> offsets;
  for (int64_t t : taps) offsets.push_back(tap_offset(g, t / k, t % k, dilation));
  return offsets;
}

// Forward: weight[:, :, i, j] [Cout, Cin] at offset (i, j).
TapGemms forward_taps(const at::Tensor& weight, at::IntArrayRef taps, int64_t dilation, const Geometry& g) {
  return {tap_matrices(weight, taps, false), forward_offsets(g, taps, weight.size(3), dilation)};
}

// Input gradient: the conv of the pre-activation gradient with weight[:, :, i, j]^T [Cin, Cout]
// at the mirrored tap (k-1-i, k-1-j).
TapGemms input_grad_taps(const at::Tensor& weight, at::IntArrayRef taps, int64_t dilation, const Geometry& g) {
  const int64_t k = weight.size(3);
  TapGemms gemms{tap_matrices(weight, taps, true), {}};
  for (int64_t t : taps) gemms.offsets.push_back(tap_offset(g, k - 1 - t / k, k - 1 - t % k, dilation));
  return gemms;
}

// acc[M, q] = sum over taps of gemms.matrices[t] @ window[:, offsets[t] + q] for q < len (zero without
// taps): by the microkernels when the matrices are packed for them, else one GEMM per tap.
template <typename scalar_t>
void conv_band(const TapGemms& gemms, const scalar_t* window, const Geometry& g, int64_t len, scalar_t* acc) {
  const int64_t taps = gemms.matrices.size(0), m = gemms.matrices.size(1), k = gemms.matrices.size(2);
  if (taps == 0) {
    std::fill(acc, acc + m * g.acc_stride, scalar_t(0));
    return;
  }
  if constexpr (std::is_same_v<scalar_t, float>) {
    if (gemms.packed.defined()) {
      const cpu::Isa isa = cpu::microkernel_isa();
      cpu::conv_tiles(isa, {window, g.window, gemms.offsets.data(), taps, k, m, gemms.packed.const_data_ptr<float>(),
                            acc, g.acc_stride, tiled(g, len), gemms.channel_block});
      return;
    }
  }
  const scalar_t* matrices = gemms.matrices.const_data_ptr<scalar_t>();
  for (int64_t t = 0; t < taps; ++t) {
    gemm(m, len, k, matrices + t * m * k, k, window + gemms.offsets[t], g.window, acc, g.acc_stride, t > 0);
  }
}

// Writes one band of out [N, C, H, W]: out[n, c, y0 + r, x] = act(acc[c, r * Wp + x] + bias[c])
// for x < W, where act(v) = v > 0 ? v : slope * v and slope = 1 means no activation.
// out is a contiguous tensor of T (scalar_t, or a half type: each value rounded once, at the store).
template <typename scalar_t, typename T>
void store_band(const scalar_t* acc, const Geometry& g, const Band& band, const scalar_t* bias, scalar_t slope,
                at::Tensor& out) {
  const int64_t channels = out.size(1);
  T* dst_band = out.mutable_data_ptr<T>() + band.n * out.stride(0) + band.y0 * g.width;
  for (int64_t c = 0; c < channels; ++c) {
    const scalar_t b = bias ? bias[c] : scalar_t(0);
    for (int64_t r = 0; r < band.rows; ++r) {
      const scalar_t* src = acc + c * g.acc_stride + r * g.padded_width;
      T* dst = dst_band + c * out.stride(1) + r * g.width;
      if (slope == scalar_t(1)) {
        for (int64_t x = 0; x < g.width; ++x) dst[x] = static_cast<T>(src[x] + b);
        continue;
      }
      // max(v, 0) + slope * min(v, 0) is v for v > 0 and slope * v otherwise (NaN stays NaN), and vectorizes.
      for (int64_t x = 0; x < g.width; ++x) {
        const scalar_t v = src[x] + b;
        dst[x] = static_cast<T>(std::max(v, scalar_t(0)) + slope * std::min(v, scalar_t(0)));
      }
    }
  }
}

// sums[c] += sum of the band's pixels of channel c of a window, in two levels (each row, then the
// row totals), so the rounding error grows with the row length plus the row count rather than
// with the band's pixel count.
template <typename scalar_t>
void add_band_sums(const scalar_t* window, const Geometry& g, const Band& band, int64_t channels, scalar_t* sums) {
  for (int64_t c = 0; c < channels; ++c) {
    scalar_t total = 0;
    for (int64_t r = 0; r < band.rows; ++r) {
      const scalar_t* row = window + c * g.window + g.origin + r * g.padded_width;
      scalar_t row_total = 0;
      for (int64_t x = 0; x < g.width; ++x) row_total += row[x];
      total += row_total;
    }
    sums[c] += total;
  }
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

// sums[t] [Cin, Cout] += x_window[:, offsets[t] + q] [Cin, len] @ grad_t [len, Cout] for every tap t.
template <typename scalar_t>
void add_weight_grads(const scalar_t* x_window, const scalar_t* grad_t, const std::vector<int64_t>& offsets,
                      const Geometry& g, int64_t in_channels, int64_t out_channels, int64_t len, scalar_t* sums) {
  for (size_t t = 0; t < offsets.size(); ++t) {
    gemm(in_channels, out_channels, len, x_window + offsets[t], g.window, grad_t, out_channels,
         sums + t * in_channels * out_channels, out_channels, true);
  }
}

// out [N, Cout, H, W] = act(bias + conv of x over the active taps); act as in store_band.
template <typename scalar_t, typename T>
void forward_bands(const RowSource<scalar_t, T>& x, const TapGemms& gemms, const Geometry& g, const scalar_t* bias,
                   scalar_t slope, at::Tensor& out) {
  const int64_t in_channels = gemms.matrices.size(2), out_channels = gemms.matrices.size(1);
  at::parallel_for(0, out.size(0) * g.bands, 1, [&](int64_t begin, int64_t end) {
    scalar_t* window = scratch<scalar_t>(Scratch::kWindow, in_channels * g.window);
    scalar_t* acc = scratch<scalar_t>(Scratch::kAcc, out_channels * g.acc_stride);
    for (int64_t job = begin; job < end; ++job) {
      const Band band = band_of(g, job);
      fill_window(g, x, band, in_channels, window);
      conv_band(gemms, window, g, band.len, acc);
      store_band<scalar_t, T>(acc, g, band, bias, slope, out);
    }
  });
}

// Where the backward pass writes; a gradient that is not wanted has an undefined tensor.
struct BackwardOutputs {
  at::Tensor grad_x;        // [N, Cin, H, W] in x's dtype
  at::Tensor weight_sums;   // [threads, T, Cin, Cout]: per-thread weight gradients of the active taps
  at::Tensor bias_sums;     // [jobs, Cout]: per-job bias gradients, summed by ATen's cascade sum
};

// One pass over the bands: the pre-activation gradient window of a band feeds the input gradient
// (conv with the mirrored, transposed taps), the bias sums and, transposed to [len, Cout], the
// weight gradient GEMMs against the band's input window.
template <typename scalar_t, typename T>
void backward_bands(const RowSource<scalar_t, T>& grad, const RowSource<scalar_t, T>& x, const TapGemms& input_gemms,
                    const std::vector<int64_t>& weight_offsets, const Geometry& g, int64_t batch, int64_t in_channels,
                    int64_t out_channels, BackwardOutputs& outs) {
  const int64_t tap_grads = static_cast<int64_t>(weight_offsets.size()) * in_channels * out_channels;
  at::parallel_for(0, batch * g.bands, 1, [&](int64_t begin, int64_t end) {
    const int64_t thread = at::get_thread_num();
    const bool want_x = outs.grad_x.defined(), want_w = outs.weight_sums.defined();
    scalar_t* grad_window = scratch<scalar_t>(Scratch::kWindow, out_channels * g.window);
    scalar_t* acc = want_x ? scratch<scalar_t>(Scratch::kAcc, in_channels * g.acc_stride) : nullptr;
    scalar_t* x_window = want_w ? scratch<scalar_t>(Scratch::kXWindow, in_channels * g.window) : nullptr;
    scalar_t* grad_t = want_w ? scratch<scalar_t>(Scratch::kGradT, g.band_rows * g.padded_width * out_channels)
                              : nullptr;
    for (int64_t job = begin; job < end; ++job) {
      const Band band = band_of(g, job);
      fill_window(g, grad, band, out_channels, grad_window);
      if (want_x) {
        conv_band(input_gemms, grad_window, g, band.len, acc);
        store_band<scalar_t, T>(acc, g, band, static_cast<const scalar_t*>(nullptr), scalar_t(1), outs.grad_x);
      }
      if (outs.bias_sums.defined()) {
        add_band_sums(grad_window, g, band, out_channels, outs.bias_sums.mutable_data_ptr<scalar_t>() + job * out_channels);
      }
      if (want_w) {
        // Extra grid columns read the window's zero padding, so they add nothing.
        transpose(grad_window + g.origin, g.window, out_channels, band.len, grad_t);
        fill_window(g, x, band, in_channels, x_window);
        add_weight_grads(x_window, grad_t, weight_offsets, g, in_channels, out_channels, band.len,
                         outs.weight_sums.mutable_data_ptr<scalar_t>() + thread * tap_grads);
      }
    }
  });
}

// Kernels compute in fp64 for fp64 and in fp32 otherwise.
at::ScalarType compute_type(const at::Tensor& x) {
  return x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
}

template <typename T>
using compute_t = std::conditional_t<std::is_same_v<T, double>, double, float>;

// f.template operator()<T>() for the element type T of x (fp32, fp64, bf16 or fp16).
template <typename F>
void dispatch_storage(const at::Tensor& x, F&& f) {
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, x.scalar_type(), "blind_spot_conv2d_cpu",
                                  [&] { f.template operator()<scalar_t>(); });
}

Geometry geometry_of(const at::Tensor& x, const at::Tensor& weight, int64_t dilation) {
  const cpu::Isa isa = isa_for(compute_type(x));
  return make_geometry(x.size(0), x.size(2), x.size(3), dilation * (weight.size(3) / 2),
                       std::max(x.size(1), weight.size(0)), cpu::conv_tile_positions(isa),
                       cpu::conv_vector_positions(isa));
}

// grad_weight [Cout, Cin, k, k] from the per-thread sums [threads, T, Cin, Cout] of the active taps,
// zero at masked taps (tap planes copied whole, then one transpose).
at::Tensor weight_grad(const at::Tensor& weight_sums, const at::Tensor& weight, at::IntArrayRef taps) {
  const int64_t k = weight.size(3);
  auto planes = at::zeros({k * k, weight.size(1), weight.size(0)}, weight_sums.options());
  if (!taps.empty()) planes.index_copy_(0, taps_index(taps), weight_sums.sum(0));
  return planes.permute({2, 1, 0}).contiguous().view(weight.sizes());
}

}  // namespace

std::string cpu_kernel_config() {
  const cpu::Isa isa = cpu::microkernel_isa();
  return std::string(isa == cpu::Isa::kGeneric ? "GEMMs (no AVX2 microkernels)" : "microkernels ") +
         (isa == cpu::Isa::kGeneric ? "" : cpu::isa_name(isa)) + ", L1 " + std::to_string(l1_bytes() / 1024) +
         " KiB, bands of " + std::to_string(band_elements() / 1024) + "Ki accumulator elements";
}

at::Tensor blind_spot_conv2d_cpu(const at::Tensor& x, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                                 at::IntArrayRef taps, int64_t dilation, std::optional<double> negative_slope) {
  const auto type = compute_type(x);
  auto out = at::empty({x.size(0), weight.size(0), x.size(2), x.size(3)}, x.options());
  if (out.numel() == 0) return out;
  const Geometry g = geometry_of(x, weight, dilation);
  const TapGemms gemms = packed_for(isa_for(type), forward_taps(weight.to(type), taps, dilation, g), g);
  at::Tensor bc = bias.has_value() ? bias->to(type).contiguous() : at::Tensor();
  // x is read in its own dtype (half types widened to fp32 as the windows fill) and out written in it.
  dispatch_storage(x, [&]<typename T>() {
    using scalar_t = compute_t<T>;
    forward_bands<scalar_t, T>(rows_of<scalar_t, T>(x), gemms, g,
                               bc.defined() ? bc.const_data_ptr<scalar_t>() : nullptr,
                               static_cast<scalar_t>(negative_slope.value_or(1.0)), out);
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> blind_spot_conv2d_backward_cpu(
    const at::Tensor& grad_out, const at::Tensor& x, const at::Tensor& weight, const at::Tensor& out,
    at::IntArrayRef taps, int64_t dilation, std::optional<double> negative_slope, std::array<bool, 3> output_mask) {
  const auto type = compute_type(x);
  const int64_t batch = x.size(0), in_channels = x.size(1), out_channels = weight.size(0);
  const Geometry g = geometry_of(x, weight, dilation);
  // grad_out and out are read in x's dtype, as x is (half types widened to fp32 as the windows fill).
  auto wc = weight.to(type), grad_c = grad_out.to(x.scalar_type()), out_c = out.to(x.scalar_type());
  const auto options = x.options().dtype(type);
  const int64_t threads = at::get_num_threads();

  BackwardOutputs outs;
  if (output_mask[0]) outs.grad_x = at::empty({batch, in_channels, g.height, g.width}, x.options());
  if (output_mask[1]) {
    outs.weight_sums = at::zeros({threads, static_cast<int64_t>(taps.size()), in_channels, out_channels}, options);
  }
  if (output_mask[2]) outs.bias_sums = at::zeros({batch * g.bands, out_channels}, options);
  const TapGemms input_gemms = output_mask[0] ? packed_for(isa_for(type), input_grad_taps(wc, taps, dilation, g), g)
                                              : TapGemms{};
  dispatch_storage(x, [&]<typename T>() {
    using scalar_t = compute_t<T>;
    backward_bands<scalar_t, T>(pre_activation_rows<scalar_t, T>(grad_c, out_c, negative_slope),
                                rows_of<scalar_t, T>(x), input_gemms, forward_offsets(g, taps, weight.size(3), dilation),
                                g, batch, in_channels, out_channels, outs);
  });

  auto grad_x = output_mask[0] ? outs.grad_x : at::empty({0}, x.options());
  auto grad_w = output_mask[1] ? weight_grad(outs.weight_sums, weight, taps).to(weight.scalar_type())
                               : at::empty({0}, weight.options());
  auto grad_b = output_mask[2] ? outs.bias_sums.sum(0).to(weight.scalar_type()) : at::empty({0}, weight.options());
  return {grad_x, grad_w, grad_b};
}

}  // namespace atbsn
