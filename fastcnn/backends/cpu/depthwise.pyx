# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Depthwise convolution (groups == in_channels, weight (C*m, 1, kh, kw)) by sliding windows.

Each output plane sees one input plane through a kh x kw window: kh*kw multiply-adds per
output value, far too few for im2col + gemm to pay (one group's gemm would have m rows).
So the window slides directly, over planes made for it. A task copies its input plane
(n, c) into the thread's scratch, zero-padded and split into stride phases: phase
(pr, pc) holds the padded pixels (r*sh + pr, c*sw + pc). Then every tap reads one
phase at a fixed offset, whatever the stride or dilation, and the outputs are computed
on a grid of OH rows as wide as the phases (Wq; the columns past OW are scratch):

    grid[q] = sum over taps t of w[t] * phase_t[offset_t + q],   q < OH * Wq

one long vectorised loop per few taps, with no bounds checks. The backward runs the
same loops the other way: dy is copied into a grid of its own (zeros in the scratch
columns), each tap's weight gradient is a dot product of it with the tap's phase, and
dx in the phase layout is, per phase, the sum of the dy grid shifted back by the
offsets of the taps that read that phase; the phases are then merged into dx[n, c].
One task per input plane (image, channel) and its m output planes: the task owns
dx[n, c]; its dweight sums go into the thread's own partial, the threads' partials are
added at the end in a fixed order.

Used by the conv module for conv2d and for conv_transpose2d, whose forward is this dx.
Arguments were checked by fastcnn.functional; output extents come from the out arrays.
"""

import numpy as np

from cython.parallel cimport prange, threadid
from libc.string cimport memset
from openmp cimport omp_get_max_threads

from blas cimport real

from fastcnn.backends.cpu.workspace import workspace


def applies(x_shape, w_shape, groups):
    """True for depthwise convolutions: one input channel per group, any multiplier m."""
    return groups > 1 and groups == x_shape[1] and w_shape[1] == 1


cdef struct Plan:
    int h, w, oh, ow, sh, sw, ph, pw, m, taps
    int hq, wq              # a phase plane's rows and columns (wq = OW + the widest shift)
    Py_ssize_t ps           # elements of a phase plane, one zero row of slack included
    Py_ssize_t front        # zeros before the dy grid: the largest tap offset
    const int* phase        # per tap t = i*kw + j: the phase it reads
    const Py_ssize_t* offset    # per tap: where in its phase output 0 finds its pixel
    const int* order        # the taps sorted by phase ...
    const int* start        # ... phase p's being order[start[p]:start[p + 1]]


cdef inline void inside(int offset, int stride, int size, int n, int* lo, int* hi) noexcept nogil:
    """The c in [lo, hi) of n with 0 <= c*stride + offset < size."""
    lo[0] = 0 if offset >= 0 else min((-offset + stride - 1) // stride, n)
    hi[0] = 0 if size - offset <= 0 else min((size - offset + stride - 1) // stride, n)
    hi[0] = max(hi[0], lo[0])


cdef void split(const real* x, Plan g, real* xq) noexcept nogil:
    """xq[pr, pc][r, c] = x[r*sh + pr - ph, c*sw + pc - pw], 0 outside x, + a zero row."""
    cdef int pr, pc, r, h, lo, hi
    cdef Py_ssize_t c
    cdef real* row
    cdef const real* src
    memset(xq, 0, g.sh * g.sw * g.ps * sizeof(real))   # the padding, then the pixels
    for pr in range(g.sh):
        for pc in range(g.sw):
            inside(pc - g.pw, g.sw, g.w, g.wq, &lo, &hi)
            for r in range(g.hq):
                h = r * g.sh + pr - g.ph
                if h < 0 or h >= g.h:
                    continue
                row = xq + (pr * g.sw + pc) * g.ps + r * g.wq
                src = x + h * g.w + pc - g.pw   # src[c * sw]: the pixel of column c
                if g.sw == 1:
                    for c in range(lo, hi):
                        row[c] = src[c]
                else:
                    for c in range(lo, hi):
                        row[c] = src[c * g.sw]


cdef void merge(const real* xq, Plan g, real b, real* x) noexcept nogil:
    """The inverse of split: x[h, w] = b + the phase value of pixel (h, w), or b alone
    where the phases do not reach (input no window reads)."""
    cdef int h, w, r, pr, pc, w0, stop
    cdef Py_ssize_t c
    cdef real* row
    cdef const real* src
    for h in range(g.h):
        row = x + h * g.w
        r, pr = (h + g.ph) // g.sh, (h + g.ph) % g.sh
        if r >= g.hq:
            for w in range(g.w):
                row[w] = b
            continue
        if g.sw == 1:
            src = xq + pr * g.ps + r * g.wq + g.pw
            stop = max(0, min(g.w, g.wq - g.pw))
            for w in range(stop):
                row[w] = b + src[w]
            for w in range(stop, g.w):
                row[w] = b
            continue
        for pc in range(g.sw):   # the columns w = c*sw + pc - pw
            src = xq + (pr * g.sw + pc) * g.ps + r * g.wq
            w0 = ((pc - g.pw) % g.sw + g.sw) % g.sw
            c = (w0 + g.pw) // g.sw
            w = w0
            while w < g.w:
                row[w] = b + (src[c] if c < g.wq else 0)
                w, c = w + g.sw, c + 1


cdef void accumulate(real* y, Py_ssize_t n, const real* base, Py_ssize_t stride, int sign,
                     const int* taps, int count, Plan g, const real* w,
                     bint first) noexcept nogil:
    """y[q] (= if first, else +=) the sum over the listed taps t of w[t] * src_t[q], q < n,
    where src_t = base + phase[t] * stride + sign * offset[t]: three taps per pass."""
    cdef int u = 0, t
    cdef Py_ssize_t q
    cdef const real* s[3]
    cdef real v[3]
    cdef const real* s0
    cdef const real* s1
    cdef const real* s2
    cdef real w0, w1, w2
    if count == 0 and first:
        memset(y, 0, n * sizeof(real))
    while u < count:
        for t in range(3):
            s[t] = base
            v[t] = 0
            if u + t < count:
                s[t] = base + g.phase[taps[u + t]] * stride + sign * g.offset[taps[u + t]]
                v[t] = w[taps[u + t]]
        s0, s1, s2, w0, w1, w2 = s[0], s[1], s[2], v[0], v[1], v[2]
        if count - u >= 3:
            if first:
                for q in range(n):
                    y[q] = w0 * s0[q] + w1 * s1[q] + w2 * s2[q]
            else:
                for q in range(n):
                    y[q] += w0 * s0[q] + w1 * s1[q] + w2 * s2[q]
        elif count - u == 2:
            if first:
                for q in range(n):
                    y[q] = w0 * s0[q] + w1 * s1[q]
            else:
                for q in range(n):
                    y[q] += w0 * s0[q] + w1 * s1[q]
        else:
            if first:
                for q in range(n):
                    y[q] = w0 * s0[q]
            else:
                for q in range(n):
                    y[q] += w0 * s0[q]
        u += 3
        first = False


cdef void tap_sums(const real* dy, Py_ssize_t n, const real* xq, Plan g,
                   real* dw) noexcept nogil:
    """dw[t] += sum_q dy[q] * phase_t[offset_t + q]: three dot products per pass."""
    cdef int t
    cdef Py_ssize_t q
    cdef const real* s0
    cdef const real* s1
    cdef const real* s2
    cdef real a0, a1, a2
    for t in range(0, g.taps, 3):
        s0 = xq + g.phase[t] * g.ps + g.offset[t]
        s1 = xq + g.phase[min(t + 1, g.taps - 1)] * g.ps + g.offset[min(t + 1, g.taps - 1)]
        s2 = xq + g.phase[min(t + 2, g.taps - 1)] * g.ps + g.offset[min(t + 2, g.taps - 1)]
        a0 = a1 = a2 = 0
        for q in range(n):
            a0 = a0 + dy[q] * s0[q]
            a1 = a1 + dy[q] * s1[q]
            a2 = a2 + dy[q] * s2[q]
        dw[t] += a0
        if t + 1 < g.taps:
            dw[t + 1] += a1
        if t + 2 < g.taps:
            dw[t + 2] += a2


cdef void _forward(const real* x, const real* w, const real* bias, real* y,
                   Py_ssize_t images, int channels, Plan g, real* workspace,
                   Py_ssize_t per_thread) noexcept nogil:
    cdef Py_ssize_t task, plane_in = g.h * g.w, plane_out = g.oh * g.ow, grid = g.oh * g.wq
    cdef int c, k, q, o, t
    cdef real b
    cdef real* xq
    cdef real* out
    cdef real* yk
    for task in prange(images * channels, schedule="static"):
        c = task % channels
        xq = workspace + threadid() * per_thread
        out = xq + g.sh * g.sw * g.ps
        split(x + task * plane_in, g, xq)
        for q in range(g.m):
            k = c * g.m + q
            accumulate(out, grid, xq, g.ps, 1, g.order, g.taps, g, w + k * g.taps, True)
            b = bias[k] if bias != NULL else 0
            yk = y + (task * g.m + q) * plane_out
            for o in range(g.oh):
                for t in range(g.ow):
                    yk[o * g.ow + t] = out[o * g.wq + t] + b


cdef void _backward(const real* dy, const real* x, const real* w, real* dx,
                    const real* dx_bias, real* dweight, real* dbias, Py_ssize_t images,
                    int channels, Plan g, real* workspace, Py_ssize_t per_thread,
                    int nthreads) noexcept nogil:
    cdef int k = channels * g.m, phases = g.sh * g.sw, c, q, o, t, p
    cdef Py_ssize_t task, e, plane_in = g.h * g.w, plane_out = g.oh * g.ow
    cdef Py_ssize_t grid = g.oh * g.wq, space = phases * g.ps
    cdef real* ws
    cdef real* xq
    cdef real* dxq
    cdef real* dyg
    cdef real* part
    cdef const real* dyk
    cdef real s
    # Per thread: [x phases | dx phases | dy grid: front + hq*wq + wq | dweight | dbias]
    cdef Py_ssize_t own = 2 * space + g.front + (g.hq + 1) * g.wq
    memset(workspace, 0, nthreads * per_thread * sizeof(real))
    for task in prange(images * channels, schedule="static", num_threads=nthreads):
        c = task % channels
        ws = workspace + threadid() * per_thread
        xq, dxq, dyg = ws, ws + space, ws + 2 * space + g.front
        part = ws + own
        if x != NULL:
            split(x + task * plane_in, g, xq)
        for q in range(g.m):
            dyk = dy + (task * g.m + q) * plane_out
            for o in range(g.oh):   # the dy grid; its scratch columns and margins stay 0
                for t in range(g.ow):
                    dyg[o * g.wq + t] = dyk[o * g.ow + t]
            if dweight != NULL:
                tap_sums(dyg, grid, xq, g, part + (c * g.m + q) * g.taps)
            if dbias != NULL:
                s = 0
                for e in range(plane_out):
                    s = s + dyk[e]
                part[k * g.taps + c * g.m + q] += s
            if dx != NULL:
                for p in range(phases):
                    accumulate(dxq + p * g.ps, g.hq * g.wq, dyg, 0, -1, g.order + g.start[p],
                               g.start[p + 1] - g.start[p], g, w + (c * g.m + q) * g.taps,
                               q == 0)
        if dx != NULL:
            merge(dxq, g, dx_bias[c] if dx_bias != NULL else 0, dx + task * plane_in)
    if dweight != NULL:
        memset(dweight, 0, k * g.taps * sizeof(real))
    if dbias != NULL:
        memset(dbias, 0, k * sizeof(real))
    for t in range(nthreads):
        part = workspace + t * per_thread + own
        if dweight != NULL:
            for e in range(k * g.taps):
                dweight[e] += part[e]
        if dbias != NULL:
            for e in range(k):
                dbias[e] += part[k * g.taps + e]


cdef Py_ssize_t address(a):
    return 0 if a is None else a.ctypes.data


cdef class Tables:
    """A plan and the tap tables it points into (kept alive with it)."""
    cdef Plan plan
    cdef object arrays

    def __init__(self, x_shape, y_shape, kernel_size, stride, padding, dilation):
        cdef Plan g
        (kh, kw), (sh, sw), (dh, dw) = kernel_size, stride, dilation
        g.h, g.w, g.oh, g.ow = x_shape[2], x_shape[3], y_shape[2], y_shape[3]
        g.sh, g.sw, g.ph, g.pw = sh, sw, padding[0], padding[2]
        g.m, g.taps = y_shape[1] // x_shape[1], kh * kw
        g.hq, g.wq = g.oh + (kh - 1) * dh // sh, g.ow + (kw - 1) * dw // sw
        g.ps = (g.hq + 1) * g.wq
        i, j = np.divmod(np.arange(kh * kw), kw)
        phase = ((i * dh % sh) * sw + j * dw % sw).astype(np.int32)
        offset = ((i * dh // sh) * g.wq + j * dw // sw).astype(np.intp)
        order = np.argsort(phase, kind="stable").astype(np.int32)
        start = np.searchsorted(phase[order], np.arange(sh * sw + 1)).astype(np.int32)
        g.front = int(offset.max())
        self.arrays = (phase, offset, order, start)
        g.phase, g.offset = <const int*><Py_ssize_t>phase.ctypes.data, \
            <const Py_ssize_t*><Py_ssize_t>offset.ctypes.data
        g.order, g.start = <const int*><Py_ssize_t>order.ctypes.data, \
            <const int*><Py_ssize_t>start.ctypes.data
        self.plan = g


def conv2d(x, weight, bias, stride, padding, dilation, *, out):
    """out = the depthwise convolution of x by weight (+ bias)."""
    cdef Tables tables = Tables(x.shape, out.shape, weight.shape[2:], stride, padding, dilation)
    cdef Plan g = tables.plan
    cdef Py_ssize_t per_thread = g.sh * g.sw * g.ps + g.oh * g.wq
    cdef Py_ssize_t px = address(x), pw = address(weight), pb = address(bias)
    cdef Py_ssize_t py = address(out), pws
    with workspace(omp_get_max_threads() * per_thread, x.dtype) as ws:
        pws = ws.ctypes.data
        if x.dtype == np.float32:
            _forward[float](<float*>px, <float*>pw, <float*>pb, <float*>py, x.shape[0],
                            x.shape[1], g, <float*>pws, per_thread)
        else:
            _forward[double](<double*>px, <double*>pw, <double*>pb, <double*>py, x.shape[0],
                             x.shape[1], g, <double*>pws, per_thread)
    return out


def conv2d_backward(dy, x, weight, stride, padding, dilation, *, out, dx_bias=None):
    """Whichever of out = (dx, dweight, dbias) is not None; x may be None when dweight
    is not wanted. dx_bias, if given, is added to dx per channel."""
    dx, dweight, dbias = out
    shape = x.shape if x is not None else dx.shape
    cdef Tables tables = Tables(shape, dy.shape, weight.shape[2:], stride, padding, dilation)
    cdef Plan g = tables.plan
    cdef int k = dy.shape[1]
    cdef int nthreads = min(omp_get_max_threads(), shape[0] * shape[1])
    cdef Py_ssize_t per_thread = (2 * g.sh * g.sw * g.ps + g.front + (g.hq + 1) * g.wq
                                  + k * g.taps + k)
    cdef Py_ssize_t pdy = address(dy), px = address(x), pw = address(weight)
    cdef Py_ssize_t pdx = address(dx), pbx = address(dx_bias), pdw = address(dweight)
    cdef Py_ssize_t pdb = address(dbias), pws
    with workspace(nthreads * per_thread, dy.dtype) as ws:
        pws = ws.ctypes.data
        if dy.dtype == np.float32:
            _backward[float](<float*>pdy, <float*>px, <float*>pw, <float*>pdx, <float*>pbx,
                             <float*>pdw, <float*>pdb, shape[0], shape[1], g, <float*>pws,
                             per_thread, nthreads)
        else:
            _backward[double](<double*>pdy, <double*>px, <double*>pw, <double*>pdx,
                              <double*>pbx, <double*>pdw, <double*>pdb, shape[0], shape[1],
                              g, <double*>pws, per_thread, nthreads)
    return dx, dweight, dbias
