# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Compiled matmul and linear layer, forward and backward: one gemm each.

Like the conv kernels, these keep BLAS on one thread and split the work over
the OpenMP threads themselves (each thread computes a block of the output), so
fastcnn.set_num_threads governs every kernel and two thread pools never
compete for the cores.
"""

import numpy as np

from cython.parallel cimport prange
from libc.string cimport memcpy
from openmp cimport omp_get_max_threads

from blas cimport gemm, real

from fastcnn.backends.cpu.blas_threads import single_threaded_blas


cdef void parallel_gemm(bint trans_a, bint trans_b, int m, int n, int k, const real* a,
                        int lda, const real* b, int ldb, real beta, real* c,
                        int ldc) noexcept nogil:
    """C = op(A) op(B) + beta C (row-major), the output cut into one block per thread
    along its longer side."""
    cdef int parts = max(1, min(omp_get_max_threads(), max(m, n) // 32)), p, lo, hi
    cdef bint by_rows = m >= n
    cdef int length = m if by_rows else n
    for p in prange(parts, schedule="static", num_threads=parts):
        lo, hi = <int>((<long>length * p) // parts), <int>((<long>length * (p + 1)) // parts)
        if hi <= lo:
            continue
        if by_rows:   # rows [lo, hi) of C need rows [lo, hi) of op(A)
            gemm(trans_a, trans_b, hi - lo, n, k, <real>1, a + (lo if trans_a else lo * lda),
                 lda, b, ldb, beta, c + lo * ldc, ldc)
        else:         # columns [lo, hi) of C need columns [lo, hi) of op(B)
            gemm(trans_a, trans_b, m, hi - lo, k, <real>1, a, lda,
                 b + (lo * ldb if trans_b else lo), ldb, beta, c + lo, ldc)


cdef void _matmul(const real[:, ::1] a, const real[:, ::1] b, real[:, ::1] c) noexcept nogil:
    cdef int m = a.shape[0], k = a.shape[1], n = b.shape[1]
    parallel_gemm(False, False, m, n, k, &a[0, 0], k, &b[0, 0], n, <real>0, &c[0, 0], n)


def matmul(a, b, *, out):
    c = out
    if c.size == 0:
        return c
    if a.shape[1] == 0:
        c[...] = 0
        return c
    with single_threaded_blas():
        if a.dtype == np.float32:
            _matmul[float](a, b, c)
        else:
            _matmul[double](a, b, c)
    return c


cdef void _linear(const real[:, ::1] x, const real[:, ::1] weight, const real[::1] bias,
                  real[:, ::1] y) noexcept nogil:
    cdef int n = x.shape[0], fin = x.shape[1], fout = weight.shape[0], r
    cdef real beta = 0
    if bias is not None:
        beta = 1
        for r in range(n):
            memcpy(&y[r, 0], &bias[0], fout * sizeof(real))
    # y (N x out) = x (N x in) . W^T (in x out) [+ bias]
    parallel_gemm(False, True, n, fout, fin, &x[0, 0], fin, &weight[0, 0], fin, beta,
                  &y[0, 0], fout)


def linear(x, weight, bias, *, out):
    y = out
    if x.shape[1] == 0:
        y[...] = 0 if bias is None else bias
        return y
    with single_threaded_blas():
        if x.dtype == np.float32:
            _linear[float](x, weight, bias, y)
        else:
            _linear[double](x, weight, bias, y)
    return y


cdef void _linear_backward(const real[:, ::1] dy, const real[:, ::1] x,
                           const real[:, ::1] weight, real[:, ::1] dx, real[:, ::1] dweight,
                           real[::1] dbias, bint need_dx) noexcept nogil:
    cdef int n = x.shape[0], fin = x.shape[1], fout = weight.shape[0], r, o
    # dx (N x in) = dy (N x out) . W (out x in)
    if need_dx:
        parallel_gemm(False, False, n, fin, fout, &dy[0, 0], fout, &weight[0, 0], fin,
                      <real>0, &dx[0, 0], fin)
    # dW (out x in) = dy^T (out x N) . x (N x in)
    parallel_gemm(True, False, fout, fin, n, &dy[0, 0], fout, &x[0, 0], fin, <real>0,
                  &dweight[0, 0], fin)
    for o in range(fout):
        dbias[o] = 0
    for r in range(n):
        for o in range(fout):
            dbias[o] += dy[r, o]


def linear_backward(dy, x, weight, need_dx, *, out):
    dx, dweight, dbias = out   # dx is None unless need_dx
    if x.shape[1] == 0:
        dbias[...] = dy.sum(axis=0)
        return dx, dweight, dbias
    with single_threaded_blas():
        if x.dtype == np.float32:
            _linear_backward[float](dy, x, weight, dx, dweight, dbias, need_dx)
        else:
            _linear_backward[double](dy, x, weight, dx, dweight, dbias, need_dx)
    return dx, dweight, dbias
