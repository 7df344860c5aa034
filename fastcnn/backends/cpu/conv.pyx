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

from blas cimport gemm, real
from chunks cimport threads_for

from fastcnn.backends import output_size
from fastcnn.backends.cpu import depthwise, winograd
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
# With groups, every (image, group) pair is a task of its own: the group's channels are
# unfolded (g.c is the channels of one group) and multiplied by the group's rows of the
# weight, a contiguous block of it read in place.


cdef inline bint is_pointwise(const Geometry* g) noexcept nogil:
    """A 1x1, stride-1, unpadded conv: the image is its own column matrix. (Trailing
    padding alone would make the output larger than the image: not pointwise.)"""
    return (g.kh == 1 and g.kw == 1 and g.sh == 1 and g.sw == 1
            and g.ph == 0 and g.pw == 0 and g.oh == g.h and g.ow == g.w)


cdef Geometry conv_geometry(tuple x_shape, tuple y_shape, tuple kernel_size, tuple stride,
                            tuple padding, tuple dilation, int groups):
    """The geometry of one group of one image; the output's extent is y's (a transposed
    convolution's dx may be shorter than the window's natural output)."""
    cdef Geometry g = geometry(x_shape, kernel_size, stride, padding, dilation)
    g.c = g.c // groups
    g.oh, g.ow = y_shape[2], y_shape[3]
    return g


cdef void _conv2d(const real[:, :, :, ::1] x, const real[:, :, :, ::1] weight,
                  const real[::1] bias, real[:, :, :, ::1] y, Geometry g, int groups,
                  real* workspace, Py_ssize_t per_thread, int nthreads) noexcept nogil:
    cdef int kg = weight.shape[0] // groups, ckk = g.c * g.kh * g.kw, plane = g.oh * g.ow
    cdef bint pointwise = is_pointwise(&g), has_bias = bias is not None
    cdef Py_ssize_t task, n
    cdef int o, p, grp
    cdef real* cols
    cdef real* yn
    cdef real beta
    for task in prange(x.shape[0] * groups, schedule="static", num_threads=nthreads):
        n, grp = task // groups, task % groups
        yn = &y[n, grp * kg, 0, 0]
        if pointwise:
            cols = <real*>&x[n, grp * g.c, 0, 0]
        else:
            cols = workspace + threadid() * per_thread
            im2col_image(&x[n, grp * g.c, 0, 0], g, cols)
        beta = 0
        if has_bias:
            beta = 1
            for o in range(kg):
                for p in range(plane):
                    yn[o * plane + p] = bias[grp * kg + o]
        # y[n, group] (K/G x OH*OW) = W[group] (K/G x C/G*kh*kw) . cols [+ bias]
        gemm(False, False, kg, plane, ckk, <real>1, &weight[grp * kg, 0, 0, 0], ckk, cols,
             plane, beta, yn, plane)


def _finite(a):
    """True when a holds no NaN or infinity (or, rarely, numbers summing past the largest
    float: then too an exact recomputation does no harm)."""
    with np.errstate(invalid="ignore", over="ignore"):
        return bool(np.isfinite(a.sum()))


def _forward(x, weight, bias, stride, padding, dilation, groups, y):
    """y = x convolved with weight (+ bias), for y's extent."""
    if (winograd.applies(x.shape, weight.shape, stride, padding, dilation, groups)
            and winograd.pays(x.shape, y.shape)):
        winograd.conv2d(x, weight, bias, padding, out=y)
        if _finite(y):
            return y
        # A NaN or an infinity: Winograd's transforms mix neighbouring taps, so they would
        # spread it to outputs the definition keeps finite. Redo the call directly.
    if depthwise.applies(x.shape, weight.shape, groups):
        return depthwise.conv2d(x, weight, bias, stride, padding, dilation, out=y)
    cdef Geometry g = conv_geometry(x.shape, y.shape, weight.shape[2:], stride, padding,
                                    dilation, groups)
    cdef Py_ssize_t per_thread = 0 if is_pointwise(&g) else g.c * g.kh * g.kw * g.oh * g.ow
    cdef Py_ssize_t data
    cdef int nthreads = threads_for(x.shape[0] * groups)   # tasks: (image, group) pairs
    with workspace(nthreads * per_thread, x.dtype) as ws, single_threaded_blas():
        data = ws.ctypes.data
        if x.dtype == np.float32:
            _conv2d[float](x, weight, bias, y, g, groups, <float*>data, per_thread, nthreads)
        else:
            _conv2d[double](x, weight, bias, y, g, groups, <double*>data, per_thread,
                            nthreads)
    return y


def conv2d(x, weight, bias, stride, padding, dilation, groups, *, out):
    return _forward(x, weight, bias, stride, padding, dilation, groups, out)


cdef void _conv2d_backward(const real[:, :, :, ::1] dy, const real[:, :, :, ::1] x,
                           const real[:, :, :, ::1] weight, real[:, :, :, ::1] dx,
                           real[:, :, :, ::1] dweight, real[::1] dbias,
                           const real[::1] dx_bias, real[:, :, :, ::1] y, Geometry g,
                           int groups, real* workspace, Py_ssize_t per_thread,
                           int nthreads) noexcept nogil:
    """The gradients asked for (dx, dweight, dbias: None when not), dx plus dx_bias per
    channel if given (a transposed convolution's forward is this dx, with its bias), and
    y, the forward of x without bias, if given: it shares dweight's columns (a transposed
    convolution's backward needs both)."""
    cdef int k = weight.shape[0], kg = k // groups, ckk = g.c * g.kh * g.kw
    cdef int plane = g.oh * g.ow, hw = g.h * g.w
    cdef bint pointwise = is_pointwise(&g), need_dx = dx is not None
    cdef bint need_dw = dweight is not None, need_db = dbias is not None
    cdef Py_ssize_t cols_size = 0 if pointwise else <Py_ssize_t>ckk * plane
    cdef Py_ssize_t task, n, t, e
    cdef int o, p, c, grp
    cdef real* ws
    cdef real* cols
    cdef real* dw_t
    cdef real* db_t
    cdef real* dxn
    cdef const real* dyn
    cdef real s
    # Each thread sums its tasks' dweight and dbias in its own slice:
    # [cols: ckk*plane | dweight: k*ckk | dbias: k].
    memset(workspace, 0, nthreads * per_thread * sizeof(real))
    for task in prange(dy.shape[0] * groups, schedule="static", num_threads=nthreads):
        n, grp = task // groups, task % groups
        ws = workspace + threadid() * per_thread
        dw_t = ws + cols_size
        db_t = dw_t + (k * ckk if need_dw else 0)
        dyn = &dy[n, grp * kg, 0, 0]
        if need_dw:
            if pointwise:
                cols = <real*>&x[n, grp * g.c, 0, 0]
            else:
                cols = ws
                im2col_image(&x[n, grp * g.c, 0, 0], g, cols)
            # dweight[group] += dy[n, group] (K/G x P) . cols^T (P x C/G*kh*kw)
            gemm(False, True, kg, ckk, plane, <real>1, dyn, plane, cols, plane, <real>1,
                 dw_t + grp * kg * ckk, ckk)
            if y is not None:
                gemm(False, False, kg, plane, ckk, <real>1, &weight[grp * kg, 0, 0, 0], ckk,
                     cols, plane, <real>0, &y[n, grp * kg, 0, 0], plane)
        if need_db:
            for o in range(kg):
                s = 0
                for p in range(plane):
                    s = s + dyn[o * plane + p]
                db_t[grp * kg + o] += s
        if need_dx:
            # dcols = W[group]^T (C/G*kh*kw x K/G) . dy[n, group], folded back onto the image.
            dxn = &dx[n, grp * g.c, 0, 0]
            gemm(True, False, ckk, plane, kg, <real>1, &weight[grp * kg, 0, 0, 0], ckk, dyn,
                 plane, <real>0, dxn if pointwise else ws, plane)
            if not pointwise:
                col2im_image(ws, g, dxn, True)
            if dx_bias is not None:
                for c in range(g.c):
                    s = dx_bias[grp * g.c + c]
                    for p in range(hw):
                        dxn[c * hw + p] += s
    # Sum the threads' partial gradients.
    cdef real* dw = &dweight[0, 0, 0, 0] if need_dw else NULL
    if need_dw:
        memset(dw, 0, k * ckk * sizeof(real))
    if need_db:
        memset(&dbias[0], 0, k * sizeof(real))
    for t in range(nthreads):
        dw_t = workspace + t * per_thread + cols_size
        if need_dw:
            for e in range(k * ckk):
                dw[e] += dw_t[e]
            dw_t += k * ckk
        if need_db:
            for o in range(k):
                dbias[o] += dw_t[o]


def _backward(dy, x, weight, stride, padding, dilation, groups, dx, dweight, dbias,
              x_shape=None, dx_bias=None, y=None):
    """Whichever of dx, dweight, dbias is not None (im2col + gemm; x may be None when
    dweight is not wanted, x_shape then gives its shape); y: see _conv2d_backward."""
    x_shape = x.shape if x is not None else x_shape
    cdef Geometry g = conv_geometry(x_shape, dy.shape, weight.shape[2:], stride, padding,
                                    dilation, groups)
    cdef int k = weight.shape[0], ckk = g.c * g.kh * g.kw
    cdef int nthreads = threads_for(dy.shape[0] * groups)
    cdef Py_ssize_t per_thread = ((0 if is_pointwise(&g) else ckk * g.oh * g.ow)
                                  + (0 if dweight is None else k * ckk)
                                  + (0 if dbias is None else k))
    cdef Py_ssize_t data
    with workspace(nthreads * per_thread, dy.dtype) as ws, single_threaded_blas():
        data = ws.ctypes.data
        if dy.dtype == np.float32:
            _conv2d_backward[float](dy, x, weight, dx, dweight, dbias, dx_bias, y, g, groups,
                                    <float*>data, per_thread, nthreads)
        else:
            _conv2d_backward[double](dy, x, weight, dx, dweight, dbias, dx_bias, y, g, groups,
                                     <double*>data, per_thread, nthreads)


def conv2d_backward(dy, x, weight, stride, padding, dilation, groups, need_dx, *, out):
    dx, dweight, dbias = out     # dweight and dbias None: not asked for (a frozen layer's)
    dx = dx if need_dx else None
    if winograd.applies(x.shape, weight.shape, stride, padding, dilation, groups):
        # dx of a 3x3 stride-1 conv is itself such a conv, from dy to dx
        by_winograd = need_dx and winograd.pays(dy.shape, x.shape)
        if by_winograd:
            winograd.conv2d_input_grad(dy, weight, padding, out=dx)
        if dweight is not None:
            winograd.weight_grad(dy, x, padding, out=(dweight, dbias))
        if (dweight is None or _finite(dweight)) and (not by_winograd or _finite(dx)):
            if need_dx and not by_winograd:
                _backward(dy, x, weight, stride, padding, dilation, groups, dx, None, None)
            return dx, dweight, dbias
        # NaN or infinity: redone directly, as in conv2d
    elif depthwise.applies(x.shape, weight.shape, groups):
        depthwise.conv2d_backward(dy, x, weight, stride, padding, dilation,
                                  out=(dx, dweight, dbias))
        return dx, dweight, dbias
    _backward(dy, x, weight, stride, padding, dilation, groups, dx, dweight, dbias)
    return dx, dweight, dbias


# ---------------------------------------------------------------- transposed convolution
# conv_transpose2d is conv2d run backwards, with the same weight, stride, padding and
# dilation: its forward is the dx of the conv2d from its output's shape to its input's,
# its dx that conv2d's forward of dy, its dweight that conv2d's weight gradient with x
# and dy in each other's roles. So it runs on conv2d's kernels.


cdef void _add_bias(real[:, :, :, ::1] y, const real[::1] bias) noexcept nogil:
    cdef Py_ssize_t task, p, plane = y.shape[2] * y.shape[3]
    cdef int c
    cdef real* yp
    for task in prange(y.shape[0] * y.shape[1], schedule="static"):
        c = task % y.shape[1]
        yp = &y[task // y.shape[1], c, 0, 0]
        for p in range(plane):
            yp[p] += bias[c]


cdef void _channel_sums(const real[:, :, :, ::1] a, real[::1] sums) noexcept nogil:
    cdef Py_ssize_t c, n, p, plane = a.shape[2] * a.shape[3]
    cdef const real* ap
    cdef real s
    for c in prange(a.shape[1], schedule="static"):
        s = 0
        for n in range(a.shape[0]):
            ap = &a[n, c, 0, 0]
            for p in range(plane):
                s = s + ap[p]
        sums[c] = s


def conv_transpose2d(x, weight, bias, stride, padding, groups, dilation, *, out):
    y = out
    if (winograd.applies(y.shape, weight.shape, stride, padding, dilation, groups)
            and winograd.pays(x.shape, y.shape)
            and _finite(winograd.conv2d_input_grad(x, weight, padding, out=y))):
        # (a NaN or an infinity: redone directly below, as in conv2d)
        if bias is not None:
            if y.dtype == np.float32:
                _add_bias[float](y, bias)
            else:
                _add_bias[double](y, bias)
    elif depthwise.applies(y.shape, weight.shape, groups):
        depthwise.conv2d_backward(x, None, weight, stride, padding, dilation,
                                  out=(y, None, None), dx_bias=bias)
    else:
        _backward(x, None, weight, stride, padding, dilation, groups, y, None, None,
                  x_shape=y.shape, dx_bias=bias)
    return y


def conv_transpose2d_backward(dy, x, weight, stride, padding, groups, dilation, need_dx, *,
                              out):
    dx, dweight, dbias = out
    dx = dx if need_dx else None
    fast = (winograd.applies(dy.shape, weight.shape, stride, padding, dilation, groups)
            or depthwise.applies(dy.shape, weight.shape, groups))
    if need_dx and fast:
        _forward(dy, weight, None, stride, padding, dilation, groups, dx)
    if winograd.applies(dy.shape, weight.shape, stride, padding, dilation, groups):
        # (its bias gradient, a sum of x, is not this op's)
        winograd.weight_grad(x, dy, padding, out=(dweight, np.empty(x.shape[1], x.dtype)))
    elif depthwise.applies(dy.shape, weight.shape, groups):
        depthwise.conv2d_backward(x, dy, weight, stride, padding, dilation,
                                  out=(None, dweight, None))
    else:   # dx and dweight from one unfolding of dy
        _backward(x, dy, weight, stride, padding, dilation, groups, None, dweight, None, y=dx)
    if dy.dtype == np.float32:
        _channel_sums[float](dy, dbias)
    else:
        _channel_sums[double](dy, dbias)
    return dx, dweight, dbias
