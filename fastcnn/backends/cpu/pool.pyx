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
from chunks cimport threads_for_pixels

from fastcnn.backends.cpu.workspace import workspace


cdef struct Window:
    int h, w, oh, ow, kh, kw, sh, sw, dh, dw
    int ph, pw   # the leading pads; the trailing ones only matter to avg's divisors


cdef Window window(tuple x_shape, tuple y_shape, tuple kernel_size, tuple stride,
                   tuple padding, tuple dilation=(1, 1)):
    cdef Window g
    g.h, g.w = x_shape[2], x_shape[3]
    g.oh, g.ow = y_shape[2], y_shape[3]
    g.kh, g.kw = kernel_size
    g.sh, g.sw = stride
    g.dh, g.dw = dilation
    g.ph, g.pw = padding[0], padding[2]
    return g


cdef inline void tap_columns(const Window* g, int j, int* lo, int* hi) noexcept nogil:
    """The output columns [lo, hi) whose window tap j lands inside the row (not in padding,
    nor past it: ceil_mode's last window may reach beyond)."""
    cdef int offset = j * g.dw - g.pw   # input column of output 0's tap j
    cdef Py_ssize_t s = g.sw     # 64-bit sums: a stride near 2**31 would overflow an int
    lo[0] = 0 if offset >= 0 else <int>min((-offset + s - 1) // s, <Py_ssize_t>g.ow)
    hi[0] = 0 if g.w - offset <= 0 else <int>min((g.w - offset + s - 1) // s,
                                                 <Py_ssize_t>g.ow)
    hi[0] = max(hi[0], lo[0])


cdef inline int first_inside(int start, int d) noexcept nogil:
    """The first tap start + m * d at or past 0 (fastcnn.functional made sure one lies inside
    the input, for every window)."""
    return start if start >= 0 else start + (-start + d - 1) // d * d


# ---------------------------------------------------------------- max pooling


cdef inline void take_tap(const real* src, int stride, int lo, int hi, int at, real* best,
                          int* best_at) noexcept nogil:
    """Merge one tap into a row of maxima: output q in [lo, hi) sees src[q * stride], the
    pixel at + q * stride. A branch-free select the compiler can vectorise. A strictly
    larger value wins (ties keep the first); a NaN beats a number and then stays: "not
    v <= best, unless best is NaN". best_at NULL: the maxima alone, in their own loop (a
    test of best_at inside one loop ran 2-4x slower)."""
    cdef int q
    cdef real v, b
    cdef bint take
    if best_at == NULL:
        for q in range(lo, hi):
            v, b = src[q * stride], best[q]
            best[q] = v if (not v <= b) & (b == b) else b
        return
    for q in range(lo, hi):
        v, b = src[q * stride], best[q]
        take = (not v <= b) & (b == b)
        best[q] = v if take else b
        best_at[q] = at + q * stride if take else best_at[q]


cdef void max_pool_plane(const real* x, real* y, int* idx, Window g) noexcept nogil:
    """One plane, tap by tap over a whole output row (take_tap), so that each output
    still sees its taps in row-major order. idx NULL: the maxima alone (inference)."""
    cdef int o, q, i, j, ih, lo, hi, at, top
    cdef int w = g.w, sw = g.sw   # locals: the stores below cannot change them
    cdef real* best
    cdef int* best_at = NULL
    for o in range(g.oh):
        best = y + o * g.ow
        top = o * g.sh - g.ph
        ih = first_inside(top, g.dh)
        for q in range(g.ow):   # start from the window's first pixel inside the image
            best[q] = x[ih * w + first_inside(q * sw - g.pw, g.dw)]
        if idx != NULL:
            best_at = idx + o * g.ow
            for q in range(g.ow):
                best_at[q] = ih * w + first_inside(q * sw - g.pw, g.dw)
        for i in range(g.kh):
            ih = top + i * g.dh
            if ih < 0 or ih >= g.h:
                continue
            for j in range(g.kw):
                tap_columns(&g, j, &lo, &hi)
                at = ih * w + j * g.dw - g.pw
                take_tap(x + at, sw, lo, hi, at, best, best_at)


cdef inline bint is_2x2(const Window* g) noexcept nogil:
    """2x2 windows at stride 2, no padding, no dilation: the CNN's usual pooling, every
    window inside the image (floor mode; ceil_mode's partial windows need the taps)."""
    return (g.kh == 2 and g.kw == 2 and g.sh == 2 and g.sw == 2 and g.dh == 1 and g.dw == 1
            and g.ph == 0 and g.pw == 0 and 2 * g.oh <= g.h and 2 * g.ow <= g.w)


cdef void max_pool_2x2_plane(const real* x, real* y, int* idx, Window g) noexcept nogil:
    """max_pool_plane for is_2x2 windows, with the same taps in the same order, one pass
    over the output row each, but none of the general kernel's per-row set-up (window
    bounds, padding): on small planes (7x7 outputs) that cost more than the work."""
    cdef int o, q, t, at
    cdef int w = g.w, ow = g.ow
    cdef const real* src
    cdef real* best
    cdef int* best_at = NULL
    for o in range(g.oh):
        best = y + o * ow
        src = x + 2 * o * w
        for q in range(ow):
            best[q] = src[2 * q]
        if idx != NULL:
            best_at = idx + o * ow
            for q in range(ow):
                best_at[q] = 2 * o * w + 2 * q
        for t in range(1, 4):   # taps (0, 1), (1, 0), (1, 1)
            at = (2 * o + t // 2) * w + t % 2
            take_tap(x + at, 2, 0, ow, at, best, best_at)


cdef void _max_pool(const real[:, :, :, ::1] x, real[:, :, :, ::1] y, int[:, :, :, ::1] idx,
                    Window g) noexcept nogil:
    cdef Py_ssize_t pl, hw = g.h * g.w, ohw = g.oh * g.ow
    cdef bint with_idx = idx is not None, two = is_2x2(&g)
    cdef int* ip
    for pl in prange(x.shape[0] * x.shape[1], schedule="static",
                     num_threads=threads_for_pixels(x.shape[0] * x.shape[1] * hw)):
        ip = &idx[0, 0, 0, 0] + pl * ohw if with_idx else NULL
        if two:
            max_pool_2x2_plane(&x[0, 0, 0, 0] + pl * hw, &y[0, 0, 0, 0] + pl * ohw, ip, g)
        else:
            max_pool_plane(&x[0, 0, 0, 0] + pl * hw, &y[0, 0, 0, 0] + pl * ohw, ip, g)


def max_pool2d(x, kernel_size, stride, padding, dilation, *, out):
    y, idx = out   # idx None: the maxima alone
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
    for pl in prange(planes, schedule="static", num_threads=threads_for_pixels(planes * hw)):
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
# A window's sum times 1 / its divisor, from a table made once per call.


def _sizes(size, out, kernel, stride, padding, count_include_pad):
    """How many of each window's pixels along one axis its divisor counts (PyTorch's rule):
    those inside the padded input, or inside the input alone."""
    lo, hi = padding
    start = np.arange(out) * stride - lo
    end = np.minimum(start + kernel, size + hi)
    if not count_include_pad:
        start, end = np.maximum(start, 0), np.minimum(end, size)
    return end - start


def _scales(x_shape, y_shape, kernel_size, stride, padding, count_include_pad,
            divisor_override, dtype):
    """(OH, OW): 1 / each window's divisor, in dtype (as <real>1 / divisor would be)."""
    oh, ow = y_shape[2:]
    if divisor_override is not None:
        divisors = np.full((oh, ow), divisor_override)
    else:
        divisors = np.outer(
            _sizes(x_shape[2], oh, kernel_size[0], stride[0], padding[:2], count_include_pad),
            _sizes(x_shape[3], ow, kernel_size[1], stride[1], padding[2:], count_include_pad))
    return np.reciprocal(divisors.astype(dtype))


cdef void avg_pool_plane(const real* x, real* y, Window g, const real* scale) noexcept nogil:
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
        for q in range(g.ow):
            acc[q] *= scale[o * g.ow + q]


cdef void _avg_pool(const real[:, :, :, ::1] x, real[:, :, :, ::1] y, Window g,
                    const real[:, ::1] scale) noexcept nogil:
    cdef Py_ssize_t pl, hw = g.h * g.w, ohw = g.oh * g.ow
    for pl in prange(x.shape[0] * x.shape[1], schedule="static",
                     num_threads=threads_for_pixels(x.shape[0] * x.shape[1] * hw)):
        avg_pool_plane(&x[0, 0, 0, 0] + pl * hw, &y[0, 0, 0, 0] + pl * ohw, g, &scale[0, 0])


def avg_pool2d(x, kernel_size, stride, padding, count_include_pad, divisor_override, *, out):
    y = out
    cdef Window g = window(x.shape, y.shape, kernel_size, stride, padding)
    scale = _scales(x.shape, y.shape, kernel_size, stride, padding, count_include_pad,
                    divisor_override, x.dtype)
    if x.dtype == np.float32:
        _avg_pool[float](x, y, g, scale)
    else:
        _avg_pool[double](x, y, g, scale)
    return y


cdef void avg_unpool_plane(const real* dy, real* dx, Window g, const real* scale,
                           real* share) noexcept nogil:
    """Each window's error, over its divisor, added back to its pixels."""
    cdef int o, q, i, j, ih, lo, hi
    cdef int sw = g.sw
    cdef real* dst
    memset(dx, 0, g.h * g.w * sizeof(real))
    for o in range(g.oh):
        for q in range(g.ow):
            share[q] = dy[o * g.ow + q] * scale[o * g.ow + q]
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
                      const real[:, ::1] scale, real* workspace) noexcept nogil:
    cdef Py_ssize_t pl, hw = g.h * g.w, ohw = g.oh * g.ow
    for pl in prange(dx.shape[0] * dx.shape[1], schedule="static",
                     num_threads=threads_for_pixels(dx.shape[0] * dx.shape[1] * hw)):
        avg_unpool_plane(&dy[0, 0, 0, 0] + pl * ohw, &dx[0, 0, 0, 0] + pl * hw, g,
                         &scale[0, 0], workspace + threadid() * g.ow)


def avg_pool2d_backward(dy, input_shape, kernel_size, stride, padding, count_include_pad,
                        divisor_override, *, out):
    dx = out
    cdef Window g = window(input_shape, dy.shape, kernel_size, stride, padding)
    scale = _scales(input_shape, dy.shape, kernel_size, stride, padding, count_include_pad,
                    divisor_override, dy.dtype)
    cdef Py_ssize_t data
    with workspace(omp_get_max_threads() * g.ow, dy.dtype) as ws:
        data = ws.ctypes.data
        if dy.dtype == np.float32:
            _avg_unpool[float](dy, dx, g, scale, <float*>data)
        else:
            _avg_unpool[double](dy, dx, g, scale, <double*>data)
    return dx


# ---------------------------------------------------------------- adaptive pooling
# Output (o, q) pools rows [h0[o], h1[o]) and columns [w0[q], w1[q]) (PyTorch's windows);
# input row r lies in the windows of output rows [r0[r], r1[r]), column c in those of
# output columns [c0[c], c1[c]). All computed once per call, with each window's 1 / size:
# the integer divisions and the division would cost more than the sums. A whole-plane
# window (output 1 x 1: global pooling) is a plain reduction.


cdef struct Windows:
    Py_ssize_t h, w, oh, ow
    const Py_ssize_t* h0
    const Py_ssize_t* h1
    const Py_ssize_t* w0
    const Py_ssize_t* w1
    const Py_ssize_t* r0
    const Py_ssize_t* r1
    const Py_ssize_t* c0
    const Py_ssize_t* c1


def _bounds(size, out):
    """Adaptive windows [start, end) along one axis: floor(i * size / out) .. ceil((i + 1)
    * size / out). _bounds(out, size) gives, for each input pixel, the outputs whose
    windows hold it."""
    i = np.arange(out, dtype=np.intp)
    return i * size // out, -(-(i + 1) * size // out)


def _bounds_of(x_shape, y_shape):
    """h0, h1, w0, w1, r0, r1, c0, c1 as rows of one array (kept alive by the caller)."""
    (h, w), (oh, ow) = x_shape[2:], y_shape[2:]
    bounds = np.zeros((8, max(oh, ow, h, w)), np.intp)
    for row, (size, out) in enumerate(((h, oh), (w, ow), (oh, h), (ow, w))):
        bounds[2 * row, :out], bounds[2 * row + 1, :out] = _bounds(size, out)
    return bounds


cdef Windows windows(tuple x_shape, tuple y_shape, const Py_ssize_t[:, ::1] b):
    cdef Windows g
    g.h, g.w, g.oh, g.ow = x_shape[2], x_shape[3], y_shape[2], y_shape[3]
    g.h0, g.h1, g.w0, g.w1 = &b[0, 0], &b[1, 0], &b[2, 0], &b[3, 0]
    g.r0, g.r1, g.c0, g.c1 = &b[4, 0], &b[5, 0], &b[6, 0], &b[7, 0]
    return g


def _adaptive_scales(bounds, y_shape, dtype):
    """1 / the size of each window, (OH, OW), in dtype."""
    oh, ow = y_shape[2:]
    sizes = np.outer(bounds[1, :oh] - bounds[0, :oh], bounds[3, :ow] - bounds[2, :ow])
    return np.reciprocal(sizes.astype(dtype))


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


cdef void adaptive_avg_plane(const real* x, real* y, const Windows* g, const real* scale,
                             real* rows) noexcept nogil:
    """Per output row: its window's rows summed into rows[0:w] (vectorisable), then each
    output's columns of that sum."""
    cdef Py_ssize_t o, q, r, c, w = g.w
    cdef const real* src
    cdef real total
    for o in range(g.oh):
        src = x + g.h0[o] * w
        for c in range(w):
            rows[c] = src[c]
        for r in range(g.h0[o] + 1, g.h1[o]):
            src = x + r * w
            for c in range(w):
                rows[c] += src[c]
        for q in range(g.ow):
            total = 0
            for c in range(g.w0[q], g.w1[q]):
                total += rows[c]
            y[o * g.ow + q] = total * scale[o * g.ow + q]


cdef void _adaptive_avg(const real[:, :, :, ::1] x, real[:, :, :, ::1] y, Windows g,
                        const real[:, ::1] scale, real* workspace) noexcept nogil:
    cdef Py_ssize_t pl, hw = g.h * g.w, planes = x.shape[0] * x.shape[1]
    if g.oh == 1 and g.ow == 1:
        for pl in prange(planes, schedule="static"):
            (&y[0, 0, 0, 0])[pl] = plane_sum(&x[0, 0, 0, 0] + pl * hw, hw) * scale[0, 0]
        return
    for pl in prange(planes, schedule="static"):
        adaptive_avg_plane(&x[0, 0, 0, 0] + pl * hw, &y[0, 0, 0, 0] + pl * g.oh * g.ow, &g,
                           &scale[0, 0], workspace + threadid() * g.w)


def adaptive_avg_pool2d(x, *, out):
    y = out
    bounds = _bounds_of(x.shape, y.shape)
    cdef Windows g = windows(x.shape, y.shape, bounds)
    scale = _adaptive_scales(bounds, y.shape, x.dtype)
    cdef Py_ssize_t data
    with workspace(omp_get_max_threads() * g.w, x.dtype) as ws:
        data = ws.ctypes.data
        if x.dtype == np.float32:
            _adaptive_avg[float](x, y, g, scale, <float*>data)
        else:
            _adaptive_avg[double](x, y, g, scale, <double*>data)
    return y


cdef void adaptive_avg_unplane(const real* dy, real* dx, const Windows* g, const real* scale,
                               real* spread) noexcept nogil:
    """A gather, each dx value written once: spread[o, c] = the errors of output row o's
    windows holding column c, each over its window's size; dx[r, c] = the sum of spread[o, c]
    over the output rows o whose windows hold row r."""
    cdef Py_ssize_t o, q, r, c, w = g.w
    cdef real* share = spread + g.oh * w   # one output row's errors over their sizes
    cdef real* dst
    cdef const real* src
    for o in range(g.oh):
        for q in range(g.ow):
            share[q] = dy[o * g.ow + q] * scale[o * g.ow + q]
        dst = spread + o * w
        for c in range(w):
            dst[c] = share[g.c0[c]]
            for q in range(g.c0[c] + 1, g.c1[c]):
                dst[c] += share[q]
    for r in range(g.h):
        dst, src = dx + r * w, spread + g.r0[r] * w
        for c in range(w):
            dst[c] = src[c]
        for o in range(g.r0[r] + 1, g.r1[r]):
            src = spread + o * w
            for c in range(w):
                dst[c] += src[c]


cdef void _adaptive_avg_unpool(const real[:, :, :, ::1] dy, real[:, :, :, ::1] dx, Windows g,
                               const real[:, ::1] scale, real* workspace,
                               Py_ssize_t per_thread) noexcept nogil:
    cdef Py_ssize_t pl, e, hw = g.h * g.w, planes = dx.shape[0] * dx.shape[1]
    cdef real share
    cdef real* dst
    if g.oh == 1 and g.ow == 1:
        for pl in prange(planes, schedule="static"):
            share = (&dy[0, 0, 0, 0])[pl] * scale[0, 0]
            dst = &dx[0, 0, 0, 0] + pl * hw
            for e in range(hw):
                dst[e] = share
        return
    for pl in prange(planes, schedule="static"):
        adaptive_avg_unplane(&dy[0, 0, 0, 0] + pl * g.oh * g.ow, &dx[0, 0, 0, 0] + pl * hw, &g,
                             &scale[0, 0], workspace + threadid() * per_thread)


def adaptive_avg_pool2d_backward(dy, input_shape, *, out):
    dx = out
    bounds = _bounds_of(input_shape, dy.shape)
    cdef Windows g = windows(input_shape, dy.shape, bounds)
    scale = _adaptive_scales(bounds, dy.shape, dy.dtype)
    cdef Py_ssize_t data, per_thread = g.oh * g.w + g.ow
    with workspace(omp_get_max_threads() * per_thread, dy.dtype) as ws:
        data = ws.ctypes.data
        if dy.dtype == np.float32:
            _adaptive_avg_unpool[float](dy, dx, g, scale, <float*>data, per_thread)
        else:
            _adaptive_avg_unpool[double](dy, dx, g, scale, <double*>data, per_thread)
    return dx


cdef void adaptive_max_plane(const real* x, real* y, int* idx, const Windows* g) noexcept nogil:
    """Each window's maximum and where it is, taps in row-major order (max_pool2d's rule
    for ties and NaN)."""
    cdef Py_ssize_t o, q, r, c, w = g.w
    cdef int at
    cdef real v, b
    for o in range(g.oh):
        for q in range(g.ow):
            at = g.h0[o] * w + g.w0[q]
            b = x[at]
            for r in range(g.h0[o], g.h1[o]):
                for c in range(g.w0[q], g.w1[q]):
                    v = x[r * w + c]
                    if (not v <= b) and b == b:
                        b, at = v, r * w + c
            y[o * g.ow + q], idx[o * g.ow + q] = b, at


cdef void _adaptive_max(const real[:, :, :, ::1] x, real[:, :, :, ::1] y,
                        int[:, :, :, ::1] idx, Windows g) noexcept nogil:
    cdef Py_ssize_t pl, hw = g.h * g.w, ohw = g.oh * g.ow
    for pl in prange(x.shape[0] * x.shape[1], schedule="static",
                     num_threads=threads_for_pixels(x.shape[0] * x.shape[1] * hw)):
        adaptive_max_plane(&x[0, 0, 0, 0] + pl * hw, &y[0, 0, 0, 0] + pl * ohw,
                           &idx[0, 0, 0, 0] + pl * ohw, &g)


def adaptive_max_pool2d(x, *, out):
    y, idx = out
    bounds = _bounds_of(x.shape, y.shape)
    cdef Windows g = windows(x.shape, y.shape, bounds)
    if x.dtype == np.float32:
        _adaptive_max[float](x, y, idx, g)
    else:
        _adaptive_max[double](x, y, idx, g)
    return y, idx
