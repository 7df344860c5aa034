# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Compiled im2col / col2im and convolution (the cpu backend's conv ops).

Convolution is im2col + gemm, one image at a time: each OpenMP thread unfolds
its image into its own slice of a reused workspace (C*kh*kw x OH*OW, which
stays in cache) and multiplies it by the weights with BLAS. The batch is never
unfolded all at once. A 1x1, stride-1, unpadded conv needs no unfolding: the
image already is its column matrix.

Arguments were checked by fastcnn.functional: arrays are C-contiguous and of
one dtype, pairs are (h, w) tuples, output sizes are positive.
"""

import numpy as np

from cython.parallel cimport parallel, prange, threadid
from libc.string cimport memcpy, memset
from openmp cimport omp_get_max_threads

from blas cimport gemm, real

from fastcnn._kernels.blas_threads import single_threaded_blas


cdef struct Geometry:
    # One image's sliding-window geometry.
    int c, h, w, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow


cdef Geometry geometry(tuple shape, tuple kernel_size, tuple stride, tuple padding,
                       tuple dilation):
    cdef Geometry g
    g.c, g.h, g.w = shape[1], shape[2], shape[3]
    g.kh, g.kw = kernel_size
    g.sh, g.sw = stride
    g.ph, g.pw = padding
    g.dh, g.dw = dilation
    g.oh = (g.h + 2 * g.ph - g.dh * (g.kh - 1) - 1) // g.sh + 1
    g.ow = (g.w + 2 * g.pw - g.dw * (g.kw - 1) - 1) // g.sw + 1
    return g


cdef inline int first_inside(int offset, int stride) noexcept nogil:
    """The first output index o with o * stride + offset >= 0."""
    return 0 if offset >= 0 else (-offset + stride - 1) // stride


cdef inline void window_columns(const Geometry* g, int j, int* lo, int* hi) noexcept nogil:
    """The output columns [lo, hi) whose tap j lands inside the image (not in padding)."""
    cdef int offset = j * g.dw - g.pw
    lo[0] = min(first_inside(offset, g.sw), g.ow)
    hi[0] = max(min(first_inside(offset - g.w, g.sw), g.ow), lo[0])


cdef void im2col_image(const real* x, const Geometry* g, real* cols) noexcept nogil:
    """cols[(c, i, j), (oh, ow)] = x[c, oh*sh - ph + i*dh, ow*sw - pw + j*dw], 0 in the padding."""
    cdef int c, i, j, o, ih, lo, hi, k
    cdef Py_ssize_t plane = g.oh * g.ow
    cdef real* row
    cdef const real* src
    for c in range(g.c):
        for i in range(g.kh):
            for j in range(g.kw):
                window_columns(g, j, &lo, &hi)
                row = cols + ((c * g.kh + i) * g.kw + j) * plane
                for o in range(g.oh):
                    ih = o * g.sh - g.ph + i * g.dh
                    if ih < 0 or ih >= g.h:
                        memset(row + o * g.ow, 0, g.ow * sizeof(real))
                        continue
                    # src[k] is the pixel output column k sees, for k in [lo, hi).
                    src = x + (c * g.h + ih) * g.w + j * g.dw - g.pw
                    memset(row + o * g.ow, 0, lo * sizeof(real))
                    if g.sw == 1:
                        memcpy(row + o * g.ow + lo, src + lo, (hi - lo) * sizeof(real))
                    else:
                        for k in range(lo, hi):
                            row[o * g.ow + k] = src[k * g.sw]
                    memset(row + o * g.ow + hi, 0, (g.ow - hi) * sizeof(real))


cdef void col2im_image(const real* cols, const Geometry* g, real* x) noexcept nogil:
    """The adjoint of im2col_image: x = sum of the column entries taken from each pixel."""
    cdef int c, i, j, o, ih, lo, hi, k
    cdef Py_ssize_t plane = g.oh * g.ow
    cdef const real* row
    cdef real* dst
    memset(x, 0, g.c * g.h * g.w * sizeof(real))
    for c in range(g.c):
        for i in range(g.kh):
            for j in range(g.kw):
                window_columns(g, j, &lo, &hi)
                row = cols + ((c * g.kh + i) * g.kw + j) * plane
                for o in range(g.oh):
                    ih = o * g.sh - g.ph + i * g.dh
                    if ih < 0 or ih >= g.h:
                        continue
                    dst = x + (c * g.h + ih) * g.w + j * g.dw - g.pw
                    if g.sw == 1:
                        for k in range(lo, hi):
                            dst[k] += row[o * g.ow + k]
                    else:
                        for k in range(lo, hi):
                            dst[k * g.sw] += row[o * g.ow + k]


# ---------------------------------------------------------------- workspace
# Buffers are handed out and taken back, so concurrent callers never share one
# and a training loop reuses the same memory instead of faulting in new pages.

_free_workspaces = []


cdef object take_workspace(Py_ssize_t nbytes):
    while _free_workspaces:
        buf = _free_workspaces.pop()
        if buf.nbytes >= nbytes:
            return buf
    return np.empty(max(nbytes, 64), np.uint8)


cdef void give_workspace(object buf):
    _free_workspaces.append(buf)


# ---------------------------------------------------------------- im2col / col2im


cdef void _im2col(const real[:, :, :, ::1] x, real[:, :, ::1] cols, Geometry g) noexcept nogil:
    cdef Py_ssize_t n
    for n in prange(x.shape[0], schedule="static"):
        im2col_image(&x[n, 0, 0, 0], &g, &cols[n, 0, 0])


cdef void _col2im(const real[:, :, ::1] cols, real[:, :, :, ::1] x, Geometry g) noexcept nogil:
    cdef Py_ssize_t n
    for n in prange(x.shape[0], schedule="static"):
        col2im_image(&cols[n, 0, 0], &g, &x[n, 0, 0, 0])


def im2col(x, kernel_size, stride, padding, dilation, *, out=None):
    cdef Geometry g = geometry(x.shape, kernel_size, stride, padding, dilation)
    cols = out if out is not None else np.empty(
        (x.shape[0], g.c * g.kh * g.kw, g.oh * g.ow), x.dtype)
    if x.dtype == np.float32:
        _im2col[float](x, cols, g)
    else:
        _im2col[double](x, cols, g)
    return cols


def col2im(cols, input_shape, kernel_size, stride, padding, dilation, *, out=None):
    cdef Geometry g = geometry(input_shape, kernel_size, stride, padding, dilation)
    x = out if out is not None else np.empty(input_shape, cols.dtype)
    if cols.dtype == np.float32:
        _col2im[float](cols, x, g)
    else:
        _col2im[double](cols, x, g)
    return x


# ---------------------------------------------------------------- convolution


cdef inline bint is_pointwise(const Geometry* g) noexcept nogil:
    """A 1x1, stride-1, unpadded conv: the image is its own column matrix."""
    return (g.kh == 1 and g.kw == 1 and g.sh == 1 and g.sw == 1
            and g.ph == 0 and g.pw == 0)


cdef void _conv2d(const real[:, :, :, ::1] x, const real[:, :, :, ::1] weight,
                  const real[::1] bias, real[:, :, :, ::1] y, Geometry g,
                  real* workspace, Py_ssize_t per_thread) noexcept nogil:
    cdef int k = weight.shape[0], ckk = g.c * g.kh * g.kw, plane = g.oh * g.ow
    cdef bint pointwise = is_pointwise(&g), has_bias = bias is not None
    cdef Py_ssize_t n
    cdef int o, p
    cdef real* cols
    cdef real* yn
    cdef real beta
    for n in prange(x.shape[0], schedule="static"):
        yn = &y[n, 0, 0, 0]
        if pointwise:
            cols = <real*>&x[n, 0, 0, 0]
        else:
            cols = workspace + threadid() * per_thread
            im2col_image(&x[n, 0, 0, 0], &g, cols)
        beta = 0
        if has_bias:
            beta = 1
            for o in range(k):
                for p in range(plane):
                    yn[o * plane + p] = bias[o]
        # y[n] (K x OH*OW) = W (K x C*kh*kw) . cols (C*kh*kw x OH*OW) [+ bias]
        gemm(False, False, k, plane, ckk, <real>1, &weight[0, 0, 0, 0], ckk, cols, plane,
             beta, yn, plane)


def conv2d(x, weight, bias, stride, padding, dilation, *, out=None):
    cdef Geometry g = geometry(x.shape, weight.shape[2:], stride, padding, dilation)
    y = out if out is not None else np.empty((x.shape[0], weight.shape[0], g.oh, g.ow), x.dtype)
    cdef Py_ssize_t per_thread = 0 if is_pointwise(&g) else g.c * g.kh * g.kw * g.oh * g.ow
    ws = take_workspace(omp_get_max_threads() * per_thread * x.itemsize)
    cdef Py_ssize_t data = ws.ctypes.data
    try:
        with single_threaded_blas():
            if x.dtype == np.float32:
                _conv2d[float](x, weight, bias, y, g, <float*>data, per_thread)
            else:
                _conv2d[double](x, weight, bias, y, g, <double*>data, per_thread)
    finally:
        give_workspace(ws)
    return y


cdef void _conv2d_backward(const real[:, :, :, ::1] dy, const real[:, :, :, ::1] x,
                           const real[:, :, :, ::1] weight, real[:, :, :, ::1] dx,
                           real[:, :, :, ::1] dweight, real[::1] dbias, Geometry g,
                           bint need_dx, real* workspace, Py_ssize_t per_thread,
                           int nthreads) noexcept nogil:
    cdef int k = weight.shape[0], ckk = g.c * g.kh * g.kw, plane = g.oh * g.ow
    cdef bint pointwise = is_pointwise(&g)
    cdef Py_ssize_t n, t, e
    cdef int o, p
    cdef real* ws
    cdef real* cols
    cdef real* dw_t
    cdef real* db_t
    cdef const real* dyn
    cdef real s
    # Each thread sums its images' dweight and dbias in its own slice:
    # [cols: ckk*plane | dweight: k*ckk | dbias: k].
    memset(workspace, 0, nthreads * per_thread * sizeof(real))
    for n in prange(x.shape[0], schedule="static", num_threads=nthreads):
        ws = workspace + threadid() * per_thread
        dw_t = ws + (0 if pointwise else ckk * plane)
        db_t = dw_t + k * ckk
        dyn = &dy[n, 0, 0, 0]
        if pointwise:
            cols = <real*>&x[n, 0, 0, 0]
        else:
            cols = ws
            im2col_image(&x[n, 0, 0, 0], &g, cols)
        # dweight += dy[n] (K x P) . cols^T (P x C*kh*kw)
        gemm(False, True, k, ckk, plane, <real>1, dyn, plane, cols, plane, <real>1, dw_t, ckk)
        for o in range(k):
            s = 0
            for p in range(plane):
                s = s + dyn[o * plane + p]
            db_t[o] += s
        if need_dx:
            # dcols = W^T (C*kh*kw x K) . dy[n] (K x P), folded back onto the image.
            if pointwise:
                gemm(True, False, ckk, plane, k, <real>1, &weight[0, 0, 0, 0], ckk, dyn, plane,
                     <real>0, &dx[n, 0, 0, 0], plane)
            else:
                gemm(True, False, ckk, plane, k, <real>1, &weight[0, 0, 0, 0], ckk, dyn, plane,
                     <real>0, cols, plane)
                col2im_image(cols, &g, &dx[n, 0, 0, 0])
    # Sum the threads' partial gradients.
    cdef real* dw = &dweight[0, 0, 0, 0]
    memset(dw, 0, k * ckk * sizeof(real))
    memset(&dbias[0], 0, k * sizeof(real))
    for t in range(nthreads):
        dw_t = workspace + t * per_thread + (0 if pointwise else ckk * plane)
        for e in range(k * ckk):
            dw[e] += dw_t[e]
        for o in range(k):
            dbias[o] += dw_t[k * ckk + o]


def conv2d_backward(dy, x, weight, stride, padding, dilation, need_dx, *, out=None):
    cdef Geometry g = geometry(x.shape, weight.shape[2:], stride, padding, dilation)
    dx, dweight, dbias = out if out is not None else (None, None, None)
    if need_dx and dx is None:
        dx = np.empty(x.shape, x.dtype)
    if dweight is None:
        dweight = np.empty(weight.shape, x.dtype)
    if dbias is None:
        dbias = np.empty(weight.shape[0], x.dtype)
    cdef int k = weight.shape[0], ckk = g.c * g.kh * g.kw
    cdef int nthreads = min(omp_get_max_threads(), x.shape[0])
    cdef Py_ssize_t per_thread = (0 if is_pointwise(&g) else ckk * g.oh * g.ow) + k * ckk + k
    ws = take_workspace(nthreads * per_thread * x.itemsize)
    cdef Py_ssize_t data = ws.ctypes.data
    try:
        with single_threaded_blas():
            if x.dtype == np.float32:
                _conv2d_backward[float](dy, x, weight, dx, dweight, dbias, g, need_dx,
                                        <float*>data, per_thread, nthreads)
            else:
                _conv2d_backward[double](dy, x, weight, dx, dweight, dbias, g, need_dx,
                                         <double*>data, per_thread, nthreads)
    finally:
        give_workspace(ws)
    return (dx if need_dx else None), dweight, dbias
