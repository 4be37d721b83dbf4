// CUDA kernels of the blind-spot conv on the dilated lattice (semantics: docs/kernel-contract.md).
//
// A conv dilated by r only couples pixels of one phase (a, b) = (h mod r, w mod r). In phase
// coordinates (i, j), h = a + r i, w = b + r j, it is a dense k x k conv of the Hp(a) x Wp(b)
// phase sub-image with zero padding k / 2. A thread block owns one 8 x 16 tile of one phase: the
// phase is indexed in place in global memory (never copied) and its tile plus a k / 2 halo is
// staged, a chunk of channels at a time, in shared memory as fp32.
//
//   forward      out    = act(bias + conv(x, W))
//   grad_input   grad_x = conv(g, W^T at the mirrored taps)       g = grad_out * (out > 0 ? 1 : slope)
//   grad_weight  dW[co, ci, t] = sum over pixels g[co] x[ci] shifted by tap t; fp32 atomics per block
//   grad_bias    db[co] = sum over N, H, W of g[co]
#include "cuda/blind_spot_conv2d_kernel.cuh"
#include "cuda/element_types.cuh"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <climits>
#include <cstdint>

namespace atbsn {
namespace cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kTileH = 8, kTileW = 16, kTilePixels = kTileH * kTileW;  // output tile, phase coordinates
constexpr int kChannelBlock = 32;  // output channels per block (forward) / grad_out channels (grad_weight)
constexpr int kPerThread = 4;      // each thread: 4 channels x 4 pixels (or x 4 (ci, tap) pairs)
constexpr int kMaxChunk = 16;      // channels staged in shared memory at once
constexpr int kMaxPairs = kThreads / (kChannelBlock / kPerThread) * kPerThread;  // (ci, tap) pairs per block
constexpr int kSmemBudget = 48 * 1024;  // bytes of dynamic shared memory without an opt-in
constexpr int kMaxGridYZ = 65535;

static_assert(kThreads / 32 * kPerThread == kChannelBlock, "forward: one warp per 4 output channels");
static_assert(32 * kPerThread == kTilePixels, "forward: one lane per 4 tile pixels");
static_assert(kMaxPairs == 128, "grad_weight: 8 channel groups x 32 pair groups x 4");

// src[o] times the LeakyReLU derivative read from the forward output (gate == null: no activation).
template <typename T>
__device__ __forceinline__ float gated(const T* src, const T* gate, float slope, int64_t o) {
  const float v = to_float(src[o]);
  return gate == nullptr || to_float(gate[o]) > 0.f ? v : v * slope;
}

// ---- geometry -------------------------------------------------------------------------------

// Active taps of a launch: tap t sits at flat position pos[t] of the k x k stencil (row-major)
// and multiplies weight tap widx[t] (pos == widx except for the mirrored taps of grad_input).
struct TapTable {
  int count;
  unsigned char pos[kMaxTaps];
  unsigned char widx[kMaxTaps];
};

// Phase tiling of an H x W image dilated by r. There are min(r, H) x min(r, W) phases (none is
// empty); tiles are counted for the largest phase, phase (0, 0), and skipped where a smaller
// phase ends. The staged tile is (8 + 2 halo) x (16 + 2 halo) with an odd channel stride.
struct Lattice {
  int height, width, dilation, kernel_size, halo;
  int phases_h, phases_w, tiles_h, tiles_w;
  int tile_rows, tile_cols, tile_stride;
};

// One block's tile: phase (a, b), tile origin (i0, j0), extent rows x cols of that phase.
struct PhaseTile {
  int a, b, i0, j0, rows, cols;
};

__host__ __device__ __forceinline__ int ceil_div(int a, int b) { return (a + b - 1) / b; }

// Pixels of phase `phase` (< min(r, size)) along an axis of `size` pixels: ceil((size - phase) / r).
__host__ __device__ __forceinline__ int phase_size(int size, int r, int phase) { return ceil_div(size - phase, r); }

Lattice make_lattice(const ConvParams& p) {
  Lattice l;
  l.height = p.height;
  l.width = p.width;
  l.dilation = p.dilation;
  l.kernel_size = p.kernel_size;
  l.halo = p.kernel_size / 2;
  l.phases_h = std::min(p.dilation, p.height);
  l.phases_w = std::min(p.dilation, p.width);
  l.tiles_h = ceil_div(phase_size(p.height, p.dilation, 0), kTileH);
  l.tiles_w = ceil_div(phase_size(p.width, p.dilation, 0), kTileW);
  l.tile_rows = kTileH + 2 * l.halo;
  l.tile_cols = kTileW + 2 * l.halo;
  l.tile_stride = (l.tile_rows * l.tile_cols) | 1;
  return l;
}

__host__ __device__ __forceinline__ int64_t spatial_blocks(const Lattice& l) {
  return int64_t{l.phases_h} * l.phases_w * l.tiles_h * l.tiles_w;
}

// Block s in [0, spatial_blocks) -> (phase a, phase b, tile row, tile column), column fastest.
__device__ __forceinline__ PhaseTile decode_tile(const Lattice& l, int64_t s) {
  PhaseTile t;
  t.j0 = static_cast<int>(s % l.tiles_w) * kTileW;
  s /= l.tiles_w;
  t.i0 = static_cast<int>(s % l.tiles_h) * kTileH;
  s /= l.tiles_h;
  t.b = static_cast<int>(s % l.phases_w);
  t.a = static_cast<int>(s / l.phases_w);
  t.rows = phase_size(l.height, l.dilation, t.a);
  t.cols = phase_size(l.width, l.dilation, t.b);
  return t;
}

__device__ __forceinline__ bool tile_empty(const PhaseTile& t) { return t.i0 >= t.rows || t.j0 >= t.cols; }

// Offset in an H x W plane of phase pixel (i, j) of tile t's phase.
__device__ __forceinline__ int64_t plane_offset(const Lattice& l, const PhaseTile& t, int i, int j) {
  return int64_t{t.a + l.dilation * i} * l.width + t.b + l.dilation * j;
}

// Offset in the staged tile of stencil position pos: output pixel (0, 0) reads tile (ti, tj).
__device__ __forceinline__ int stencil_offset(const Lattice& l, int pos) {
  return pos / l.kernel_size * l.tile_cols + pos % l.kernel_size;
}

// Offset in the staged tile of the halo-free tile pixel px (row-major 8 x 16).
__device__ __forceinline__ int pixel_offset(const Lattice& l, int px) {
  return px / kTileW * l.tile_cols + px % kTileW;
}

// s_tile[c][lr][lc] = gated src channel c0 + c at phase pixel (i0 - halo + lr, j0 - halo + lc), for
// c < nc; 0 outside the phase. src, gate: one image [C, H, W].
template <typename T>
__device__ void stage_halo_tile(float* s_tile, const T* src, const T* gate, float slope, int c0, int nc,
                                const Lattice& l, const PhaseTile& t) {
  const int area = l.tile_rows * l.tile_cols;
  const int64_t plane = int64_t{l.height} * l.width;
  for (int idx = threadIdx.x; idx < nc * area; idx += kThreads) {
    const int c = idx / area, rem = idx % area;
    const int i = t.i0 - l.halo + rem / l.tile_cols, j = t.j0 - l.halo + rem % l.tile_cols;
    float v = 0.f;
    if (i >= 0 && i < t.rows && j >= 0 && j < t.cols) {
      v = gated(src, gate, slope, (c0 + c) * plane + plane_offset(l, t, i, j));
    }
    s_tile[c * l.tile_stride + rem] = v;
  }
}

__device__ __forceinline__ void fma4(float (&acc)[kPerThread], float a, const float4& b) {
  acc[0] += a * b.x;
  acc[1] += a * b.y;
  acc[2] += a * b.z;
  acc[3] += a * b.w;
}

// ---- forward / grad_input: conv over one phase tile -----------------------------------------

// out[n, o] = act(bias[o] + sum_i sum_t weight(o, i, widx[t]) gated(in)[n, i] at stencil pos[t]).
// weight(o, i, w) = weight[o * w_out_stride + i * w_in_stride + w].
template <typename T>
struct ConvArgs {
  const T* in;
  const T* gate;  // forward output for grad_input with activation, else null
  float gate_slope;
  const T* weight;
  int64_t w_out_stride, w_in_stride;
  const T* bias;  // [out_channels] or null
  T* out;
  int in_channels, out_channels, chunk;
  bool activation;
  float slope;
  int64_t batch_offset;  // image of blockIdx.z == 0
};

// Shared memory of phase_conv_kernel: weights [chunk][T][32] (float4-aligned first), tile
// [chunk][tile_stride], stencil offsets [T] (int).
size_t conv_smem_bytes(const Lattice& l, int chunk, int taps) {
  return sizeof(float) * (size_t(chunk) * (size_t(taps) * kChannelBlock + l.tile_stride) + taps);
}

// s_w[c][t][co] = weight(co0 + co, c0 + c, widx[t]), 0 past out_channels; c < nc.
template <typename T>
__device__ void stage_conv_weights(float* s_w, const ConvArgs<T>& p, const TapTable& taps, int co0, int c0, int nc) {
  for (int idx = threadIdx.x; idx < nc * taps.count * kChannelBlock; idx += kThreads) {
    const int co = co0 + idx % kChannelBlock, rest = idx / kChannelBlock;
    const int t = rest % taps.count, c = c0 + rest / taps.count;
    s_w[idx] = co < p.out_channels ? to_float(p.weight[co * p.w_out_stride + c * p.w_in_stride + taps.widx[t]]) : 0.f;
  }
}

// grid (spatial_blocks, ceil(out_channels / 32), images); block 256 = 8 warps x 32 lanes.
// Warp w owns output channels co0 + 4w .. +3, lane owns tile pixels lane + 32 v (v < 4).
template <typename T>
__global__ void __launch_bounds__(kThreads) phase_conv_kernel(ConvArgs<T> p, TapTable taps, Lattice l) {
  extern __shared__ float4 smem[];
  float* s_w = reinterpret_cast<float*>(smem);
  float* s_x = s_w + p.chunk * taps.count * kChannelBlock;
  int* s_off = reinterpret_cast<int*>(s_x + p.chunk * l.tile_stride);

  const PhaseTile t = decode_tile(l, blockIdx.x);
  if (tile_empty(t)) return;
  const int64_t n = p.batch_offset + blockIdx.z;
  const int co0 = blockIdx.y * kChannelBlock;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int64_t plane = int64_t{l.height} * l.width;

  for (int q = threadIdx.x; q < taps.count; q += kThreads) s_off[q] = stencil_offset(l, taps.pos[q]);
  int pix[kPerThread];
#pragma unroll
  for (int v = 0; v < kPerThread; ++v) pix[v] = pixel_offset(l, lane + 32 * v);

  float acc[kPerThread][kPerThread] = {};  // [pixel v][channel u]
  const T* in = p.in + n * p.in_channels * plane;
  const T* gate = p.gate == nullptr ? nullptr : p.gate + n * p.in_channels * plane;
  for (int c0 = 0; taps.count > 0 && c0 < p.in_channels; c0 += p.chunk) {
    const int nc = min(p.chunk, p.in_channels - c0);
    __syncthreads();  // the previous chunk is consumed
    stage_halo_tile(s_x, in, gate, p.gate_slope, c0, nc, l, t);
    stage_conv_weights(s_w, p, taps, co0, c0, nc);
    __syncthreads();
    for (int c = 0; c < nc; ++c) {
      const float* xs = s_x + c * l.tile_stride;
      const float4* ws = reinterpret_cast<const float4*>(s_w) + c * taps.count * (kChannelBlock / 4) + warp;
      for (int q = 0; q < taps.count; ++q) {
        const float4 w = ws[q * (kChannelBlock / 4)];
        const float* xq = xs + s_off[q];
#pragma unroll
        for (int v = 0; v < kPerThread; ++v) fma4(acc[v], xq[pix[v]], w);
      }
    }
  }

#pragma unroll
  for (int u = 0; u < kPerThread; ++u) {
    const int co = co0 + warp * kPerThread + u;
    if (co >= p.out_channels) continue;
    const float b = p.bias == nullptr ? 0.f : to_float(p.bias[co]);
    T* out = p.out + (n * p.out_channels + co) * plane;
#pragma unroll
    for (int v = 0; v < kPerThread; ++v) {
      const int px = lane + 32 * v, i = t.i0 + px / kTileW, j = t.j0 + px % kTileW;
      if (i >= t.rows || j >= t.cols) continue;
      float y = acc[v][u] + b;
      if (p.activation && !(y > 0.f)) y *= p.slope;
      out[plane_offset(l, t, i, j)] = from_float<T>(y);
    }
  }
}

// ---- grad_weight: per-(co, ci, tap) reduction over phase tiles ------------------------------

template <typename T>
struct WeightGradArgs {
  const T* x;
  const T* grad_out;
  const T* gate;  // forward output with activation, else null
  float slope;
  float* sums;  // [out_channels, in_channels, T], zeroed
  int in_channels, out_channels, chunk;
  int64_t batch;
};

// Shared memory of phase_weight_grad_kernel: grad tile [128 px][32 co] (swizzled, float4-aligned
// first), x tile [chunk][tile_stride], stencil offsets [T] (int).
size_t weight_grad_smem_bytes(const Lattice& l, int chunk, int taps) {
  return sizeof(float) * (size_t(kTilePixels) * kChannelBlock + size_t(chunk) * l.tile_stride + taps);
}

// Index of (pixel px, channel col) in the grad tile: the 4-channel groups of row px are XOR-swizzled
// by px % 8, so column-wise stores spread over 8 bank groups and float4 row reads stay conflict-free.
__device__ __forceinline__ int grad_tile_index(int px, int col) {
  return px * kChannelBlock + ((((col >> 2) ^ (px & 7)) << 2) | (col & 3));
}

// grid (splits, ceil(in_channels / chunk), ceil(out_channels / 32)); block 256. Block (., y, z) owns
// the 32 x (chunk * T) sums of grad channels co0.. and pairs (ci, t) of input channels c0..; it loops
// over (image, phase tile) items x, x + splits, ... and adds its fp32 partial sums atomically.
// Thread: channels co0 + 4 (tid % 8) .. +3 and pairs m = tid / 8 + 32 v (v < 4) with m < chunk * T.
template <typename T>
__global__ void __launch_bounds__(kThreads) phase_weight_grad_kernel(WeightGradArgs<T> p, TapTable taps, Lattice l) {
  extern __shared__ float4 smem[];
  float* s_g = reinterpret_cast<float*>(smem);
  float* s_x = s_g + kTilePixels * kChannelBlock;
  int* s_off = reinterpret_cast<int*>(s_x + p.chunk * l.tile_stride);

  const int co0 = blockIdx.z * kChannelBlock, c0 = blockIdx.y * p.chunk;
  const int nc = min(p.chunk, p.in_channels - c0), pairs = nc * taps.count;
  const int cg = threadIdx.x % (kChannelBlock / kPerThread), mg = threadIdx.x / (kChannelBlock / kPerThread);
  const int64_t plane = int64_t{l.height} * l.width, blocks = spatial_blocks(l);

  for (int q = threadIdx.x; q < taps.count; q += kThreads) s_off[q] = stencil_offset(l, taps.pos[q]);
  __syncthreads();
  int xoff[kPerThread];  // staged-tile offset of pair v at tile pixel 0 (pair 0 when out of range)
#pragma unroll
  for (int v = 0; v < kPerThread; ++v) {
    const int m = mg + 32 * v;
    xoff[v] = m < pairs ? m / taps.count * l.tile_stride + s_off[m % taps.count] : 0;
  }

  float acc[kPerThread][kPerThread] = {};  // [pair v][channel u]
  for (int64_t item = blockIdx.x; item < p.batch * blocks; item += gridDim.x) {
    const int64_t n = item / blocks;
    const PhaseTile t = decode_tile(l, item % blocks);
    if (tile_empty(t)) continue;
    __syncthreads();  // the previous tile is consumed
    const T* g = p.grad_out + n * p.out_channels * plane;
    const T* gate = p.gate == nullptr ? nullptr : p.gate + n * p.out_channels * plane;
    for (int idx = threadIdx.x; idx < kTilePixels * kChannelBlock; idx += kThreads) {
      const int px = idx % kTilePixels, col = idx / kTilePixels;
      const int co = co0 + col, i = t.i0 + px / kTileW, j = t.j0 + px % kTileW;
      float v = 0.f;
      if (co < p.out_channels && i < t.rows && j < t.cols) {
        v = gated(g, gate, p.slope, co * plane + plane_offset(l, t, i, j));
      }
      s_g[grad_tile_index(px, col)] = v;
    }
    stage_halo_tile(s_x, p.x + n * p.in_channels * plane, static_cast<const T*>(nullptr), 0.f, c0, nc, l, t);
    __syncthreads();
    const float4* gs = reinterpret_cast<const float4*>(s_g);
    for (int px = 0; px < kTilePixels; ++px) {
      const float4 gv = gs[px * (kChannelBlock / 4) + (cg ^ (px & 7))];
      const float* xs = s_x + pixel_offset(l, px);
#pragma unroll
      for (int v = 0; v < kPerThread; ++v) fma4(acc[v], xs[xoff[v]], gv);
    }
  }

#pragma unroll
  for (int u = 0; u < kPerThread; ++u) {
    const int co = co0 + cg * kPerThread + u;
    if (co >= p.out_channels) continue;
#pragma unroll
    for (int v = 0; v < kPerThread; ++v) {
      const int m = mg + 32 * v;
      if (m >= pairs) continue;
      const int ci = c0 + m / taps.count, tap = m % taps.count;
      atomicAdd(p.sums + (int64_t{co} * p.in_channels + ci) * taps.count + tap, acc[v][u]);
    }
  }
}

// grad_weight [rows = Cout * Cin][k * k] = sums [rows][T] at the active positions, 0 elsewhere.
template <typename T>
__global__ void __launch_bounds__(kThreads)
    scatter_weight_grad_kernel(const float* sums, T* grad_weight, int64_t rows, int area, TapTable taps) {
  __shared__ int s_slot[kMaxTaps];  // slot of each stencil position, -1 when masked
  for (int q = threadIdx.x; q < area; q += kThreads) s_slot[q] = -1;
  __syncthreads();
  for (int q = threadIdx.x; q < taps.count; q += kThreads) s_slot[taps.pos[q]] = q;
  __syncthreads();
  for (int64_t idx = blockIdx.x * int64_t{kThreads} + threadIdx.x; idx < rows * area; idx += int64_t{gridDim.x} * kThreads) {
    const int s = s_slot[idx % area];
    grad_weight[idx] = from_float<T>(s < 0 ? 0.f : sums[idx / area * taps.count + s]);
  }
}

// ---- grad_bias ------------------------------------------------------------------------------

// grid (channels, splits); block 256. sums[c] += sum of gated grad_out[:, c] over this block's share.
template <typename T>
__global__ void __launch_bounds__(kThreads) bias_grad_kernel(const T* grad_out, const T* gate, float slope, float* sums,
                                                             int64_t batch, int channels, int64_t plane) {
  __shared__ float partial[kThreads];
  const int c = blockIdx.x;
  float s = 0.f;
  for (int64_t e = blockIdx.y * int64_t{kThreads} + threadIdx.x; e < batch * plane; e += int64_t{gridDim.y} * kThreads) {
    s += gated(grad_out, gate, slope, (e / plane * channels + c) * plane + e % plane);
  }
  partial[threadIdx.x] = s;
  for (int stride = kThreads / 2; stride > 0; stride /= 2) {
    __syncthreads();
    if (threadIdx.x < stride) partial[threadIdx.x] += partial[threadIdx.x + stride];
  }
  if (threadIdx.x == 0) atomicAdd(sums + c, partial[0]);
}

// dst[i] = src[i] in T.
template <typename T>
__global__ void __launch_bounds__(kThreads) cast_kernel(const float* src, T* dst, int64_t count) {
  for (int64_t i = blockIdx.x * int64_t{kThreads} + threadIdx.x; i < count; i += int64_t{gridDim.x} * kThreads) {
    dst[i] = from_float<T>(src[i]);
  }
}

// ---- host side ------------------------------------------------------------------------------

// Taps of p; mirrored: position k*k - 1 - tap (the stencil of the transposed conv), same weight tap.
TapTable make_taps(const ConvParams& p, bool mirrored) {
  TapTable table{};
  const int area = p.kernel_size * p.kernel_size;
  table.count = p.num_taps;
  for (int t = 0; t < p.num_taps; ++t) {
    table.widx[t] = static_cast<unsigned char>(p.taps[t]);
    table.pos[t] = static_cast<unsigned char>(mirrored ? area - 1 - p.taps[t] : p.taps[t]);
  }
  return table;
}

bool valid(const ConvParams& p) {
  return p.kernel_size >= 1 && p.kernel_size <= kMaxKernelSize && p.kernel_size % 2 == 1 && p.num_taps >= 0 &&
         p.num_taps <= p.kernel_size * p.kernel_size && p.dilation >= 1 && p.height >= 1 && p.width >= 1 &&
         p.batch >= 0 && p.in_channels >= 0 && p.out_channels >= 0;
}

// Grid-stride launch size for count elements.
unsigned int elementwise_blocks(int64_t count) {
  return static_cast<unsigned int>(std::max<int64_t>(1, std::min<int64_t>((count + kThreads - 1) / kThreads, 4096)));
}

// Blocks for about four waves of the current device's SMs.
cudaError_t target_blocks(int* blocks) {
  int device = 0, sms = 0;
  cudaError_t err = cudaGetDevice(&device);
  if (err == cudaSuccess) err = cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device);
  *blocks = 4 * std::max(sms, 1);
  return err;
}

// Input channels staged per chunk of phase_conv_kernel: as many as fit the shared-memory budget.
int conv_chunk(const Lattice& l, int in_channels, int taps) {
  const int per_channel = taps * kChannelBlock + l.tile_stride;
  const int fit = (kSmemBudget / int(sizeof(float)) - taps) / per_channel;
  return std::max(1, std::min({fit, kMaxChunk, in_channels}));
}

// Conv of `in` [N, in_channels, H, W] into `out` [N, out_channels, H, W], batch in grid.z slices.
template <typename T>
cudaError_t launch_conv(ConvArgs<T> args, const TapTable& taps, const Lattice& l, int64_t batch, cudaStream_t stream) {
  const int64_t blocks = spatial_blocks(l);
  if (blocks > INT_MAX || ceil_div(args.out_channels, kChannelBlock) > kMaxGridYZ) return cudaErrorInvalidConfiguration;
  args.chunk = conv_chunk(l, args.in_channels, taps.count);
  const size_t smem = conv_smem_bytes(l, args.chunk, taps.count);
  for (int64_t n0 = 0; n0 < batch; n0 += kMaxGridYZ) {
    args.batch_offset = n0;
    const dim3 grid(static_cast<unsigned int>(blocks), ceil_div(args.out_channels, kChannelBlock),
                    static_cast<unsigned int>(std::min<int64_t>(batch - n0, kMaxGridYZ)));
    phase_conv_kernel<T><<<grid, kThreads, smem, stream>>>(args, taps, l);
    const cudaError_t err = cudaGetLastError();
    if (err != cudaSuccess) return err;
  }
  return cudaSuccess;
}

// Partial sums [Cout, Cin, T] of grad_weight, accumulated into `sums` (zeroed here); needs T > 0.
template <typename T>
cudaError_t launch_weight_grad(const ConvParams& p, const T* grad_out, const T* gate, const T* x, float* sums,
                               cudaStream_t stream) {
  const Lattice l = make_lattice(p);
  WeightGradArgs<T> args{};
  args.x = x;
  args.grad_out = grad_out;
  args.gate = gate;
  args.slope = p.negative_slope;
  args.sums = sums;
  args.in_channels = p.in_channels;
  args.out_channels = p.out_channels;
  const int fit = (kSmemBudget / int(sizeof(float)) - kTilePixels * kChannelBlock - p.num_taps) / l.tile_stride;
  args.chunk = std::max(1, std::min({kMaxPairs / p.num_taps, fit, kMaxChunk, p.in_channels}));
  args.batch = p.batch;
  const int chunks = ceil_div(p.in_channels, args.chunk), co_blocks = ceil_div(p.out_channels, kChannelBlock);
  if (chunks > kMaxGridYZ || co_blocks > kMaxGridYZ) return cudaErrorInvalidConfiguration;
  int target = 0;
  cudaError_t err = target_blocks(&target);
  if (err != cudaSuccess) return err;
  err = cudaMemsetAsync(sums, 0, sizeof(float) * p.out_channels * p.in_channels * p.num_taps, stream);
  if (err != cudaSuccess) return err;
  // about `target` blocks in all, each looping over its share of the (image, phase tile) items
  const int64_t items = p.batch * spatial_blocks(l), per_split = int64_t{chunks} * co_blocks;
  const int64_t splits = std::max<int64_t>(1, std::min<int64_t>(items, (target + per_split - 1) / per_split));
  const dim3 grid(static_cast<unsigned int>(splits), chunks, co_blocks);
  const size_t smem = weight_grad_smem_bytes(l, args.chunk, p.num_taps);
  phase_weight_grad_kernel<T><<<grid, kThreads, smem, stream>>>(args, make_taps(p, false), l);
  return cudaGetLastError();
}

// Per-channel sums [Cout] of the gated grad_out, accumulated into `sums` (zeroed here).
template <typename T>
cudaError_t launch_bias_grad(const ConvParams& p, const T* grad_out, const T* gate, float* sums, cudaStream_t stream) {
  int target = 0;
  cudaError_t err = target_blocks(&target);
  if (err != cudaSuccess) return err;
  err = cudaMemsetAsync(sums, 0, sizeof(float) * p.out_channels, stream);
  if (err != cudaSuccess) return err;
  const int64_t plane = int64_t{p.height} * p.width, count = p.batch * plane;
  if (count == 0) return cudaSuccess;
  // at least 8 elements per thread, about `target` blocks in all
  const int64_t splits = std::min<int64_t>({(count + 8 * kThreads - 1) / (8 * kThreads),
                                            std::max(1, target / p.out_channels), kMaxGridYZ});
  const dim3 grid(p.out_channels, static_cast<unsigned int>(splits));
  bias_grad_kernel<T><<<grid, kThreads, 0, stream>>>(grad_out, gate, p.negative_slope, sums, p.batch, p.out_channels, plane);
  return cudaGetLastError();
}

}  // namespace

cudaError_t blind_spot_conv2d_forward(const ConvParams& p, const void* x, const void* weight, const void* bias,
                                      void* out, cudaStream_t stream) {
  if (!valid(p)) return cudaErrorInvalidValue;
  if (p.batch == 0 || p.out_channels == 0) return cudaSuccess;
  return dispatch(p.dtype, [&](auto type) {
    using T = typename decltype(type)::type;
    const int area = p.kernel_size * p.kernel_size;
    ConvArgs<T> args{};
    args.in = static_cast<const T*>(x);
    args.weight = static_cast<const T*>(weight);
    args.w_out_stride = int64_t{p.in_channels} * area;  // weight [Cout, Cin, k*k]
    args.w_in_stride = area;
    args.bias = static_cast<const T*>(bias);
    args.out = static_cast<T*>(out);
    args.in_channels = p.in_channels;
    args.out_channels = p.out_channels;
    args.activation = p.activation;
    args.slope = p.negative_slope;
    return launch_conv(args, make_taps(p, false), make_lattice(p), p.batch, stream);
  });
}

cudaError_t blind_spot_conv2d_grad_input(const ConvParams& p, const void* grad_out, const void* out,
                                         const void* weight, void* grad_x, cudaStream_t stream) {
  if (!valid(p)) return cudaErrorInvalidValue;
  if (p.batch == 0 || p.in_channels == 0) return cudaSuccess;
  return dispatch(p.dtype, [&](auto type) {
    using T = typename decltype(type)::type;
    const int area = p.kernel_size * p.kernel_size;
    ConvArgs<T> args{};
    args.in = static_cast<const T*>(grad_out);
    args.gate = p.activation ? static_cast<const T*>(out) : nullptr;
    args.gate_slope = p.negative_slope;
    args.weight = static_cast<const T*>(weight);
    args.w_out_stride = area;  // transposed: weight(ci, co, t) = weight[co, ci, t]
    args.w_in_stride = int64_t{p.in_channels} * area;
    args.out = static_cast<T*>(grad_x);
    args.in_channels = p.out_channels;
    args.out_channels = p.in_channels;
    return launch_conv(args, make_taps(p, true), make_lattice(p), p.batch, stream);
  });
}

cudaError_t blind_spot_conv2d_grad_weight(const ConvParams& p, const void* grad_out, const void* out, const void* x,
                                          float* workspace, void* grad_weight, cudaStream_t stream) {
  if (!valid(p)) return cudaErrorInvalidValue;
  const int64_t rows = int64_t{p.out_channels} * p.in_channels;
  if (rows == 0) return cudaSuccess;
  return dispatch(p.dtype, [&](auto type) {
    using T = typename decltype(type)::type;
    if (p.num_taps > 0 && p.batch > 0) {
      const T* gate = p.activation ? static_cast<const T*>(out) : nullptr;
      const cudaError_t err = launch_weight_grad(p, static_cast<const T*>(grad_out), gate, static_cast<const T*>(x),
                                                 workspace, stream);
      if (err != cudaSuccess) return err;
    }
    const int area = p.kernel_size * p.kernel_size;
    scatter_weight_grad_kernel<T><<<elementwise_blocks(rows * area), kThreads, 0, stream>>>(workspace, static_cast<T*>(grad_weight), rows, area, make_taps(p, false));
    return cudaGetLastError();
  });
}

cudaError_t blind_spot_conv2d_grad_bias(const ConvParams& p, const void* grad_out, const void* out, float* workspace,
                                        void* grad_bias, cudaStream_t stream) {
  if (!valid(p)) return cudaErrorInvalidValue;
  if (p.out_channels == 0) return cudaSuccess;
  return dispatch(p.dtype, [&](auto type) {
    using T = typename decltype(type)::type;
    const T* gate = p.activation ? static_cast<const T*>(out) : nullptr;
    const cudaError_t err = launch_bias_grad(p, static_cast<const T*>(grad_out), gate, workspace, stream);
    if (err != cudaSuccess) return err;
    cast_kernel<T><<<elementwise_blocks(p.out_channels), kThreads, 0, stream>>>(workspace, static_cast<T*>(grad_bias), p.out_channels);
    return cudaGetLastError();
  });
}

}  // namespace cuda
}  // namespace atbsn
