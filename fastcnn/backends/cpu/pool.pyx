# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Compiled max and average pooling, fixed windows (stride, padding, dilation, ceil_mode,
the divisor rules) and adaptive ones, forward and backward (the cpu backend's pool ops).

Every (image, channel) plane is independent: OpenMP threads take whole planes,
so the backward passes, which scatter the error back over overlapping
windows, never write to the same pixel from two threads. The output sizes come
from the out arrays' shapes (fastcnn.functional computed them).
"""

import numpy as np

from cython.parallel cimport prange, threadid
from libc.string cimport memset
from openmp cimport omp_get_max_threads

from blas cimport real

from fastcnn.backends.cpu.workspace import workspace


cdef struct Window:
    int h, w, oh, ow, kh, kw, sh, sw, dh, dw
    int ph, pw, pb, pr   # the pads: top, left (the leading ones), bottom, right
    bint include_pad     # average pooling's divisor: count the padding?
    int divisor          # ... or the same divisor for every window (0: per window)


cdef Window window(tuple x_shape, tuple y_shape, tuple kernel_size, tuple stride,
                   tuple padding, tuple dilation=(1, 1)):
    cdef Window g
    g.h, g.w = x_shape[2], x_shape[3]
    g.oh, g.ow = y_shape[2], y_shape[3]
    g.kh, g.kw = kernel_size
    g.sh, g.sw = stride
    g.dh, g.dw = dilation
    g.ph, g.pb, g.pw, g.pr = padding
    g.include_pad, g.divisor = True, 0
    return g


cdef inline void tap_columns(const Window* g, int j, int* lo, int* hi) noexcept nogil:
    """The output columns [lo, hi) whose window tap j lands inside the row (not in padding,
    nor past it: ceil_mode's last window may reach beyond)."""
    cdef int offset = j * g.dw - g.pw   # input column of output 0's tap j
    lo[0] = 0 if offset >= 0 else min((-offset + g.sw - 1) // g.sw, g.ow)
    hi[0] = 0 if g.w - offset <= 0 else min((g.w - offset + g.sw - 1) // g.sw, g.ow)
    hi[0] = max(hi[0], lo[0])


cdef inline int first_inside(int start, int d) noexcept nogil:
    """The first tap start + m * d at or past 0 (fastcnn.functional made sure one lies inside
    the input, for every window)."""
    return start if start >= 0 else start + (-start + d - 1) // d * d


# ---------------------------------------------------------------- max pooling


cdef void max_pool_plane(const real* x, real* y, int* idx, Window g) noexcept nogil:
    """One plane, tap by tap over a whole output row: the inner loop is a branch-free
    select the compiler can vectorise, and each output still sees its taps in
    row-major order."""
    cdef int o, q, i, j, ih, lo, hi, first, at, top
    cdef int w = g.w, sw = g.sw   # locals: the stores below cannot change them
    cdef real v, b
    cdef bint take
    cdef const real* src
    cdef real* best
    cdef int* best_at
    for o in range(g.oh):
        best, best_at = y + o * g.ow, idx + o * g.ow
        top = o * g.sh - g.ph
        ih = first_inside(top, g.dh)
        for q in range(g.ow):   # start from the window's first pixel inside the image
            first = ih * w + first_inside(q * sw - g.pw, g.dw)
            best[q], best_at[q] = x[first], first
        for i in range(g.kh):
            ih = top + i * g.dh
            if ih < 0 or ih >= g.h:
                continue
            for j in range(g.kw):
                tap_columns(&g, j, &lo, &hi)
                at = ih * w + j * g.dw - g.pw
                src = x + at
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


def max_pool2d(x, kernel_size, stride, padding, dilation, *, out):
    y, idx = out
    cdef Window g = window(x.shape, y.shape, kernel_size, stride, padding, dilation)
    if x.dtype == np.float32:
        _max_pool[float](x, y, idx, g)
    else:
        _max_pool[double](x, y, idx, g)
    return y, idx


cdef void _max_unpool(const real[:, :, :, ::1] dy, const int[:, :, :, ::1] idx,
                      real[:, :, :, ::1] dx) noexcept nogil:
    """The backward of every max pool (fixed windows or adaptive): the indices say it all."""
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
# A window's sum times 1 / its divisor: the same divisor for all (divisor_override, or
# kh * kw when no window reaches past the padding), else the window's own (PyTorch's rule).


cdef inline int counted(int start, int k, int size, int pad_end, bint include_pad) noexcept nogil:
    """How many of a window's k pixels along one axis its divisor counts: those inside the
    padded input (include_pad) or inside the input."""
    cdef int end = min(start + k, size + pad_end)
    if not include_pad:
        start, end = max(start, 0), min(end, size)
    return end - start


cdef inline void scales(const Window* g, int o, real* scale) noexcept nogil:
    """scale[q] = 1 / the divisor of output (o, q), for one output row."""
    cdef int q, rows
    if g.divisor:
        for q in range(g.ow):
            scale[q] = <real>1 / g.divisor
        return
    rows = counted(o * g.sh - g.ph, g.kh, g.h, g.pb, g.include_pad)
    for q in range(g.ow):
        scale[q] = <real>1 / (rows * counted(q * g.sw - g.pw, g.kw, g.w, g.pr, g.include_pad))


cdef void avg_pool_plane(const real* x, real* y, Window g, real* scale) noexcept nogil:
    """One plane, tap by tap over a whole output row (a vectorisable sum)."""
    cdef int o, q, i, j, ih, lo, hi
    cdef int sw = g.sw
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
        scales(&g, o, scale)
        for q in range(g.ow):
            acc[q] *= scale[q]


cdef void _avg_pool(const real[:, :, :, ::1] x, real[:, :, :, ::1] y, Window g,
                    real* workspace) noexcept nogil:
    cdef Py_ssize_t pl, hw = g.h * g.w, ohw = g.oh * g.ow
    for pl in prange(x.shape[0] * x.shape[1], schedule="static"):
        avg_pool_plane(&x[0, 0, 0, 0] + pl * hw, &y[0, 0, 0, 0] + pl * ohw, g,
                       workspace + threadid() * g.ow)


cdef Window avg_window(tuple x_shape, tuple y_shape, tuple kernel_size, tuple stride,
                       tuple padding, bint count_include_pad, divisor_override):
    cdef Window g = window(x_shape, y_shape, kernel_size, stride, padding)
    g.include_pad = count_include_pad
    if divisor_override is not None:
        g.divisor = divisor_override
    elif count_include_pad and ((g.oh - 1) * g.sh + g.kh <= g.h + g.ph + g.pb
                                and (g.ow - 1) * g.sw + g.kw <= g.w + g.pw + g.pr):
        g.divisor = g.kh * g.kw   # no window reaches past the padding
    return g


def avg_pool2d(x, kernel_size, stride, padding, count_include_pad, divisor_override, *, out):
    y = out
    cdef Window g = avg_window(x.shape, y.shape, kernel_size, stride, padding,
                               count_include_pad, divisor_override)
    cdef Py_ssize_t data
    with workspace(omp_get_max_threads() * g.ow, x.dtype) as ws:
        data = ws.ctypes.data
        if x.dtype == np.float32:
            _avg_pool[float](x, y, g, <float*>data)
        else:
            _avg_pool[double](x, y, g, <double*>data)
    return y


cdef void avg_unpool_plane(const real* dy, real* dx, Window g, real* share) noexcept nogil:
    """Each window's error, over its divisor, added back to its pixels."""
    cdef int o, q, i, j, ih, lo, hi
    cdef int sw = g.sw
    cdef real* dst
    memset(dx, 0, g.h * g.w * sizeof(real))
    for o in range(g.oh):
        scales(&g, o, share)
        for q in range(g.ow):
            share[q] *= dy[o * g.ow + q]
        for i in range(g.kh):
            ih = o * g.sh - g.ph + i
            if ih < 0 or ih >= g.h:
                continue
            for j in range(g.kw):
                tap_columns(&g, j, &lo, &hi)
                dst = dx + ih * g.w + j - g.pw
                for q in range(lo, hi):
                    dst[q * sw] += share[q]


cdef void _avg_unpool(const real[:, :, :, ::1] dy, real[:, :, :, ::1] dx, Window g,
                      real* workspace) noexcept nogil:
    cdef Py_ssize_t pl, hw = g.h * g.w, ohw = g.oh * g.ow
    for pl in prange(dx.shape[0] * dx.shape[1], schedule="static"):
        avg_unpool_plane(&dy[0, 0, 0, 0] + pl * ohw, &dx[0, 0, 0, 0] + pl * hw, g,
                         workspace + threadid() * g.ow)


def avg_pool2d_backward(dy, input_shape, kernel_size, stride, padding, count_include_pad,
                        divisor_override, *, out):
    dx = out
    cdef Window g = avg_window(input_shape, dy.shape, kernel_size, stride, padding,
                               count_include_pad, divisor_override)
    cdef Py_ssize_t data
    with workspace(omp_get_max_threads() * g.ow, dy.dtype) as ws:
        data = ws.ctypes.data
        if dy.dtype == np.float32:
            _avg_unpool[float](dy, dx, g, <float*>data)
        else:
            _avg_unpool[double](dy, dx, g, <double*>data)
    return dx


# ---------------------------------------------------------------- adaptive pooling
# Output (o, q) pools rows [row_start(o), row_end(o)) and the columns alike (PyTorch's
# windows). A whole-plane window (output 1 x 1: global pooling) is a plain reduction.


cdef inline Py_ssize_t start_of(Py_ssize_t i, Py_ssize_t size, Py_ssize_t out) noexcept nogil:
    return i * size // out


cdef inline Py_ssize_t end_of(Py_ssize_t i, Py_ssize_t size, Py_ssize_t out) noexcept nogil:
    return ((i + 1) * size + out - 1) // out


cdef inline real plane_sum(const real* x, Py_ssize_t n) noexcept nogil:
    """The sum of n contiguous values, in 8 interleaved partial sums (vectorisable)."""
    cdef real part[8]
    cdef real total = 0
    cdef Py_ssize_t i, k, whole = n - n % 8
    for k in range(8):
        part[k] = 0
    for i in range(0, whole, 8):
        for k in range(8):
            part[k] += x[i + k]
    for i in range(whole, n):
        total += x[i]
    return total + (((part[0] + part[1]) + (part[2] + part[3]))
                    + ((part[4] + part[5]) + (part[6] + part[7])))


cdef void adaptive_avg_plane(const real* x, real* y, Py_ssize_t h, Py_ssize_t w,
                             Py_ssize_t oh, Py_ssize_t ow, real* rows) noexcept nogil:
    """Per output row: its window's rows summed into rows[0:w] (vectorisable), then each
    output's columns of that sum."""
    cdef Py_ssize_t o, q, r, c, h0, h1, w0, w1
    cdef const real* src
    cdef real total
    for o in range(oh):
        h0, h1 = start_of(o, h, oh), end_of(o, h, oh)
        src = x + h0 * w
        for c in range(w):
            rows[c] = src[c]
        for r in range(h0 + 1, h1):
            src = x + r * w
            for c in range(w):
                rows[c] += src[c]
        for q in range(ow):
            w0, w1 = start_of(q, w, ow), end_of(q, w, ow)
            total = 0
            for c in range(w0, w1):
                total += rows[c]
            y[o * ow + q] = total / ((h1 - h0) * (w1 - w0))


cdef void _adaptive_avg(const real[:, :, :, ::1] x, real[:, :, :, ::1] y,
                        real* workspace) noexcept nogil:
    cdef Py_ssize_t h = x.shape[2], w = x.shape[3], oh = y.shape[2], ow = y.shape[3], pl
    cdef Py_ssize_t planes = x.shape[0] * x.shape[1]
    if oh == 1 and ow == 1:
        for pl in prange(planes, schedule="static"):
            (&y[0, 0, 0, 0])[pl] = plane_sum(&x[0, 0, 0, 0] + pl * h * w, h * w) / (h * w)
        return
    for pl in prange(planes, schedule="static"):
        adaptive_avg_plane(&x[0, 0, 0, 0] + pl * h * w, &y[0, 0, 0, 0] + pl * oh * ow,
                           h, w, oh, ow, workspace + threadid() * w)


def adaptive_avg_pool2d(x, *, out):
    y = out
    cdef Py_ssize_t data
    with workspace(omp_get_max_threads() * x.shape[3], x.dtype) as ws:
        data = ws.ctypes.data
        if x.dtype == np.float32:
            _adaptive_avg[float](x, y, <float*>data)
        else:
            _adaptive_avg[double](x, y, <double*>data)
    return y


cdef void adaptive_avg_unplane(const real* dy, real* dx, Py_ssize_t h, Py_ssize_t w,
                               Py_ssize_t oh, Py_ssize_t ow, real* rows) noexcept nogil:
    """Per output row: its errors, each over its window's size, spread over the columns
    into rows[0:w], then added to each row of the window."""
    cdef Py_ssize_t o, q, r, c, h0, h1, w0, w1
    cdef real share
    cdef real* dst
    memset(dx, 0, h * w * sizeof(real))
    for o in range(oh):
        h0, h1 = start_of(o, h, oh), end_of(o, h, oh)
        memset(rows, 0, w * sizeof(real))
        for q in range(ow):
            w0, w1 = start_of(q, w, ow), end_of(q, w, ow)
            share = dy[o * ow + q] / ((h1 - h0) * (w1 - w0))
            for c in range(w0, w1):
                rows[c] += share
        for r in range(h0, h1):
            dst = dx + r * w
            for c in range(w):
                dst[c] += rows[c]


cdef void _adaptive_avg_unpool(const real[:, :, :, ::1] dy, real[:, :, :, ::1] dx,
                               real* workspace) noexcept nogil:
    cdef Py_ssize_t h = dx.shape[2], w = dx.shape[3], oh = dy.shape[2], ow = dy.shape[3]
    cdef Py_ssize_t planes = dx.shape[0] * dx.shape[1], pl, e
    cdef real share
    cdef real* dst
    if oh == 1 and ow == 1:
        for pl in prange(planes, schedule="static"):
            share = (&dy[0, 0, 0, 0])[pl] / (h * w)
            dst = &dx[0, 0, 0, 0] + pl * h * w
            for e in range(h * w):
                dst[e] = share
        return
    for pl in prange(planes, schedule="static"):
        adaptive_avg_unplane(&dy[0, 0, 0, 0] + pl * oh * ow, &dx[0, 0, 0, 0] + pl * h * w,
                             h, w, oh, ow, workspace + threadid() * w)


def adaptive_avg_pool2d_backward(dy, input_shape, *, out):
    dx = out
    cdef Py_ssize_t data
    with workspace(omp_get_max_threads() * input_shape[3], dy.dtype) as ws:
        data = ws.ctypes.data
        if dy.dtype == np.float32:
            _adaptive_avg_unpool[float](dy, dx, <float*>data)
        else:
            _adaptive_avg_unpool[double](dy, dx, <double*>data)
    return dx


cdef void adaptive_max_plane(const real* x, real* y, int* idx, Py_ssize_t h, Py_ssize_t w,
                             Py_ssize_t oh, Py_ssize_t ow) noexcept nogil:
    """Each window's maximum and where it is, taps in row-major order (max_pool2d's rule
    for ties and NaN)."""
    cdef Py_ssize_t o, q, r, c, h0, h1, w0, w1
    cdef int at
    cdef real v, b
    for o in range(oh):
        h0, h1 = start_of(o, h, oh), end_of(o, h, oh)
        for q in range(ow):
            w0, w1 = start_of(q, w, ow), end_of(q, w, ow)
            at = h0 * w + w0
            b = x[at]
            for r in range(h0, h1):
                for c in range(w0, w1):
                    v = x[r * w + c]
                    if (not v <= b) and b == b:
                        b, at = v, r * w + c
            y[o * ow + q], idx[o * ow + q] = b, at


cdef void _adaptive_max(const real[:, :, :, ::1] x, real[:, :, :, ::1] y,
                        int[:, :, :, ::1] idx) noexcept nogil:
    cdef Py_ssize_t h = x.shape[2], w = x.shape[3], oh = y.shape[2], ow = y.shape[3], pl
    for pl in prange(x.shape[0] * x.shape[1], schedule="static"):
        adaptive_max_plane(&x[0, 0, 0, 0] + pl * h * w, &y[0, 0, 0, 0] + pl * oh * ow,
                           &idx[0, 0, 0, 0] + pl * oh * ow, h, w, oh, ow)


def adaptive_max_pool2d(x, *, out):
    y, idx = out
    if x.dtype == np.float32:
        _adaptive_max[float](x, y, idx)
    else:
        _adaptive_max[double](x, y, idx)
    return y, idx
