// The per-ISA entry points of the microkernels (defined in conv_microkernels_<isa>.cpp, each compiled
// for its ISA; call one only where microkernel_isa() says the CPU has it) and their tile shapes.
#pragma once

#include "cpu/conv_microkernels.h"

namespace atbsn {
namespace cpu {

// Conv tile: kRows output channels x kVectors vectors of kLanes positions.
struct Avx512Shape {
  static constexpr int kLanes = 16, kRows = 8, kVectors = 3;
};
struct Avx2Shape {
  static constexpr int kLanes = 8, kRows = 4, kVectors = 3;
};

void conv_tiles_avx512(const ConvTiles& args);
void conv_tiles_avx2(const ConvTiles& args);

}  // namespace cpu
}  // namespace atbsn
