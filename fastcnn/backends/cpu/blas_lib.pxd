# sgemm and dgemm from the BLAS library picked once at import (see blas_lib.pyx),
# column-major as in Fortran BLAS, every argument passed by value.

cdef void sgemm(char transa, char transb, int m, int n, int k, float alpha, const float* a,
                int lda, const float* b, int ldb, float beta, float* c,
                int ldc) noexcept nogil
cdef void dgemm(char transa, char transb, int m, int n, int k, double alpha, const double* a,
                int lda, const double* b, int ldb, double beta, double* c,
                int ldc) noexcept nogil
