# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Compiled matmul and linear layer, forward and backward: one gemm each.

Like the conv kernels, these keep BLAS on one thread and split the work over
the OpenMP threads themselves (each thread computes a block of the output), so
fastcnn.set_num_threads governs every kernel and two thread pools never
compete for the cores.

A batched matmul is a list of products per output matrix (``_products``): the
forward's c[z] is one product, a broadcast operand's gradient the sum of one per
matrix it was broadcast to. With enough output matrices each thread takes whole
ones (summing its products in a fixed order, no two threads on one matrix);
with few, each product is cut over the threads as above.
"""

import math

import numpy as np

from cython.parallel cimport prange
from libc.string cimport memcpy, memset
from openmp cimport omp_get_max_threads

from blas cimport gemm, real

from fastcnn.backends.cpu.blas_threads import blas_threads, single_threaded_blas


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


cdef void _gemm(const real[:, ::1] a, const real[:, ::1] b, real[:, ::1] c) noexcept nogil:
    cdef int m = a.shape[0], k = a.shape[1], n = b.shape[1]
    gemm(False, False, m, n, k, <real>1, &a[0, 0], k, &b[0, 0], n, <real>0, &c[0, 0], n)


LARGE = 2.0**24   # multiply-adds (256^3) from which a 2-D matmul is one threaded BLAS call


def matmul(a, b, *, out):
    c = out
    if a.ndim > 2:
        return _batched_matmul(a, b, c)
    if c.size == 0:
        return c
    if a.shape[1] == 0:
        c[...] = 0
        return c
    if <double>a.shape[0] * a.shape[1] * b.shape[1] >= LARGE:
        # One large product: the library's own threads (packing shared between them,
        # as NumPy's matmul does) beat one gemm per block of the output.
        with blas_threads(omp_get_max_threads()):
            if a.dtype == np.float32:
                _gemm[float](a, b, c)
            else:
                _gemm[double](a, b, c)
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


# ---------------------------------------------------------------- batched matmul


cdef void _products(bint trans_a, bint trans_b, int m, int n, int k, const real[::1] a,
                    const long[::1] a_ids, const real[::1] b, const long[::1] b_ids,
                    real[::1] c, const long[::1] starts) noexcept nogil:
    """c[t] = the sum over q in starts[t]:starts[t+1] of op(a[a_ids[q]]) op(b[b_ids[q]]) for
    every output matrix t, where a[i] is a's i-th matrix (m x k, or k x m transposed), b[i]
    b's (k x n, or n x k) and c[t] c's (m x n): all flat."""
    cdef Py_ssize_t targets = starts.shape[0] - 1, t, q
    cdef Py_ssize_t a_size = <Py_ssize_t>m * k, b_size = <Py_ssize_t>k * n
    cdef Py_ssize_t c_size = <Py_ssize_t>m * n
    cdef int lda = m if trans_a else k, ldb = k if trans_b else n
    cdef real beta
    if targets >= 2 * omp_get_max_threads():   # whole output matrices per thread
        for t in prange(targets, schedule="static"):
            if starts[t] == starts[t + 1]:
                memset(&c[0] + t * c_size, 0, c_size * sizeof(real))
            for q in range(starts[t], starts[t + 1]):
                beta = 0 if q == starts[t] else 1
                gemm(trans_a, trans_b, m, n, k, <real>1, &a[0] + a_ids[q] * a_size, lda,
                     &b[0] + b_ids[q] * b_size, ldb, beta, &c[0] + t * c_size, n)
        return
    for t in range(targets):                   # each product cut over the threads
        if starts[t] == starts[t + 1]:
            memset(&c[0] + t * c_size, 0, c_size * sizeof(real))
        for q in range(starts[t], starts[t + 1]):
            parallel_gemm(trans_a, trans_b, m, n, k, &a[0] + a_ids[q] * a_size, lda,
                          &b[0] + b_ids[q] * b_size, ldb, 0 if q == starts[t] else 1,
                          &c[0] + t * c_size, n)


def _ids(batch, shape):
    """For each output matrix (row-major over the batch axes), the index of the operand's
    matrix it uses (the same one along the axes where the operand is broadcast)."""
    ids = np.arange(math.prod(shape), dtype=np.int_).reshape(shape)
    return np.ascontiguousarray(np.broadcast_to(ids, batch).reshape(-1))


def _by_target(targets, count, a_ids, b_ids):
    """The products regrouped by the output matrix they add to (count of them), in a fixed
    order: (a_ids, b_ids, starts)."""
    order = np.argsort(targets, kind="stable")
    starts = np.searchsorted(targets[order], np.arange(count + 1)).astype(np.int_)
    return np.ascontiguousarray(a_ids[order]), np.ascontiguousarray(b_ids[order]), starts


def _run(trans_a, trans_b, m, n, k, a, a_ids, b, b_ids, c, starts):
    if c.size == 0:
        return
    if k == 0:
        c[...] = 0
        return
    with single_threaded_blas():
        if c.dtype == np.float32:
            _products[float](trans_a, trans_b, m, n, k, a.reshape(-1), a_ids, b.reshape(-1),
                             b_ids, c.reshape(-1), starts)
        else:
            _products[double](trans_a, trans_b, m, n, k, a.reshape(-1), a_ids, b.reshape(-1),
                              b_ids, c.reshape(-1), starts)


def _dims(dc, a, b):
    """(batch shape, a's batch shape, b's, m, k, n); no negative indices here, where
    wraparound is off."""
    axes = a.ndim - 2
    return (dc.shape[:axes], a.shape[:axes], b.shape[:axes], a.shape[axes], a.shape[axes + 1],
            b.shape[axes + 1])


def _batched_matmul(a, b, c):
    """c[z] = a[z] b[z] over the batch axes, a and b broadcast."""
    batch, a_batch, b_batch, m, k, n = _dims(c, a, b)
    a_ids, b_ids = _ids(batch, a_batch), _ids(batch, b_batch)
    _run(False, False, m, n, k, a, a_ids, b, b_ids, c, np.arange(len(a_ids) + 1))
    return c


def matmul_backward(dc, a, b, *, out):
    """da[i] = the sum of dc[z] b[z]^T over the z that used a's i-th matrix; db likewise
    of a[z]^T dc[z]."""
    da, db = out
    batch, a_batch, b_batch, m, k, n = _dims(dc, a, b)
    a_ids, b_ids = _ids(batch, a_batch), _ids(batch, b_batch)
    c_ids = np.arange(len(a_ids), dtype=np.int_)
    first, second, starts = _by_target(a_ids, da.size // max(m * k, 1), c_ids, b_ids)
    _run(False, True, m, k, n, dc, first, b, second, da, starts)
    first, second, starts = _by_target(b_ids, db.size // max(k * n, 1), a_ids, c_ids)
    _run(True, False, k, n, m, a, first, dc, second, db, starts)
    return da, db
