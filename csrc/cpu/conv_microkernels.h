// Register-blocked fp32 microkernels of the CPU blind-spot conv, for AVX-512 and for AVX2 + FMA,
// chosen at run time by what the CPU supports (ATBSN_CPU_ISA=avx512|avx2|generic overrides it).
//
// They work on the zero-padded channel planes ("windows") of blind_spot_conv2d_cpu.cpp, where the
// input under active tap t of output grid position q is window[c * plane + offsets[t] + q]:
//
// - conv: acc[co, q] = sum over taps t and input channels ci of w[t, ci, co] * window[ci, offsets[t] + q].
//   A tile of R output channels x V vectors of positions stays in registers for the whole sum over
//   taps and channels (no accumulator traffic per tap), reading one vector per channel and tap and
//   broadcasting the weights. Used by the forward and by the input gradient. (The weight gradient
//   stays on the GEMM path: a microkernel that streams the band through registers measured slower.)
#pragma once

#include <cstdint>

namespace atbsn {
namespace cpu {

enum class Isa { kGeneric, kAvx2, kAvx512 };

// The ISA the microkernels use here: the best the CPU supports, or ATBSN_CPU_ISA's choice
// (which must be supported). kGeneric means: use the GEMM path instead.
Isa microkernel_isa();
const char* isa_name(Isa isa);

// Output grid positions per conv tile: the input rows one tile reads set the channel blocks, and
// windows are readable that far beyond the grid.
int64_t conv_tile_positions(Isa isa);

// Positions per vector: a conv computes the grid rounded up to a multiple of it (a band's last
// tile is as many vectors wide as it needs, not a whole tile).
int64_t conv_vector_positions(Isa isa);

struct ConvTiles {
  const float* window;     // [Cin] planes of `plane` floats, readable up to offsets + grid positions
  int64_t plane;           // channel stride of the window
  const int64_t* offsets;  // [taps] window offset of each active tap
  int64_t taps, in_channels, out_channels;
  const float* packed;     // weights packed by pack_conv_weights
  float* acc;              // [Cout] rows of `acc_stride` floats
  int64_t acc_stride;
  int64_t positions;       // grid positions to compute, a multiple of conv_vector_positions
  int64_t channel_block;   // input channels per block (their input rows stay in L1); 0: all
};

// Floats of the packed weights of pack_conv_weights.
int64_t packed_conv_weights_size(Isa isa, int64_t taps, int64_t in_channels, int64_t out_channels);

// packed = weights [taps, Cout, Cin] (row-major, per tap the conv's [Cout, Cin] matrix) in the
// order the conv tiles read them: per block of output channels and then per block of
// `channel_block` input channels (0: all), [taps, block's input channels, output block].
void pack_conv_weights(Isa isa, const float* weights, int64_t taps, int64_t in_channels, int64_t out_channels,
                       int64_t channel_block, float* packed);

void conv_tiles(Isa isa, const ConvTiles& args);

}  // namespace cpu
}  // namespace atbsn
