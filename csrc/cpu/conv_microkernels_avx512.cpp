// The microkernels compiled for AVX-512 (every function of this file; see conv_microkernel_tiles.h).
#include "cpu/conv_microkernels_isa.h"

#if defined(__x86_64__)
#pragma GCC target("avx512f")
#include <immintrin.h>

namespace {

struct Ops : atbsn::cpu::Avx512Shape {
  using V = __m512;
  static inline V zero() { return _mm512_setzero_ps(); }
  static inline V load(const float* p) { return _mm512_loadu_ps(p); }
  static inline V splat(const float* p) { return _mm512_set1_ps(*p); }
  static inline V fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  static inline V add(V a, V b) { return _mm512_add_ps(a, b); }
  static inline void store(float* p, V v) { _mm512_storeu_ps(p, v); }
};

}  // namespace

#include "cpu/conv_microkernel_tiles.h"

namespace atbsn {
namespace cpu {

void conv_tiles_avx512(const ConvTiles& args) { conv_tiles_impl<Ops>(args); }

}  // namespace cpu
}  // namespace atbsn
#endif
