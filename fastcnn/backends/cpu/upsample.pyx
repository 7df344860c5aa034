# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Compiled nearest and bilinear resampling, forward and backward.

Every op works plane by plane (one (n, c) image), each plane owned by one OpenMP
thread: the backward ops, which sum the error of several output pixels into one
input pixel, need no atomics and give the same sums for any number of threads.
Along each axis, the source pixels and weights of the output pixels come from
tables made once per call by backends/coordinates.py (PyTorch's rules).

Nearest copies through the tables, and an output row that copies the same input
row as the one above is copied from it. Its backward gathers: each input pixel
sums the block of output pixels that copied it (rows first, then columns).

Bilinear is separable. The forward interpolates each input row it needs along W
once (OW values, kept while output rows use it) and mixes two such rows per
output row, a loop that vectorises. The backward runs the same steps transposed:
it mixes each row of the error into the two input rows it came from (held as
OW-wide rows, vectorised), and folds each finished row back along W.
"""

import numpy as np

from cython.parallel cimport parallel, prange
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy, memset

from blas cimport real

from fastcnn.backends.coordinates import linear_source, nearest_ranges, nearest_source


def _ints(a):
    return np.ascontiguousarray(a, dtype=np.int32)


# ---------------------------------------------------------------- nearest


cdef void _nearest(const real[:, :, :, ::1] x, real[:, :, :, ::1] y, const int[::1] rows,
                   const int[::1] cols) noexcept nogil:
    cdef Py_ssize_t planes = x.shape[0] * x.shape[1], pl
    cdef int h = x.shape[2], w = x.shape[3], oh = y.shape[2], ow = y.shape[3], i, j
    cdef const real* src
    cdef real* dst
    for pl in prange(planes, schedule="static"):
        for i in range(oh):
            dst = &y[0, 0, 0, 0] + (pl * oh + i) * ow
            if i > 0 and rows[i] == rows[i - 1]:
                memcpy(dst, dst - ow, ow * sizeof(real))
            else:
                src = &x[0, 0, 0, 0] + (pl * h + rows[i]) * w
                for j in range(ow):
                    dst[j] = src[cols[j]]


def upsample_nearest2d(x, scales, *, out):
    rows = _ints(nearest_source(out.shape[2], x.shape[2], scales[0]))
    cols = _ints(nearest_source(out.shape[3], x.shape[3], scales[1]))
    if x.dtype == np.float32:
        _nearest[float](x, out, rows, cols)
    else:
        _nearest[double](x, out, rows, cols)
    return out


cdef void _nearest_backward_plane(const real* dy, real* dx, int h, int w, int ow,
                                  const int* row_start, const int* col_start,
                                  real* acc) noexcept nogil:
    cdef int k, r, j, l
    cdef const real* rows
    cdef real total
    for k in range(h):
        if row_start[k + 1] == row_start[k]:      # no output row copied input row k
            memset(dx + k * w, 0, w * sizeof(real))
            continue
        rows = dy + row_start[k] * ow
        if row_start[k + 1] - row_start[k] > 1:   # sum the rows that copied it first
            memcpy(acc, rows, ow * sizeof(real))
            for r in range(row_start[k] + 1, row_start[k + 1]):
                for j in range(ow):
                    acc[j] += dy[r * ow + j]
            rows = acc
        for l in range(w):
            total = 0
            for j in range(col_start[l], col_start[l + 1]):
                total += rows[j]
            dx[k * w + l] = total


cdef void _nearest_backward(const real[:, :, :, ::1] dy, real[:, :, :, ::1] dx,
                            const int[::1] row_start, const int[::1] col_start) noexcept nogil:
    cdef Py_ssize_t planes = dx.shape[0] * dx.shape[1], pl
    cdef int h = dx.shape[2], w = dx.shape[3], oh = dy.shape[2], ow = dy.shape[3]
    cdef real* acc
    with parallel():
        acc = <real*>malloc(ow * sizeof(real))
        for pl in prange(planes, schedule="static"):
            _nearest_backward_plane(&dy[0, 0, 0, 0] + pl * oh * ow, &dx[0, 0, 0, 0] + pl * h * w,
                                    h, w, ow, &row_start[0], &col_start[0], acc)
        free(acc)


def upsample_nearest2d_backward(dy, scales, *, out):
    row_start = _ints(nearest_ranges(dy.shape[2], out.shape[2], scales[0]))
    col_start = _ints(nearest_ranges(dy.shape[3], out.shape[3], scales[1]))
    if dy.dtype == np.float32:
        _nearest_backward[float](dy, out, row_start, col_start)
    else:
        _nearest_backward[double](dy, out, row_start, col_start)
    return out


# ---------------------------------------------------------------- bilinear
# Per axis: output pixel d reads w0[d] * x[i0[d]] + w1[d] * x[i1[d]] (rows: i, u; columns:
# j, v), i1[d] = i0[d] or i0[d] + 1.


cdef inline real* _held(int row, int other, real* held_rows, int* held, const real* x, int w,
                        int ow, const int* j0, const int* j1, const real* v0,
                        const real* v1) noexcept nogil:
    """Input row `row` interpolated along W, from the two rows held (computing it into the
    slot that does not hold `other`, the other row the output row needs)."""
    cdef int slot, j
    cdef const real* src
    cdef real* dst
    if held[0] == row:
        return held_rows
    if held[1] == row:
        return held_rows + ow
    slot = 1 if held[0] == other else 0
    src, dst = x + row * w, held_rows + slot * ow
    for j in range(ow):
        dst[j] = v0[j] * src[j0[j]] + v1[j] * src[j1[j]]
    held[slot] = row
    return dst


cdef void _bilinear_plane(const real* x, real* y, int w, int oh, int ow, const int* i0,
                          const int* i1, const real* u0, const real* u1, const int* j0,
                          const int* j1, const real* v0, const real* v1,
                          real* held_rows) noexcept nogil:
    cdef int held[2]
    cdef int i, j
    cdef const real* top
    cdef const real* bottom
    cdef real* dst
    cdef real a, b
    held[0] = held[1] = -1
    for i in range(oh):
        top = _held(i0[i], i1[i], held_rows, held, x, w, ow, j0, j1, v0, v1)
        bottom = _held(i1[i], i0[i], held_rows, held, x, w, ow, j0, j1, v0, v1)
        a, b, dst = u0[i], u1[i], y + i * ow
        for j in range(ow):
            dst[j] = a * top[j] + b * bottom[j]


cdef void _fold(real* acc, real* dst, int ow, const int* j0, const int* j1, const real* v0,
                const real* v1) noexcept nogil:
    """An input row's accumulated error folded back along W into dst, acc cleared."""
    cdef int j
    for j in range(ow):
        dst[j0[j]] += v0[j] * acc[j]
        dst[j1[j]] += v1[j] * acc[j]
    memset(acc, 0, ow * sizeof(real))


cdef void _bilinear_backward_plane(const real* dy, real* dx, int h, int w, int oh, int ow,
                                   const int* i0, const int* i1, const real* u0,
                                   const real* u1, const int* j0, const int* j1,
                                   const real* v0, const real* v1, real* acc) noexcept nogil:
    """acc + (k % 2) * ow accumulates input row k's error, OW wide, until no later output
    row reads row k (i0 never decreases): rows lo and lo + 1 are pending."""
    cdef int touched[2]
    cdef int i, j, lo = 0
    cdef const real* row
    cdef real* top
    cdef real* bottom
    cdef real a, b
    touched[0] = touched[1] = 0
    memset(acc, 0, 2 * ow * sizeof(real))
    memset(dx, 0, h * w * sizeof(real))
    for i in range(oh):
        while lo < i0[i]:
            if touched[lo & 1]:
                _fold(acc + (lo & 1) * ow, dx + lo * w, ow, j0, j1, v0, v1)
                touched[lo & 1] = 0
            lo += 1
        row, a, b = dy + i * ow, u0[i], u1[i]
        top, bottom = acc + (i0[i] & 1) * ow, acc + (i1[i] & 1) * ow
        for j in range(ow):
            top[j] += a * row[j]
        for j in range(ow):
            bottom[j] += b * row[j]
        touched[i0[i] & 1] = touched[i1[i] & 1] = 1
    while lo < h and lo < i0[oh - 1] + 2:
        if touched[lo & 1]:
            _fold(acc + (lo & 1) * ow, dx + lo * w, ow, j0, j1, v0, v1)
            touched[lo & 1] = 0
        lo += 1


cdef void _bilinear(const real[:, :, :, ::1] src, real[:, :, :, ::1] dst, bint backward,
                    const int[::1] i0, const int[::1] i1, const real[::1] u0,
                    const real[::1] u1, const int[::1] j0, const int[::1] j1,
                    const real[::1] v0, const real[::1] v1) noexcept nogil:
    """dst = bilinear(src) (src is x), or its transpose (src is dy, dst is dx)."""
    cdef Py_ssize_t planes = src.shape[0] * src.shape[1], pl
    cdef int sh = src.shape[2], sw = src.shape[3], dh = dst.shape[2], dw = dst.shape[3]
    cdef int ow = sw if backward else dw
    cdef real* buf
    with parallel():
        buf = <real*>malloc(2 * ow * sizeof(real))
        for pl in prange(planes, schedule="static"):
            if backward:
                _bilinear_backward_plane(&src[0, 0, 0, 0] + pl * sh * sw,
                                         &dst[0, 0, 0, 0] + pl * dh * dw, dh, dw, sh, sw,
                                         &i0[0], &i1[0], &u0[0], &u1[0], &j0[0], &j1[0],
                                         &v0[0], &v1[0], buf)
            else:
                _bilinear_plane(&src[0, 0, 0, 0] + pl * sh * sw, &dst[0, 0, 0, 0] + pl * dh * dw,
                                sw, dh, dw, &i0[0], &i1[0], &u0[0], &u1[0], &j0[0], &j1[0],
                                &v0[0], &v1[0], buf)
        free(buf)


def _linear_tables(out_hw, in_hw, scales, align_corners, dtype):
    """(i0, i1, u0, u1, j0, j1, v0, v1): the rows' and the columns' tables."""
    tables = []
    for axis in range(2):
        i0, i1, w0, w1 = linear_source(out_hw[axis], in_hw[axis], scales[axis],
                                       align_corners, dtype)
        tables += [_ints(i0), _ints(i1), np.ascontiguousarray(w0, dtype),
                   np.ascontiguousarray(w1, dtype)]
    return tables


def upsample_bilinear2d(x, scales, align_corners, *, out):
    i0, i1, u0, u1, j0, j1, v0, v1 = _linear_tables(out.shape[2:], x.shape[2:], scales,
                                                    align_corners, x.dtype)
    if x.dtype == np.float32:
        _bilinear[float](x, out, False, i0, i1, u0, u1, j0, j1, v0, v1)
    else:
        _bilinear[double](x, out, False, i0, i1, u0, u1, j0, j1, v0, v1)
    return out


def upsample_bilinear2d_backward(dy, scales, align_corners, *, out):
    i0, i1, u0, u1, j0, j1, v0, v1 = _linear_tables(dy.shape[2:], out.shape[2:], scales,
                                                    align_corners, dy.dtype)
    if dy.dtype == np.float32:
        _bilinear[float](dy, out, True, i0, i1, u0, u1, j0, j1, v0, v1)
    else:
        _bilinear[double](dy, out, True, i0, i1, u0, u1, j0, j1, v0, v1)
    return out
