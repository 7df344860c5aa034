# Shared by every kernel module: the fused floating type and a row-major gemm.
# Inline, so each module compiles its own copy; the BLAS routines it calls come
# from blas_lib, which picks NumPy's own OpenBLAS (or SciPy's) once at import.

from fastcnn.backends.cpu.blas_lib cimport dgemm, sgemm

ctypedef fused real:
    float
    double


cdef inline void gemm(bint trans_a, bint trans_b, int m, int n, int k, real alpha,
                      const real* a, int lda, const real* b, int ldb, real beta,
                      real* c, int ldc) noexcept nogil:
    """C (m x n) = alpha * op(A) op(B) + beta * C, every matrix row-major.

    A row-major C = A B is the column-major C^T = B^T A^T: BLAS gets the
    operands swapped and never needs a transposed copy.
    """
    cdef char ta = b'T' if trans_b else b'N'
    cdef char tb = b'T' if trans_a else b'N'
    if real is float:
        sgemm(ta, tb, n, m, k, alpha, <const float*>b, ldb, <const float*>a, lda, beta,
              <float*>c, ldc)
    else:
        dgemm(ta, tb, n, m, k, alpha, <const double*>b, ldb, <const double*>a, lda, beta,
              <double*>c, ldc)
