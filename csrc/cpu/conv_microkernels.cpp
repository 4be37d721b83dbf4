// Choosing and calling the microkernels (see conv_microkernels.h); the kernels themselves are in
// conv_microkernels_<isa>.cpp, each compiled for its ISA.
#include "cpu/conv_microkernels.h"

#include <algorithm>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "cpu/conv_microkernels_isa.h"

namespace atbsn {
namespace cpu {
namespace {

Isa detect() {
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) return Isa::kAvx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return Isa::kAvx2;
#endif
  return Isa::kGeneric;
}

// The detected ISA, or ATBSN_CPU_ISA's (which may ask for less, never for more).
Isa choose() {
  const Isa best = detect();
  const char* forced = std::getenv("ATBSN_CPU_ISA");
  if (forced == nullptr || *forced == '\0') return best;
  const std::string name(forced);
  for (Isa isa : {Isa::kGeneric, Isa::kAvx2, Isa::kAvx512}) {
    if (name != isa_name(isa)) continue;
    if (static_cast<int>(isa) > static_cast<int>(best)) {
      throw std::invalid_argument("ATBSN_CPU_ISA=" + name + " is not supported by this CPU (it has " +
                                  isa_name(best) + ")");
    }
    return isa;
  }
  throw std::invalid_argument("ATBSN_CPU_ISA must be avx512, avx2 or generic, got '" + name + "'");
}

int64_t rows_of(Isa isa) { return isa == Isa::kAvx512 ? Avx512Shape::kRows : Avx2Shape::kRows; }

}  // namespace

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::kAvx512:
      return "avx512";
    case Isa::kAvx2:
      return "avx2";
    case Isa::kGeneric:
      break;
  }
  return "generic";
}

Isa microkernel_isa() {
  static const Isa isa = choose();
  return isa;
}

int64_t conv_tile_positions(Isa isa) {
  if (isa == Isa::kAvx512) return Avx512Shape::kLanes * Avx512Shape::kVectors;
  if (isa == Isa::kAvx2) return Avx2Shape::kLanes * Avx2Shape::kVectors;
  return 1;
}

int64_t conv_vector_positions(Isa isa) {
  if (isa == Isa::kAvx512) return Avx512Shape::kLanes;
  if (isa == Isa::kAvx2) return Avx2Shape::kLanes;
  return 1;
}

int64_t packed_conv_weights_size(Isa, int64_t taps, int64_t in_channels, int64_t out_channels) {
  return taps * in_channels * out_channels;
}

void pack_conv_weights(Isa isa, const float* weights, int64_t taps, int64_t in_channels, int64_t out_channels,
                       int64_t channel_block, float* packed) {
  const int64_t block = rows_of(isa), channels = channel_block > 0 ? channel_block : in_channels;
  float* dst = packed;
  for (int64_t co0 = 0; co0 < out_channels; co0 += block) {
    const int64_t rows = std::min(block, out_channels - co0);
    for (int64_t c0 = 0; c0 < in_channels; c0 += channels) {
      const int64_t c1 = std::min(in_channels, c0 + channels);
      for (int64_t t = 0; t < taps; ++t) {
        for (int64_t c = c0; c < c1; ++c) {
          for (int64_t r = 0; r < rows; ++r) *dst++ = weights[(t * out_channels + co0 + r) * in_channels + c];
        }
      }
    }
  }
}

void conv_tiles(Isa isa, const ConvTiles& args) {
#if defined(__x86_64__)
  if (isa == Isa::kAvx512) return conv_tiles_avx512(args);
  if (isa == Isa::kAvx2) return conv_tiles_avx2(args);
#endif
  throw std::logic_error(std::string("conv_tiles: no microkernel for ") + isa_name(isa));
}

}  // namespace cpu
}  // namespace atbsn
