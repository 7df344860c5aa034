# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Compiled optimizer steps (the cpu backend's sgd_step and adam_step).

NumPy evaluates these formulas one operation at a time, each making a temporary
array (Adam: ten passes); here each step is a single pass over memory, the
parameter treated as flat and cut into chunks (chunks.pxd).
"""

import numpy as np

from cython.parallel cimport prange
from libc.math cimport sqrt

from blas cimport real
from chunks cimport CHUNK, threads_for


def _flat(a):
    return a.reshape(-1)


# The reference's formulas (PyTorch's), term for term, in the parameter's precision.

cdef void adam_chunk(real* p, const real* g, real* m, real* v, Py_ssize_t n, real lr1,
                     real scale2, real beta1, real beta2, real eps, real wd) noexcept nogil:
    """lr1 = lr / (1 - beta1^t), scale2 = 1 / sqrt(1 - beta2^t)."""
    cdef Py_ssize_t i
    cdef real gi
    for i in range(n):
        gi = g[i] + wd * p[i] if wd != 0 else g[i]
        m[i] = beta1 * m[i] + (1 - beta1) * gi
        v[i] = beta2 * v[i] + (1 - beta2) * gi * gi
        p[i] -= lr1 * m[i] / (sqrt(v[i]) * scale2 + eps)


cdef void _adam(real[::1] p, const real[::1] g, real[::1] m, real[::1] v, double lr1,
                double scale2, double beta1, double beta2, double eps,
                double wd) noexcept nogil:
    cdef Py_ssize_t n = p.shape[0], chunks = (n + CHUNK - 1) // CHUNK, c, lo
    for c in prange(chunks, schedule="static", num_threads=threads_for(chunks)):
        lo = c * CHUNK
        adam_chunk(&p[0] + lo, &g[0] + lo, &m[0] + lo, &v[0] + lo, min(CHUNK, n - lo),
                   <real>lr1, <real>scale2, <real>beta1, <real>beta2, <real>eps, <real>wd)


def adam_step(param, grad, m, v, step, lr, beta1, beta2, eps, weight_decay):
    if param.size == 0:
        return
    lr1, scale2 = lr / (1 - beta1 ** step), 1 / sqrt(1 - beta2 ** step)
    args = (_flat(param), _flat(grad), _flat(m), _flat(v), lr1, scale2, beta1, beta2, eps,
            weight_decay)
    if param.dtype == np.float32:
        _adam[float](*args)
    else:
        _adam[double](*args)


cdef void sgd_chunk(real* p, const real* g, real* vel, Py_ssize_t n, real lr, real momentum,
                    bint nesterov, real wd) noexcept nogil:
    cdef Py_ssize_t i
    cdef real gi
    if vel == NULL:
        for i in range(n):
            gi = g[i] + wd * p[i] if wd != 0 else g[i]
            p[i] -= lr * gi
        return
    for i in range(n):
        gi = g[i] + wd * p[i] if wd != 0 else g[i]
        vel[i] = momentum * vel[i] + gi
        gi = gi + momentum * vel[i] if nesterov else vel[i]
        p[i] -= lr * gi


cdef void _sgd(real[::1] p, const real[::1] g, real[::1] vel, double lr, double momentum,
               bint nesterov, double wd) noexcept nogil:
    """vel is None without momentum."""
    cdef Py_ssize_t n = p.shape[0], chunks = (n + CHUNK - 1) // CHUNK, c, lo
    cdef real* pv = NULL if vel is None else &vel[0]
    for c in prange(chunks, schedule="static", num_threads=threads_for(chunks)):
        lo = c * CHUNK
        sgd_chunk(&p[0] + lo, &g[0] + lo, NULL if pv == NULL else pv + lo,
                  min(CHUNK, n - lo), <real>lr, <real>momentum, nesterov, <real>wd)


def sgd_step(param, grad, velocity, lr, momentum, nesterov, weight_decay):
    if param.size == 0:
        return
    vel = _flat(velocity) if momentum else None
    if param.dtype == np.float32:
        _sgd[float](_flat(param), _flat(grad), vel, lr, momentum, nesterov, weight_decay)
    else:
        _sgd[double](_flat(param), _flat(grad), vel, lr, momentum, nesterov, weight_decay)
