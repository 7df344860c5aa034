# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Compiled elementwise ops (the cpu backend's relu and relu_backward).

NumPy evaluates ReLU's backward one operation at a time, each making a temporary
array (a mask, a where, a copy into out); here each op is a single pass over
memory, the array treated as flat and cut into chunks (chunks.pxd). A training
step runs these on every activation, so the temporaries would cost a visible share.
"""

import numpy as np

from cython.parallel cimport prange

from blas cimport real
from chunks cimport CHUNK, threads_for


def _flat(a):
    return a.reshape(-1)


cdef void relu_chunk(const real* x, real* y, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    cdef real v
    for i in range(n):
        v = x[i]
        y[i] = v if not v <= 0 else 0   # a NaN stays NaN, as with np.maximum(x, 0)


cdef void _relu(const real[::1] x, real[::1] y) noexcept nogil:
    cdef Py_ssize_t n = x.shape[0], chunks = (n + CHUNK - 1) // CHUNK, c
    for c in prange(chunks, schedule="static", num_threads=threads_for(chunks)):
        relu_chunk(&x[0] + c * CHUNK, &y[0] + c * CHUNK, min(CHUNK, n - c * CHUNK))


def relu(x, *, out):
    """max(x, 0); out may be x itself."""
    y = out
    if x.size == 0:
        return y
    if x.dtype == np.float32:
        _relu[float](_flat(x), _flat(y))
    else:
        _relu[double](_flat(x), _flat(y))
    return y


cdef void relu_backward_chunk(const real* dy, const real* y, real* dx,
                              Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    cdef real g
    for i in range(n):
        g = dy[i]   # loaded unconditionally: a select, which vectorises, not a branch
        dx[i] = g if y[i] > 0 else 0


cdef void _relu_backward(const real[::1] dy, const real[::1] y, real[::1] dx) noexcept nogil:
    cdef Py_ssize_t n = dy.shape[0], chunks = (n + CHUNK - 1) // CHUNK, c
    for c in prange(chunks, schedule="static", num_threads=threads_for(chunks)):
        relu_backward_chunk(&dy[0] + c * CHUNK, &y[0] + c * CHUNK, &dx[0] + c * CHUNK,
                            min(CHUNK, n - c * CHUNK))


def relu_backward(dy, y, *, out):
    """dy where the forward output y > 0, else 0."""
    dx = out
    if dy.size == 0:
        return dx
    if dy.dtype == np.float32:
        _relu_backward[float](_flat(dy), _flat(y), _flat(dx))
    else:
        _relu_backward[double](_flat(dy), _flat(y), _flat(dx))
    return dx
