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
from libc.string cimport memset
from openmp cimport omp_get_max_threads

from blas cimport gemm, real

from fastcnn.backends import output_size
from fastcnn.backends.cpu import winograd
from fastcnn.backends.cpu.blas_threads import single_threaded_blas
from fastcnn.backends.cpu.workspace import workspace


cdef struct Geometry:
    # One image's sliding-window geometry.
    int c, h, w, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow


cdef Geometry geometry(tuple shape, tuple kernel_size, tuple stride, tuple padding,
                       tuple dilation):
    cdef Geometry g
    g.c, g.h, g.w = shape[1], shape[2], shape[3]
    g.kh, g.kw = kernel_size
    g.sh, g.sw = stride
    g.ph, g.pw = padding[0], padding[2]   # the leading pads: where tap 0 of output 0 lands
    g.dh, g.dw = dilation
    g.oh = output_size(g.h, g.kh, g.sh, padding[:2], g.dh)
    g.ow = output_size(g.w, g.kw, g.sw, padding[2:], g.dw)
    return g


cdef inline void inside(int offset, int stride, int size, int n_out, int* lo, int* hi) noexcept nogil:
    """The outputs o in [lo, hi) of n_out whose tap lands inside the image: 0 <= o*stride + offset < size."""
    cdef Py_ssize_t s = stride   # 64-bit sums: a stride near 2**31 would overflow an int
    lo[0] = 0 if offset >= 0 else <int>min((-offset + s - 1) // s, <Py_ssize_t>n_out)
    hi[0] = 0 if size - offset <= 0 else <int>min((size - offset + s - 1) // s,
                                                  <Py_ssize_t>n_out)
    hi[0] = max(hi[0], lo[0])


cdef inline bint runs_are_contiguous(const Geometry* g) noexcept nogil:
    """Unit strides and OW == W ('same' convolutions): each tap's block of the column
    matrix is then one contiguous run of the input plane, shifted, except for the
    entries that wrap around into the padding."""
    return g.sh == 1 and g.sw == 1 and g.ow == g.w


cdef inline void zero_wrapped(real* run, int r0, int r1, int lo, int hi, int ow) noexcept nogil:
    """Zero the entries of a contiguous run (output rows r0 .. r1 - 1, valid columns
    lo .. hi - 1) that wrap from the end of one row into the start of the next."""
    cdef int o
    cdef Py_ssize_t t
    for o in range(r0, r1 - 1):
        for t in range(o * ow + hi, (o + 1) * ow + lo):
            run[t] = 0


cdef void im2col_image(const real* x, Geometry g, real* cols) noexcept nogil:
    """cols[(c, i, j), (oh, ow)] = x[c, oh*sh - ph + i*dh, ow*sw - pw + j*dw], 0 in the padding.

    Output rows are short (14 for MNIST), so per row we use plain loops the
    compiler vectorises rather than memcpy calls; g is passed by value so no
    store can alias it.
    """
    cdef int c, i, j, o, ih, r0, r1, lo, hi, ow = g.ow, sw = g.sw, plane = g.oh * g.ow
    cdef Py_ssize_t t
    cdef real* dst = cols
    cdef const real* src
    for c in range(g.c):
        for i in range(g.kh):
            inside(i * g.dh - g.ph, g.sh, g.h, g.oh, &r0, &r1)
            for j in range(g.kw):
                inside(j * g.dw - g.pw, g.sw, g.w, g.ow, &lo, &hi)
                if runs_are_contiguous(&g) and r1 > r0 and hi > lo:
                    # One shifted copy of the whole run, then zero what wrapped.
                    src = x + (c * g.h + i * g.dh - g.ph) * g.w + j * g.dw - g.pw
                    for t in range(r0 * ow + lo):
                        dst[t] = 0
                    for t in range(r0 * ow + lo, (r1 - 1) * ow + hi):
                        dst[t] = src[t]
                    for t in range((r1 - 1) * ow + hi, plane):
                        dst[t] = 0
                    zero_wrapped(dst, r0, r1, lo, hi, ow)
                    dst += plane
                    continue
                for o in range(g.oh):
                    ih = o * g.sh - g.ph + i * g.dh
                    if o < r0 or o >= r1:
                        for t in range(ow):
                            dst[t] = 0
                    else:
                        # src[k * sw] is the pixel output column k sees, for k in [lo, hi).
                        src = x + (c * g.h + ih) * g.w + j * g.dw - g.pw
                        for t in range(lo):
                            dst[t] = 0
                        if sw == 1:
                            for t in range(lo, hi):
                                dst[t] = src[t]
                        else:
                            for t in range(lo, hi):
                                dst[t] = src[t * sw]
                        for t in range(hi, ow):
                            dst[t] = 0
                    dst += ow


cdef void col2im_image(real* cols, Geometry g, real* x, bint clobber) noexcept nogil:
    """The adjoint of im2col_image: x = sum of the column entries taken from each pixel.

    With clobber, cols is scratch: its entries that wrap into the padding are
    zeroed so that contiguous runs can be added in one go.
    """
    cdef int c, i, j, o, ih, r0, r1, lo, hi, ow = g.ow, sw = g.sw, plane = g.oh * g.ow
    cdef Py_ssize_t t
    cdef real* row = cols
    cdef real* dst
    memset(x, 0, g.c * g.h * g.w * sizeof(real))
    for c in range(g.c):
        for i in range(g.kh):
            inside(i * g.dh - g.ph, g.sh, g.h, g.oh, &r0, &r1)
            for j in range(g.kw):
                inside(j * g.dw - g.pw, g.sw, g.w, g.ow, &lo, &hi)
                if clobber and runs_are_contiguous(&g) and r1 > r0 and hi > lo:
                    zero_wrapped(row, r0, r1, lo, hi, ow)
                    dst = x + (c * g.h + i * g.dh - g.ph) * g.w + j * g.dw - g.pw
                    for t in range(r0 * ow + lo, (r1 - 1) * ow + hi):
                        dst[t] += row[t]
                    row += plane
                    continue
                for o in range(g.oh):
                    if o >= r0 and o < r1:
                        ih = o * g.sh - g.ph + i * g.dh
                        dst = x + (c * g.h + ih) * g.w + j * g.dw - g.pw
                        if sw == 1:
                            for t in range(lo, hi):
                                dst[t] += row[t]
                        else:
                            for t in range(lo, hi):
                                dst[t * sw] += row[t]
                    row += ow


# ---------------------------------------------------------------- im2col / col2im


cdef void _im2col(const real[:, :, :, ::1] x, real[:, :, ::1] cols, Geometry g) noexcept nogil:
    cdef Py_ssize_t n
    for n in prange(x.shape[0], schedule="static"):
        im2col_image(&x[n, 0, 0, 0], g, &cols[n, 0, 0])


cdef void _col2im(const real[:, :, ::1] cols, real[:, :, :, ::1] x, Geometry g) noexcept nogil:
    cdef Py_ssize_t n
    for n in prange(x.shape[0], schedule="static"):   # cols is the caller's: no clobbering
        col2im_image(<real*>&cols[n, 0, 0], g, &x[n, 0, 0, 0], False)


def im2col(x, kernel_size, stride, padding, dilation, *, out):
    cdef Geometry g = geometry(x.shape, kernel_size, stride, padding, dilation)
    cols = out
    if x.dtype == np.float32:
        _im2col[float](x, cols, g)
    else:
        _im2col[double](x, cols, g)
    return cols


def col2im(cols, input_shape, kernel_size, stride, padding, dilation, *, out):
    cdef Geometry g = geometry(input_shape, kernel_size, stride, padding, dilation)
    x = out
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
            im2col_image(&x[n, 0, 0, 0], g, cols)
        beta = 0
        if has_bias:
            beta = 1
            for o in range(k):
                for p in range(plane):
                    yn[o * plane + p] = bias[o]
        # y[n] (K x OH*OW) = W (K x C*kh*kw) . cols (C*kh*kw x OH*OW) [+ bias]
        gemm(False, False, k, plane, ckk, <real>1, &weight[0, 0, 0, 0], ckk, cols, plane,
             beta, yn, plane)


def _finite(a):
    """True when a holds no NaN or infinity (or, rarely, numbers summing past the largest
    float: then too an exact recomputation does no harm)."""
    with np.errstate(invalid="ignore", over="ignore"):
        return bool(np.isfinite(a.sum()))


def conv2d(x, weight, bias, stride, padding, dilation, *, out):
    if winograd.applies(x.shape, weight.shape, stride, padding, dilation):
        y = winograd.conv2d(x, weight, bias, padding, out=out)
        if _finite(y):
            return y
        # A NaN or an infinity: Winograd's transforms mix neighbouring taps, so they would
        # spread it to outputs the definition keeps finite. Redo the call directly.
        out = y
    cdef Geometry g = geometry(x.shape, weight.shape[2:], stride, padding, dilation)
    y = out
    cdef Py_ssize_t per_thread = 0 if is_pointwise(&g) else g.c * g.kh * g.kw * g.oh * g.ow
    cdef Py_ssize_t data
    with workspace(omp_get_max_threads() * per_thread, x.dtype) as ws, single_threaded_blas():
        data = ws.ctypes.data
        if x.dtype == np.float32:
            _conv2d[float](x, weight, bias, y, g, <float*>data, per_thread)
        else:
            _conv2d[double](x, weight, bias, y, g, <double*>data, per_thread)
    return y


cdef void _conv2d_backward(const real[:, :, :, ::1] dy, const real[:, :, :, ::1] x,
                           const real[:, :, :, ::1] weight, real[:, :, :, ::1] dx,
                           real[:, :, :, ::1] dweight, real[::1] dbias, Geometry g,
                           bint need_dx, bint need_dweight, real* workspace,
                           Py_ssize_t per_thread, int nthreads) noexcept nogil:
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
        if need_dweight:   # (not for a frozen layer)
            if not pointwise:
                im2col_image(&x[n, 0, 0, 0], g, cols)
            # dweight += dy[n] (K x P) . cols^T (P x C*kh*kw)
            gemm(False, True, k, ckk, plane, <real>1, dyn, plane, cols, plane, <real>1, dw_t,
                 ckk)
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
                col2im_image(cols, g, &dx[n, 0, 0, 0], True)
    if not need_dweight:
        return
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


def conv2d_backward(dy, x, weight, stride, padding, dilation, need_dx, *, out):
    dx, dweight, dbias = out     # dweight and dbias None: not asked for (a frozen layer's)
    cdef bint need_dweight = dweight is not None
    if winograd.applies(x.shape, weight.shape, stride, padding, dilation):
        if need_dx:   # dx of a 3x3 stride-1 conv is itself such a conv
            winograd.conv2d_input_grad(dy, weight, padding, out=dx)
        if need_dweight:
            winograd.weight_grad(dy, x, padding, out=(dweight, dbias))
        if (not need_dweight or _finite(dweight)) and (not need_dx or _finite(dx)):
            return (dx if need_dx else None), dweight, dbias
        # NaN or infinity: redone directly, as in conv2d
    cdef Geometry g = geometry(x.shape, weight.shape[2:], stride, padding, dilation)
    cdef int k = weight.shape[0], ckk = g.c * g.kh * g.kw
    cdef int nthreads = min(omp_get_max_threads(), x.shape[0])
    cdef Py_ssize_t per_thread = (0 if is_pointwise(&g) else ckk * g.oh * g.ow) + k * ckk + k
    cdef Py_ssize_t data
    with workspace(nthreads * per_thread, x.dtype) as ws, single_threaded_blas():
        data = ws.ctypes.data
        if x.dtype == np.float32:
            _conv2d_backward[float](dy, x, weight, dx, dweight, dbias, g, need_dx,
                                    need_dweight, <float*>data, per_thread, nthreads)
        else:
            _conv2d_backward[double](dy, x, weight, dx, dweight, dbias, g, need_dx,
                                     need_dweight, <double*>data, per_thread, nthreads)
    return (dx if need_dx else None), dweight, dbias
