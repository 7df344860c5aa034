# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Compiled elementwise training ops (the cpu backend's relu, relu_backward, sgd_step and
adam_step).

NumPy evaluates these formulas one operation at a time, each making a
temporary array (ReLU's backward: a mask, a where, a copy into out; Adam: ten
passes). Here each op is a single pass over memory. Arrays are treated as flat
and cut into chunks that OpenMP threads take in turn; a chunk is big enough to
amortise the scheduling and small enough to stay in cache.
"""

import numpy as np

from cython.parallel cimport prange
from libc.math cimport sqrt
from openmp cimport omp_get_max_threads

from blas cimport real

cdef Py_ssize_t CHUNK = 1 << 15   # elements per task


cdef inline int threads_for(Py_ssize_t chunks) noexcept nogil:
    """No more threads than chunks: a small array runs on the calling thread alone."""
    return <int>min(<Py_ssize_t>omp_get_max_threads(), chunks)


def _flat(a):
    return a.reshape(-1)


# ---------------------------------------------------------------- ReLU


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


def relu(x, *, out=None):
    """max(x, 0); out may be x itself."""
    y = out if out is not None else np.empty_like(x)
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


def relu_backward(dy, y, *, out=None):
    """dy where the forward output y > 0, else 0."""
    dx = out if out is not None else np.empty_like(dy)
    if dy.size == 0:
        return dx
    if dy.dtype == np.float32:
        _relu_backward[float](_flat(dy), _flat(y), _flat(dx))
    else:
        _relu_backward[double](_flat(dy), _flat(y), _flat(dx))
    return dx


# ---------------------------------------------------------------- optimizer steps
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
