# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Compiled nearest-neighbour upsampling by integer factors, forward and backward."""

import numpy as np

from cython.parallel cimport prange
from libc.string cimport memset

from blas cimport real


cdef void _upsample(const real[:, :, :, ::1] x, real[:, :, :, ::1] y, int sh, int sw) noexcept nogil:
    cdef Py_ssize_t planes = x.shape[0] * x.shape[1], pl
    cdef int h = x.shape[2], w = x.shape[3], i, j, r
    cdef const real* src
    cdef real* dst
    for pl in prange(planes, schedule="static"):
        for i in range(h):
            src = &x[0, 0, 0, 0] + (pl * h + i) * w
            dst = &y[0, 0, 0, 0] + (pl * h + i) * sh * w * sw
            for j in range(w * sw):
                dst[j] = src[j // sw]
            for r in range(1, sh):   # the other sh - 1 rows repeat the first
                for j in range(w * sw):
                    dst[r * w * sw + j] = dst[j]


def upsample_nearest2d(x, scale_factor, *, out):
    sh, sw = scale_factor
    n, c, h, w = x.shape
    y = out
    if x.dtype == np.float32:
        _upsample[float](x, y, sh, sw)
    else:
        _upsample[double](x, y, sh, sw)
    return y


cdef void _upsample_backward(const real[:, :, :, ::1] dy, real[:, :, :, ::1] dx,
                             int sh, int sw) noexcept nogil:
    cdef Py_ssize_t planes = dx.shape[0] * dx.shape[1], pl
    cdef int h = dx.shape[2], w = dx.shape[3], i, j, r
    cdef const real* src
    cdef real* dst
    for pl in prange(planes, schedule="static"):
        for i in range(h):
            dst = &dx[0, 0, 0, 0] + (pl * h + i) * w
            memset(dst, 0, w * sizeof(real))
            for r in range(sh):
                src = &dy[0, 0, 0, 0] + ((pl * h + i) * sh + r) * w * sw
                for j in range(w * sw):
                    dst[j // sw] += src[j]


def upsample_nearest2d_backward(dy, scale_factor, *, out):
    sh, sw = scale_factor
    n, c, h, w = dy.shape
    dx = out
    if dy.dtype == np.float32:
        _upsample_backward[float](dy, dx, sh, sw)
    else:
        _upsample_backward[double](dy, dx, sh, sw)
    return dx
