// Row-major GEMM on raw pointers through the Fortran BLAS interface that libtorch_cpu exports
// (MKL on x86-64 builds, OpenBLAS elsewhere). Calling it directly instead of at::mm on tensor
// views keeps the per-call cost at nanoseconds: the shift-GEMM kernels issue thousands of
// small GEMMs per layer.
#pragma once

#include <cstdint>

extern "C" {
void sgemm_(const char* transa, const char* transb, const int* m, const int* n, const int* k, const float* alpha,
            const float* a, const int* lda, const float* b, const int* ldb, const float* beta, float* c, const int* ldc);
void dgemm_(const char* transa, const char* transb, const int* m, const int* n, const int* k, const double* alpha,
            const double* a, const int* lda, const double* b, const int* ldb, const double* beta, double* c,
            const int* ldc);
}

namespace atbsn {

inline void fortran_gemm(const char* ta, const char* tb, const int* m, const int* n, const int* k, const float* alpha,
                         const float* a, const int* lda, const float* b, const int* ldb, const float* beta, float* c,
                         const int* ldc) {
  sgemm_(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

inline void fortran_gemm(const char* ta, const char* tb, const int* m, const int* n, const int* k, const double* alpha,
                         const double* a, const int* lda, const double* b, const int* ldb, const double* beta,
                         double* c, const int* ldc) {
  dgemm_(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

// C[m, n] = op(A)[m, k] @ op(B)[k, n] + beta * C, all row-major with leading dimensions lda, ldb, ldc;
// op(X) = X^T when trans_x (X then stored as [k, m] or [n, k]).
template <typename scalar_t>
void gemm_row_major(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const scalar_t* a, int64_t lda,
                    const scalar_t* b, int64_t ldb, scalar_t beta, scalar_t* c, int64_t ldc) {
  // Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: swap the operands.
  const int mi = static_cast<int>(n), ni = static_cast<int>(m), ki = static_cast<int>(k);
  const int la = static_cast<int>(ldb), lb = static_cast<int>(lda), lc = static_cast<int>(ldc);
  const scalar_t one = 1;
  fortran_gemm(trans_b ? "T" : "N", trans_a ? "T" : "N", &mi, &ni, &ki, &one, b, &la, a, &lb, &beta, c, &lc);
}

}  // namespace atbsn
