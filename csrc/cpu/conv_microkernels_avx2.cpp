// The microkernels compiled for AVX2 + FMA (every function of this file; see conv_microkernel_tiles.h).
#include "cpu/conv_microkernels_isa.h"

#if defined(__x86_64__)
#pragma GCC target("avx2,fma")
#include <immintrin.h>

namespace {

struct Ops : atbsn::cpu::Avx2Shape {
  using V = __m256;
  static inline V zero() { return _mm256_setzero_ps(); }
  static inline V load(const float* p) { return _mm256_loadu_ps(p); }
  static inline V splat(const float* p) { return _mm256_broadcast_ss(p); }
  static inline V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static inline V add(V a, V b) { return _mm256_add_ps(a, b); }
  static inline void store(float* p, V v) { _mm256_storeu_ps(p, v); }
};

}  // namespace

#include "cpu/conv_microkernel_tiles.h"

namespace atbsn {
namespace cpu {

void conv_tiles_avx2(const ConvTiles& args) { conv_tiles_impl<Ops>(args); }

}  // namespace cpu
}  // namespace atbsn
#endif
