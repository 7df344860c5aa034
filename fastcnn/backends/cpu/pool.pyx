# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Compiled max and average pooling, forward and backward (the cpu backend's pool ops).

Every (image, channel) plane is independent: OpenMP threads take whole planes,
so the backward passes, which scatter the error back over overlapping
windows, never write to the same pixel from two threads.
"""

import numpy as np

from cython.parallel cimport prange
from libc.math cimport INFINITY
from libc.string cimport memset

from blas cimport real


cdef struct Window:
    int h, w, oh, ow, kh, kw, sh, sw, ph, pw


cdef Window window(tuple x_shape, tuple y_shape, tuple kernel_size, tuple stride,
                   tuple padding):
    cdef Window g
    g.h, g.w = x_shape[2], x_shape[3]
    g.oh, g.ow = y_shape[2], y_shape[3]
    g.kh, g.kw = kernel_size
    g.sh, g.sw = stride
    g.ph, g.pw = padding[0], padding[2]   # the leading pads; y's shape says the rest
    return g


# ---------------------------------------------------------------- max pooling


cdef inline void tap_columns(const Window* g, int j, int* lo, int* hi) noexcept nogil:
    """The output columns [lo, hi) whose window tap j lands inside the row (not in padding)."""
    cdef int offset = j - g.pw   # input column of output 0's tap j
    cdef Py_ssize_t s = g.sw     # 64-bit sums: a stride near 2**31 would overflow an int
    lo[0] = 0 if offset >= 0 else <int>min((-offset + s - 1) // s, <Py_ssize_t>g.ow)
    hi[0] = 0 if g.w - offset <= 0 else <int>min((g.w - offset + s - 1) // s,
                                                 <Py_ssize_t>g.ow)
    hi[0] = max(hi[0], lo[0])


cdef void max_pool_plane(const real* x, real* y, int* idx, Window g) noexcept nogil:
    """One plane, tap by tap over a whole output row: the inner loop is a branch-free
    select the compiler can vectorise, and each output still sees its taps in
    row-major order."""
    cdef int o, q, i, j, ih, lo, hi, first, at
    cdef int w = g.w, sw = g.sw   # locals: the stores below cannot change them
    cdef real v, b
    cdef bint take
    cdef const real* src
    cdef real* best
    cdef int* best_at
    for o in range(g.oh):
        best, best_at = y + o * g.ow, idx + o * g.ow
        ih = max(o * g.sh - g.ph, 0)
        for q in range(g.ow):   # start from the window's first pixel inside the image
            first = ih * w + max(q * sw - g.pw, 0)
            best[q], best_at[q] = x[first], first
        for i in range(g.kh):
            ih = o * g.sh - g.ph + i
            if ih < 0 or ih >= g.h:
                continue
            for j in range(g.kw):
                tap_columns(&g, j, &lo, &hi)
                src = x + ih * w + j - g.pw
                at = ih * w + j - g.pw
                for q in range(lo, hi):
                    v, b = src[q * sw], best[q]
                    # A strictly larger value wins (ties keep the first); a NaN beats a
                    # number and then stays: "not v <= best, unless best is NaN".
                    take = (not v <= b) & (b == b)
                    best[q] = v if take else b
                    best_at[q] = at + q * sw if take else best_at[q]


cdef void _max_pool(const real[:, :, :, ::1] x, real[:, :, :, ::1] y, int[:, :, :, ::1] idx,
                    Window g) noexcept nogil:
    cdef Py_ssize_t pl, hw = g.h * g.w, ohw = g.oh * g.ow
    for pl in prange(x.shape[0] * x.shape[1], schedule="static"):
        max_pool_plane(&x[0, 0, 0, 0] + pl * hw, &y[0, 0, 0, 0] + pl * ohw,
                       &idx[0, 0, 0, 0] + pl * ohw, g)


def max_pool2d(x, kernel_size, stride, padding, *, out):
    y, idx = out
    cdef Window g = window(x.shape, y.shape, kernel_size, stride, padding)
    if x.dtype == np.float32:
        _max_pool[float](x, y, idx, g)
    else:
        _max_pool[double](x, y, idx, g)
    return y, idx


cdef void _max_unpool(const real[:, :, :, ::1] dy, const int[:, :, :, ::1] idx,
                      real[:, :, :, ::1] dx) noexcept nogil:
    cdef Py_ssize_t planes = dx.shape[0] * dx.shape[1], pl, e
    cdef Py_ssize_t hw = dx.shape[2] * dx.shape[3], ohw = dy.shape[2] * dy.shape[3]
    cdef real* dxp
    cdef const real* dyp
    cdef const int* ip
    for pl in prange(planes, schedule="static"):
        dxp = &dx[0, 0, 0, 0] + pl * hw
        dyp = &dy[0, 0, 0, 0] + pl * ohw
        ip = &idx[0, 0, 0, 0] + pl * ohw
        memset(dxp, 0, hw * sizeof(real))
        for e in range(ohw):
            dxp[ip[e]] += dyp[e]


def max_pool2d_backward(dy, indices, input_shape, *, out):
    dx = out
    if dy.dtype == np.float32:
        _max_unpool[float](dy, indices, dx)
    else:
        _max_unpool[double](dy, indices, dx)
    return dx


# ---------------------------------------------------------------- average pooling
# Padded zeros count in the divisor, so every window divides by kh * kw.


cdef void avg_pool_plane(const real* x, real* y, Window g) noexcept nogil:
    """One plane, tap by tap over a whole output row (a vectorisable sum)."""
    cdef int o, q, i, j, ih, lo, hi
    cdef int sw = g.sw
    cdef real scale = <real>1 / (g.kh * g.kw)
    cdef const real* src
    cdef real* acc
    for o in range(g.oh):
        acc = y + o * g.ow
        for q in range(g.ow):
            acc[q] = 0
        for i in range(g.kh):
            ih = o * g.sh - g.ph + i
            if ih < 0 or ih >= g.h:
                continue
            for j in range(g.kw):
                tap_columns(&g, j, &lo, &hi)
                src = x + ih * g.w + j - g.pw
                for q in range(lo, hi):
                    acc[q] += src[q * sw]
        for q in range(g.ow):
            acc[q] *= scale


cdef void _avg_pool(const real[:, :, :, ::1] x, real[:, :, :, ::1] y, Window g) noexcept nogil:
    cdef Py_ssize_t pl, hw = g.h * g.w, ohw = g.oh * g.ow
    for pl in prange(x.shape[0] * x.shape[1], schedule="static"):
        avg_pool_plane(&x[0, 0, 0, 0] + pl * hw, &y[0, 0, 0, 0] + pl * ohw, g)


def avg_pool2d(x, kernel_size, stride, padding, *, out):
    y = out
    cdef Window g = window(x.shape, y.shape, kernel_size, stride, padding)
    if x.dtype == np.float32:
        _avg_pool[float](x, y, g)
    else:
        _avg_pool[double](x, y, g)
    return y


cdef void avg_unpool_plane(const real* dy, real* dx, Window g) noexcept nogil:
    """Each window's error, divided by the window size, added back to its pixels."""
    cdef int o, q, i, j, ih, lo, hi
    cdef int sw = g.sw
    cdef real scale = <real>1 / (g.kh * g.kw)
    cdef const real* share
    cdef real* dst
    memset(dx, 0, g.h * g.w * sizeof(real))
    for o in range(g.oh):
        share = dy + o * g.ow
        for i in range(g.kh):
            ih = o * g.sh - g.ph + i
            if ih < 0 or ih >= g.h:
                continue
            for j in range(g.kw):
                tap_columns(&g, j, &lo, &hi)
                dst = dx + ih * g.w + j - g.pw
                for q in range(lo, hi):
                    dst[q * sw] += share[q] * scale


cdef void _avg_unpool(const real[:, :, :, ::1] dy, real[:, :, :, ::1] dx, Window g) noexcept nogil:
    cdef Py_ssize_t pl, hw = g.h * g.w, ohw = g.oh * g.ow
    for pl in prange(dx.shape[0] * dx.shape[1], schedule="static"):
        avg_unpool_plane(&dy[0, 0, 0, 0] + pl * ohw, &dx[0, 0, 0, 0] + pl * hw, g)


def avg_pool2d_backward(dy, input_shape, kernel_size, stride, padding, *, out):
    dx = out
    cdef Window g = window(input_shape, dy.shape, kernel_size, stride, padding)
    if dy.dtype == np.float32:
        _avg_unpool[float](dy, dx, g)
    else:
        _avg_unpool[double](dy, dx, g)
    return dx
