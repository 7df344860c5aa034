# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""3x3 stride-1 convolution by Winograd's minimal filtering F(2x2, 3x3) (Lavin & Gray, 2015).

Each 2x2 block of outputs needs 36 multiplications directly but only 16 in the
Winograd domain: the input is cut into overlapping 4x4 tiles (stride 2), every
tile d and every filter g are transformed,

    V = B^T d B,    U = G g G^T,    Y = A^T (U * V) A,

and the 16 elementwise products, summed over the input channels, become 16
matrix products M[e] = U[e] (K x C) . V[e] (C x tiles), one per position e of
the 4x4 tile. That is 2.25x fewer flops than im2col + gemm, in the same BLAS.

The cpu backend uses it for 3x3, stride-1, undilated convolutions (`applies`): for
their weight gradient, and for the forward and the input gradient (which is such a
convolution too, of dy with the flipped filters) where it measured faster (`pays`).
"""

import numpy as np

from cython.parallel cimport prange, threadid
from libc.string cimport memset
from openmp cimport omp_get_max_threads

from blas cimport gemm, real

from fastcnn.backends.cpu.blas_threads import single_threaded_blas
from fastcnn.backends.cpu.workspace import workspace

# Below this many channels the 16 gemms are too thin and im2col + one gemm wins (the
# weight gradient's rule; the forward and dx ask more, see pays).
MIN_CHANNELS = 16
# Tiles per gemm: enough columns for BLAS to run near peak, few enough that a
# thread's V and M stay in its L2 cache.
TILES_PER_CHUNK = 256


def applies(x_shape, w_shape, stride, padding, dilation, groups):
    """True for the convolutions this module handles (and whose dx it can compute):
    ungrouped ones only (its gemms run over all the channels at once)."""
    return (groups == 1 and tuple(w_shape[2:]) == (3, 3) and tuple(stride) == (1, 1)
            and tuple(dilation) == (1, 1) and max(padding) <= 2
            and x_shape[1] >= MIN_CHANNELS and w_shape[0] >= MIN_CHANNELS)


def pays(x_shape, y_shape):
    """True when the convolution from x to y (a forward, or an input gradient: the same
    kind of conv) runs faster here than by im2col + gemm. Its 16 gemms have C x K
    operands, thin with few channels, and its transforms cost per channel and pixel, on
    rows of tiles that are short on small planes (a 7x7 one also wastes a third of its
    tiles' outputs), so the 2.25x fewer multiplications pay only with 32 channels in and
    out, a plane of 14x14 or more, and 64 output channels unless the plane is 28x28 or
    more; and with tiles (2x2 outputs, as tiling() cuts y) enough for two chunks, one per
    thread. Measured on a 2-core machine, 2 threads, forward and dx of 15 layer shapes
    (tools/winograd_rule.py); runs there differ by up to 20%, as much as the two paths
    do on the seed CNN's conv2."""
    c, k, plane = x_shape[1], y_shape[1], y_shape[2] * y_shape[3]
    tiles = y_shape[0] * ((y_shape[2] + 1) // 2) * ((y_shape[3] + 1) // 2)
    return (c >= 32 and k >= 32 and plane >= 14 * 14 and (k >= 64 or plane >= 28 * 28)
            and tiles >= 2 * TILES_PER_CHUNK)


cdef struct Tiling:
    int c, k, h, w, ph, pw, oh, ow
    int th, tw          # tiles down and across one image (each tile gives 2x2 outputs)
    int pad_h, pad_w    # the zero-padded plane the tiles are cut from
    int images          # images per chunk
    Py_ssize_t tiles    # tiles per chunk = images * th * tw


cdef inline Py_ssize_t row_space(const Tiling* g) noexcept nogil:
    """Scratch rows of the transforms: 4 padded rows in, 8 x tiles + 4 x tw out."""
    return max(4 * g.pad_w, 8 * g.tiles + 4 * g.tw)


cdef void filter_transform(const real* weight, int k, int c, bint flipped,
                           real* u) noexcept nogil:
    """u[e, k, c] = (G g G^T)[e] for each 3x3 filter g = weight[k, c], or, flipped, for
    g = weight[c, k] turned by 180 degrees (weight is then C x K: the filters of the conv
    whose input gradient this conv is)."""
    cdef int o, i, j
    cdef real g[9]
    cdef real gg[4][3]
    cdef real t[4][4]
    cdef Py_ssize_t kc = <Py_ssize_t>k * c, f, at
    for f in range(kc):
        at = (f % c) * k + f // c if flipped else f   # where filter f is in weight
        for i in range(9):
            g[i] = weight[9 * at + (8 - i if flipped else i)]
        for j in range(3):   # G g: G = [[1, 0, 0], [1/2, 1/2, 1/2], [1/2, -1/2, 1/2], [0, 0, 1]]
            gg[0][j] = g[j]
            gg[1][j] = (g[j] + g[3 + j] + g[6 + j]) * <real>0.5
            gg[2][j] = (g[j] - g[3 + j] + g[6 + j]) * <real>0.5
            gg[3][j] = g[6 + j]
        for i in range(4):   # (G g) G^T
            t[i][0] = gg[i][0]
            t[i][1] = (gg[i][0] + gg[i][1] + gg[i][2]) * <real>0.5
            t[i][2] = (gg[i][0] - gg[i][1] + gg[i][2]) * <real>0.5
            t[i][3] = gg[i][2]
        for o in range(16):
            u[o * kc + f] = t[o // 4][o % 4]


cdef void input_transform(const real* x, Tiling g, int n_images, real* plane, real* rows,
                          real* v) noexcept nogil:
    """v[e, c, tile] = (B^T d B)[e] for every 4x4 input tile d of n_images images, with
    B^T = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]].

    Each channel plane is copied into a zero-padded one so that tiles need no
    bounds checks; then, for each row of tiles, B^T combines four plane rows
    (whole rows at once) and B combines columns, tile by tile: both loops run
    over contiguous memory and vectorise.
    """
    cdef int n, c, r, s, a, b, q, pw = g.pad_w, tw = g.tw
    cdef Py_ssize_t stride_e = <Py_ssize_t>g.c * g.tiles
    cdef const real* src
    cdef const real* d
    cdef const real* bt
    cdef real* out
    cdef real* o
    for n in range(n_images):
        for c in range(g.c):
            memset(plane, 0, g.pad_h * pw * sizeof(real))
            src = x + (<Py_ssize_t>n * g.c + c) * g.h * g.w
            for r in range(g.h):
                for s in range(g.w):
                    plane[(r + g.ph) * pw + g.pw + s] = src[r * g.w + s]
            out = v + <Py_ssize_t>c * g.tiles + <Py_ssize_t>n * g.th * tw
            for a in range(g.th):
                d = plane + 2 * a * pw
                for q in range(pw):   # B^T d over whole rows: rows[r] = (B^T d)[r]
                    rows[q] = d[q] - d[2 * pw + q]
                    rows[pw + q] = d[pw + q] + d[2 * pw + q]
                    rows[2 * pw + q] = d[2 * pw + q] - d[pw + q]
                    rows[3 * pw + q] = d[pw + q] - d[3 * pw + q]
                for r in range(4):    # (B^T d) B, one tile (two columns further) at a time
                    bt = rows + r * pw
                    o = out + 4 * r * stride_e + a * tw
                    for b in range(tw):
                        o[b] = bt[2 * b] - bt[2 * b + 2]
                        o[stride_e + b] = bt[2 * b + 1] + bt[2 * b + 2]
                        o[2 * stride_e + b] = bt[2 * b + 2] - bt[2 * b + 1]
                        o[3 * stride_e + b] = bt[2 * b + 1] - bt[2 * b + 3]


cdef void output_transform(const real* m, const real* bias, Tiling g, int n_images,
                           real* rows, real* y) noexcept nogil:
    """y[n, k] = A^T m A (+ bias) block by block, A^T = [[1, 1, 1, 0], [0, 1, -1, -1]].

    For each output channel, A^T first combines the m rows over all the
    chunk's tiles at once (long contiguous loops); then A combines columns into
    two output rows per row of tiles, cut to the output's width and height.
    """
    cdef int n, k, a, b, s, q, tw = g.tw
    cdef Py_ssize_t t, tiles = g.tiles, stride_e = <Py_ssize_t>g.k * g.tiles
    cdef const real* ms
    cdef const real* v0
    cdef const real* v1
    cdef real* yk
    cdef real* u0 = rows                  # (A^T m) row 0 for the 4 columns s: 4 x tiles
    cdef real* u1 = rows + 4 * tiles      # (A^T m) row 1
    cdef real* y0 = rows + 8 * tiles      # two output rows, 2 * tw wide
    cdef real* y1 = y0 + 2 * tw
    cdef real b0
    for k in range(g.k):
        for s in range(4):
            ms = m + s * stride_e + k * tiles
            for t in range(tiles):
                u0[s * tiles + t] = ms[t] + ms[4 * stride_e + t] + ms[8 * stride_e + t]
                u1[s * tiles + t] = ms[4 * stride_e + t] - ms[8 * stride_e + t] \
                    - ms[12 * stride_e + t]
        b0 = 0 if bias == NULL else bias[k]
        for n in range(n_images):
            yk = y + (<Py_ssize_t>n * g.k + k) * g.oh * g.ow
            for a in range(g.th):
                v0 = u0 + (n * g.th + a) * tw
                v1 = u1 + (n * g.th + a) * tw
                for b in range(tw):
                    y0[2 * b] = v0[b] + v0[tiles + b] + v0[2 * tiles + b] + b0
                    y0[2 * b + 1] = v0[tiles + b] - v0[2 * tiles + b] - v0[3 * tiles + b] + b0
                    y1[2 * b] = v1[b] + v1[tiles + b] + v1[2 * tiles + b] + b0
                    y1[2 * b + 1] = v1[tiles + b] - v1[2 * tiles + b] - v1[3 * tiles + b] + b0
                for q in range(g.ow):
                    yk[2 * a * g.ow + q] = y0[q]
                if 2 * a + 1 < g.oh:
                    for q in range(g.ow):
                        yk[(2 * a + 1) * g.ow + q] = y1[q]


cdef void _conv2d(const real* x, Py_ssize_t n_total, const real* u, const real* bias,
                  real* y, Tiling g, real* workspace, Py_ssize_t per_thread) noexcept nogil:
    cdef Py_ssize_t chunk, n_chunks = (n_total + g.images - 1) // g.images, first
    cdef int n_images, e
    cdef real* plane
    cdef real* rows
    cdef real* v
    cdef real* m
    for chunk in prange(n_chunks, schedule="static"):
        plane = workspace + threadid() * per_thread   # [plane | rows | V | M]
        rows = plane + g.pad_h * g.pad_w
        v = rows + row_space(&g)
        m = v + 16 * <Py_ssize_t>g.c * g.tiles
        first = chunk * g.images
        n_images = <int>min(<Py_ssize_t>g.images, n_total - first)
        input_transform(x + first * g.c * g.h * g.w, g, n_images, plane, rows, v)
        for e in range(16):   # M[e] (K x tiles) = U[e] (K x C) . V[e] (C x tiles)
            gemm(False, False, g.k, g.tiles, g.c, <real>1, u + e * g.k * g.c, g.c,
                 v + e * g.c * g.tiles, g.tiles, <real>0, m + e * g.k * g.tiles, g.tiles)
        output_transform(m, bias, g, n_images, rows, y + first * g.k * g.oh * g.ow)


cdef Tiling tiling(tuple x_shape, tuple y_shape, tuple padding):
    cdef Tiling g
    n = x_shape[0]
    g.c, g.h, g.w = x_shape[1], x_shape[2], x_shape[3]
    g.k, g.oh, g.ow = y_shape[1], y_shape[2], y_shape[3]
    g.ph, g.pw = padding[0], padding[2]   # the leading pads; out's shape says the rest
    g.th, g.tw = (g.oh + 1) // 2, (g.ow + 1) // 2
    g.pad_h, g.pad_w = 2 * g.th + 2, 2 * g.tw + 2
    g.images = max(1, min(n, TILES_PER_CHUNK // (g.th * g.tw)))
    g.tiles = <Py_ssize_t>g.images * g.th * g.tw
    return g


def conv2d(x, weight, bias, padding, *, out, flipped=False):
    """conv2d(x, weight, bias, stride=1, padding, dilation=1) for a 3x3 weight (flipped:
    see filter_transform)."""
    y = out
    cdef Tiling g = tiling(x.shape, y.shape, padding)
    n = x.shape[0]
    u = np.empty((16, g.k, g.c), x.dtype)
    # [padded plane | transform rows | V | M]
    cdef Py_ssize_t per_thread = (g.pad_h * g.pad_w + row_space(&g)
                                  + 16 * (g.c + g.k) * g.tiles)
    cdef Py_ssize_t px = x.ctypes.data, pw_ = weight.ctypes.data, pu = u.ctypes.data
    cdef Py_ssize_t pb = 0 if bias is None else bias.ctypes.data
    cdef Py_ssize_t py = y.ctypes.data, pws
    with workspace(omp_get_max_threads() * per_thread, x.dtype) as ws, single_threaded_blas():
        pws = ws.ctypes.data
        if x.dtype == np.float32:
            filter_transform[float](<float*>pw_, g.k, g.c, flipped, <float*>pu)
            _conv2d[float](<float*>px, n, <float*>pu, <float*>pb, <float*>py, g, <float*>pws,
                    per_thread)
        else:
            filter_transform[double](<double*>pw_, g.k, g.c, flipped, <double*>pu)
            _conv2d[double](<double*>px, n, <double*>pu, <double*>pb, <double*>py, g, <double*>pws,
                    per_thread)
    return y


def conv2d_input_grad(dy, weight, padding, *, out):
    """dx of a 3x3 stride-1 conv: dy convolved with the flipped filters, transposed
    (in and out channels swap), padded by 2 - padding on each side. The filter transform
    reads them so from weight itself (a flipped copy took milliseconds on 256 channels)."""
    return conv2d(dy, weight, None, tuple(2 - p for p in padding), out=out, flipped=True)


# ---------------------------------------------------------------- weight gradient
# The forward map g -> y is linear, y_t = A^T [(G g G^T) * V_t] A for each tile
# t, so its adjoint gives the weight gradient in the same domain:
#     dweight = sum over tiles of G^T [(A dy_t A^T) * V_t] G,
# and the sum over tiles (and channel pairs) is again 16 gemms.


cdef void to_pixel_major(const real* src, int rows, int cols, real* dst) noexcept nogil:
    """dst (cols x rows) = src (rows x cols) transposed, in 16 x 16 blocks for the cache."""
    cdef int r0, c0, r, c
    for r0 in range(0, rows, 16):
        for c0 in range(0, cols, 16):
            for c in range(c0, min(c0 + 16, cols)):
                for r in range(r0, min(r0 + 16, rows)):
                    dst[<Py_ssize_t>c * rows + r] = src[<Py_ssize_t>r * cols + c]


cdef void dy_transform(const real* dy, Tiling g, int n_images, real* pixels, real* d,
                       real* db) noexcept nogil:
    """d[e, tile, k] = (A q A^T)[e] for the 2x2 block q of dy each tile produced (zero past
    the output's edge), A = [[1, 0], [1, 1], [1, -1], [0, -1]]; and db[k] += sum of dy[k].

    Each image's dy is first made pixel-major (P x K), so that every step below
    runs over k, contiguous, and d comes out tile-major with k innermost: the
    gemm that follows then needs no transposed operand.
    """
    cdef int n, a, b, k, K = g.k, ow = g.ow
    cdef Py_ssize_t p, plane = <Py_ssize_t>g.oh * g.ow, stride_e = g.tiles * g.k
    cdef const real* zero = pixels + plane * K   # a row of K zeros stands in past the edge
    cdef const real* p00
    cdef const real* p01
    cdef const real* p10
    cdef const real* p11
    cdef real* o
    cdef real q00, q01, q10, q11, r0, r1, s0, s1, t0, t1, u0, u1
    for k in range(K):
        pixels[plane * K + k] = 0
    for n in range(n_images):
        to_pixel_major(dy + <Py_ssize_t>n * K * plane, K, <int>plane, pixels)
        for p in range(plane):
            for k in range(K):
                db[k] += pixels[p * K + k]
        for a in range(g.th):
            for b in range(g.tw):
                p00 = pixels + (2 * a * ow + 2 * b) * K
                p01 = p00 + K if 2 * b + 1 < ow else zero
                p10 = p00 + ow * K if 2 * a + 1 < g.oh else zero
                p11 = p10 + K if 2 * b + 1 < ow and 2 * a + 1 < g.oh else zero
                o = d + ((n * g.th + a) * g.tw + b) * K
                for k in range(K):
                    q00, q01, q10, q11 = p00[k], p01[k], p10[k], p11[k]
                    # Rows of A q, then each row (x0, x1) -> (x0, x0 + x1, x0 - x1, -x1).
                    r0, r1 = q00, q01
                    s0, s1 = q00 + q10, q01 + q11
                    t0, t1 = q00 - q10, q01 - q11
                    u0, u1 = -q10, -q11
                    o[k] = r0
                    o[stride_e + k] = r0 + r1
                    o[2 * stride_e + k] = r0 - r1
                    o[3 * stride_e + k] = -r1
                    o[4 * stride_e + k] = s0
                    o[5 * stride_e + k] = s0 + s1
                    o[6 * stride_e + k] = s0 - s1
                    o[7 * stride_e + k] = -s1
                    o[8 * stride_e + k] = t0
                    o[9 * stride_e + k] = t0 + t1
                    o[10 * stride_e + k] = t0 - t1
                    o[11 * stride_e + k] = -t1
                    o[12 * stride_e + k] = u0
                    o[13 * stride_e + k] = u0 + u1
                    o[14 * stride_e + k] = u0 - u1
                    o[15 * stride_e + k] = -u1


cdef void filter_gradient(const real* z, int k, int c, real* dweight) noexcept nogil:
    """dweight[k, c] = G^T z_kc G, z[e, c, k] summed over tiles; G^T = [[1, 1/2, 1/2, 0],
    [0, 1/2, -1/2, 0], [0, 1/2, 1/2, 1]]."""
    cdef int o, i, j, s
    cdef Py_ssize_t kc = <Py_ssize_t>k * c
    cdef real zz[4][4]
    cdef real w[3][4]
    cdef real* out
    for o in range(k):
        for i in range(c):
            for s in range(16):
                zz[s // 4][s % 4] = z[s * kc + i * k + o]
            for s in range(4):
                w[0][s] = zz[0][s] + (zz[1][s] + zz[2][s]) * <real>0.5
                w[1][s] = (zz[1][s] - zz[2][s]) * <real>0.5
                w[2][s] = (zz[1][s] + zz[2][s]) * <real>0.5 + zz[3][s]
            out = dweight + (o * c + i) * 9
            for j in range(3):
                out[3 * j] = w[j][0] + (w[j][1] + w[j][2]) * <real>0.5
                out[3 * j + 1] = (w[j][1] - w[j][2]) * <real>0.5
                out[3 * j + 2] = (w[j][1] + w[j][2]) * <real>0.5 + w[j][3]


cdef void _weight_grad(const real* dy, const real* x, Py_ssize_t n_total, real* dweight,
                       real* dbias, Tiling g, real* workspace, Py_ssize_t per_thread,
                       int nthreads) noexcept nogil:
    cdef Py_ssize_t chunk, n_chunks = (n_total + g.images - 1) // g.images, first, e, q
    cdef Py_ssize_t kc = <Py_ssize_t>g.k * g.c, plane = <Py_ssize_t>g.oh * g.ow
    cdef int n_images, t
    cdef real* ws
    cdef real* z
    cdef real* db
    cdef real* plane_in
    cdef real* rows
    cdef real* v
    cdef real* d
    cdef real* pixels
    # Each thread sums its chunks into its own [z: 16 x C x K | db: K].
    for t in range(nthreads):
        memset(workspace + t * per_thread, 0, (16 * kc + g.k) * sizeof(real))
    for chunk in prange(n_chunks, schedule="static", num_threads=nthreads):
        # [z | db | padded plane | rows | V | D | pixel-major dy + a zero row]
        ws = workspace + threadid() * per_thread
        z = ws
        db = z + 16 * kc
        plane_in = db + g.k
        rows = plane_in + g.pad_h * g.pad_w
        v = rows + row_space(&g)
        d = v + 16 * <Py_ssize_t>g.c * g.tiles
        pixels = d + 16 * <Py_ssize_t>g.k * g.tiles
        first = chunk * g.images
        n_images = <int>min(<Py_ssize_t>g.images, n_total - first)
        if n_images < g.images:   # a short last chunk: its missing tiles must count as zero
            memset(v, 0, 16 * (g.c + g.k) * g.tiles * sizeof(real))
        input_transform(x + first * g.c * g.h * g.w, g, n_images, plane_in, rows, v)
        dy_transform(dy + first * g.k * plane, g, n_images, pixels, d, db)
        for e in range(16):   # z[e] (C x K) += V[e] (C x tiles) . D[e] (tiles x K)
            gemm(False, False, g.c, g.k, g.tiles, <real>1, v + e * g.c * g.tiles, g.tiles,
                 d + e * g.tiles * g.k, g.k, <real>1, z + e * kc, g.k)
    # Sum the threads' partial sums, then take z back from the Winograd domain.
    for t in range(1, nthreads):
        for q in range(16 * kc + g.k):
            workspace[q] += workspace[t * per_thread + q]
    filter_gradient(workspace, g.k, g.c, dweight)
    for q in range(g.k):
        dbias[q] = workspace[16 * kc + q]


def weight_grad(dy, x, padding, *, out):
    """(dweight, dbias) of a 3x3 stride-1 conv, written into out = (dweight, dbias)."""
    dweight, dbias = out
    cdef Tiling g = tiling(x.shape, dy.shape, padding)
    cdef int nthreads = min(omp_get_max_threads(), (x.shape[0] + g.images - 1) // g.images)
    # [z: 16 x C x K | db: K | padded plane | transform rows | V | D | pixel-major dy]
    cdef Py_ssize_t per_thread = (16 * g.c * g.k + g.k + g.pad_h * g.pad_w + row_space(&g)
                                  + 16 * (g.c + g.k) * g.tiles + (g.oh * g.ow + 1) * g.k)
    cdef Py_ssize_t pdy = dy.ctypes.data, px = x.ctypes.data
    cdef Py_ssize_t pdw = dweight.ctypes.data, pdb = dbias.ctypes.data, pws
    with workspace(nthreads * per_thread, x.dtype) as ws, single_threaded_blas():
        pws = ws.ctypes.data
        if x.dtype == np.float32:
            _weight_grad[float](<float*>pdy, <float*>px, x.shape[0], <float*>pdw, <float*>pdb,
                                g, <float*>pws, per_thread, nthreads)
        else:
            _weight_grad[double](<double*>pdy, <double*>px, x.shape[0], <double*>pdw,
                                 <double*>pdb, g, <double*>pws, per_thread, nthreads)
    return dweight, dbias
