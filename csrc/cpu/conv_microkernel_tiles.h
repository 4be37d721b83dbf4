// The microkernel templates, included once per ISA by conv_microkernels_<isa>.cpp after that file
// has set its target (so no standard header may be included here: their inline functions would be
// compiled for the ISA and could leak to other files). `Ops` supplies the vector type, its
// operations and the tile shape; everything here has internal linkage.
#pragma once

#define ATBSN_UNROLL _Pragma("GCC unroll 8")

namespace {

inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

// acc[r, q0 + lane] (+)= the sum over taps and input channels [c0, c1) for r < R, over one tile of
// R output channels and V vectors of positions; adds to acc unless `first`. Each block's sum starts
// from zero and is added to acc once, so rounding errors grow with a block's terms plus the number
// of blocks, not with all taps x channels.
template <typename Ops, int R, int V>
inline void conv_tile(const atbsn::cpu::ConvTiles& a, const float* weights, float* acc, int64_t q0, int64_t c0,
                      int64_t c1, bool first) {
  typename Ops::V sums[R][V];
  ATBSN_UNROLL for (int r = 0; r < R; ++r) {
    ATBSN_UNROLL for (int j = 0; j < V; ++j) {
      sums[r][j] = Ops::zero();
    }
  }
  // this block's weights: [taps, c1 - c0, R], read in order
  const float* wc = weights + c0 * a.taps * R;
  for (int64_t t = 0; t < a.taps; ++t) {
    const float* src = a.window + a.offsets[t] + q0;
    for (int64_t c = c0; c < c1; ++c, wc += R) {
      const float* s = src + c * a.plane;
      typename Ops::V x[V];
      ATBSN_UNROLL for (int j = 0; j < V; ++j) x[j] = Ops::load(s + Ops::kLanes * j);
      ATBSN_UNROLL for (int r = 0; r < R; ++r) {
        const typename Ops::V w = Ops::splat(wc + r);
        ATBSN_UNROLL for (int j = 0; j < V; ++j) sums[r][j] = Ops::fma(w, x[j], sums[r][j]);
      }
    }
  }
  ATBSN_UNROLL for (int r = 0; r < R; ++r) {
    ATBSN_UNROLL for (int j = 0; j < V; ++j) {
      float* dst = acc + r * a.acc_stride + q0 + Ops::kLanes * j;
      Ops::store(dst, first ? sums[r][j] : Ops::add(Ops::load(dst), sums[r][j]));
    }
  }
}

// f.template operator()<n>() for the run-time n in 1..N (the size of a partial block).
template <int N, typename F>
inline void with_size(int n, F&& f) {
  if constexpr (N > 0) {
    if (n == N) return f.template operator()<N>();
    with_size<N - 1>(n, f);
  }
}

// Tile by tile of positions (the last one as many vectors wide as the positions left); within
// one, blocks of input channels whose input rows stay in L1 while every block of output channels
// reads them.
template <typename Ops>
inline void conv_tiles_impl(const atbsn::cpu::ConvTiles& a) {
  constexpr int64_t kTile = Ops::kLanes * Ops::kVectors;
  const int64_t block = a.channel_block > 0 ? a.channel_block : a.in_channels;
  for (int64_t q0 = 0; q0 < a.positions; q0 += kTile) {
    const int vectors = static_cast<int>(min64(kTile, a.positions - q0) / Ops::kLanes);
    for (int64_t c0 = 0; c0 < a.in_channels; c0 += block) {
      const int64_t c1 = min64(a.in_channels, c0 + block);
      for (int64_t co0 = 0; co0 < a.out_channels; co0 += Ops::kRows) {
        const int rows = static_cast<int>(min64(Ops::kRows, a.out_channels - co0));
        const float* weights = a.packed + co0 * a.taps * a.in_channels;
        float* acc = a.acc + co0 * a.acc_stride;
        with_size<Ops::kVectors>(vectors, [&]<int V>() {
          with_size<Ops::kRows>(rows, [&]<int R>() { conv_tile<Ops, R, V>(a, weights, acc, q0, c0, c1, c0 == 0); });
        });
      }
    }
  }
}

}  // namespace
