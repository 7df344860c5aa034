"""Nearest and bilinear resampling: one thread per output value forward, one per input
value backward, which gathers the error of the output values that read it (no atomics:
the same sums on every run).

Each thread evaluates PyTorch's coordinate rules (backends/coordinates.py) for its own
pixels, in the same precision: float32 for nearest, the data's for bilinear. A backward
thread finds the output rows (and columns) that read its input row from the rule's
inverse, a guess that it then corrects by evaluating the rule itself on either side, so
the ranges are exactly the forward's.
"""

import math

import numpy as np
from numba import cuda, types

from ._arrays import view
from ._jit import boolean, image_grid, kernel, THREADS

f32 = types.float32


@cuda.jit(device=True, inline="always")
def nearest(d, scale, size):
    """The input index output index d copies: min(floor(d * scale), size - 1) in float32."""
    return min(int(math.floor(np.float32(d) * scale)), size - 1)


@cuda.jit(device=True, inline="always")
def first_copying(t, scale, size, out):
    """The first output index in [0, out] whose nearest input index is >= t."""
    d = min(max(int(math.ceil(np.float32(t) / scale)), 0), out)
    while d > 0 and nearest(d - 1, scale, size) >= t:
        d -= 1
    while d < out and nearest(d, scale, size) < t:
        d += 1
    return d


_nearest = (lambda f: (f[:, :, :, ::1], f[:, :, :, ::1], f32, f32))


@kernel(_nearest)
def upsample_nearest_kernel(F):
    def upsample_nearest(x, y, scale_h, scale_w):
        """y[n, c, i, j] = x[n, c, nearest(i), nearest(j)]."""
        images, channels, height, width = y.shape
        for n in range(cuda.blockIdx.z, images, cuda.gridDim.z):
            for c in range(cuda.blockIdx.y, channels, cuda.gridDim.y):
                for q in range(cuda.grid(1), height * width, cuda.gridsize(1)):
                    i, j = q // width, q % width
                    y[n, c, i, j] = x[n, c, nearest(i, scale_h, x.shape[2]),
                                      nearest(j, scale_w, x.shape[3])]
    return upsample_nearest


@kernel(_nearest)
def upsample_nearest_backward_kernel(F):
    def upsample_nearest_backward(dy, dx, scale_h, scale_w):
        """dx[n, c, k, m] = the sum of dy over the output pixels that copied (k, m)."""
        images, channels, height, width = dx.shape
        out_h, out_w = dy.shape[2], dy.shape[3]
        for n in range(cuda.blockIdx.z, images, cuda.gridDim.z):
            for c in range(cuda.blockIdx.y, channels, cuda.gridDim.y):
                for q in range(cuda.grid(1), height * width, cuda.gridsize(1)):
                    k, m = q // width, q % width
                    r0 = first_copying(k, scale_h, height, out_h)
                    r1 = first_copying(k + 1, scale_h, height, out_h)
                    s0 = first_copying(m, scale_w, width, out_w)
                    s1 = first_copying(m + 1, scale_w, width, out_w)
                    total = F(0)
                    for r in range(r0, r1):
                        for s in range(s0, s1):
                            total += dy[n, c, r, s]
                    dx[n, c, k, m] = total
    return upsample_nearest_backward


def _linear_rules(F):
    """The bilinear rule's device functions in F's precision."""
    @cuda.jit(device=True, inline="always")
    def source(d, scale, size, align_corners):
        """(i0, i1, w0, w1): output index d reads w0 * x[i0] + w1 * x[i1]."""
        if align_corners:
            src = scale * F(d)
        else:
            src = max(scale * (F(d) + F(0.5)) - F(0.5), F(0))
        i0 = min(int(math.floor(src)), size - 1)
        w1 = min(max(src - F(i0), F(0)), F(1))
        i1 = i0 + 1 if i0 < size - 1 else i0
        return i0, i1, F(1) - w1, w1

    @cuda.jit(device=True, inline="always")
    def first_reading(t, scale, size, out, align_corners):
        """The first output index in [0, out] whose i0 is >= t."""
        if t <= 0:
            return 0
        if scale == F(0):
            guess = F(0)
        elif align_corners:
            guess = F(t) / scale
        else:
            guess = (F(t) + F(0.5)) / scale - F(0.5)
        d = min(max(int(math.ceil(guess)), 0), out)
        while d > 0 and source(d - 1, scale, size, align_corners)[0] >= t:
            d -= 1
        while d < out and source(d, scale, size, align_corners)[0] < t:
            d += 1
        return d

    @cuda.jit(device=True, inline="always")
    def weight(d, k, scale, size, align_corners):
        """The weight output index d reads input index k with (0 if it does not)."""
        i0, i1, w0, w1 = source(d, scale, size, align_corners)
        return (w0 if i0 == k else F(0)) + (w1 if i1 == k else F(0))

    return source, first_reading, weight


_bilinear = (lambda f: (f[:, :, :, ::1], f[:, :, :, ::1], f, f, boolean))


@kernel(_bilinear)
def upsample_bilinear_kernel(F):
    source, _, _ = _linear_rules(F)

    def upsample_bilinear(x, y, scale_h, scale_w, align_corners):
        images, channels, height, width = y.shape
        for n in range(cuda.blockIdx.z, images, cuda.gridDim.z):
            for c in range(cuda.blockIdx.y, channels, cuda.gridDim.y):
                for q in range(cuda.grid(1), height * width, cuda.gridsize(1)):
                    i0, i1, u0, u1 = source(q // width, scale_h, x.shape[2], align_corners)
                    j0, j1, v0, v1 = source(q % width, scale_w, x.shape[3], align_corners)
                    y[n, c, q // width, q % width] = (
                        u0 * (v0 * x[n, c, i0, j0] + v1 * x[n, c, i0, j1])
                        + u1 * (v0 * x[n, c, i1, j0] + v1 * x[n, c, i1, j1]))
    return upsample_bilinear


@kernel(_bilinear)
def upsample_bilinear_backward_kernel(F):
    _, first_reading, weight = _linear_rules(F)

    def upsample_bilinear_backward(dy, dx, scale_h, scale_w, align_corners):
        """dx[n, c, k, m] = the sum over the output pixels whose i0 is k - 1 or k (along
        each axis) of their weight for (k, m) times dy."""
        images, channels, height, width = dx.shape
        out_h, out_w = dy.shape[2], dy.shape[3]
        for n in range(cuda.blockIdx.z, images, cuda.gridDim.z):
            for c in range(cuda.blockIdx.y, channels, cuda.gridDim.y):
                for q in range(cuda.grid(1), height * width, cuda.gridsize(1)):
                    k, m = q // width, q % width
                    r0 = first_reading(k - 1, scale_h, height, out_h, align_corners)
                    r1 = first_reading(k + 1, scale_h, height, out_h, align_corners)
                    s0 = first_reading(m - 1, scale_w, width, out_w, align_corners)
                    s1 = first_reading(m + 1, scale_w, width, out_w, align_corners)
                    total = F(0)
                    for r in range(r0, r1):
                        row = F(0)
                        for s in range(s0, s1):
                            row += weight(s, m, scale_w, width, align_corners) * dy[n, c, r, s]
                        total += weight(r, k, scale_h, height, align_corners) * row
                    dx[n, c, k, m] = total
    return upsample_bilinear_backward


def _launch(template, src, dst, pixels, *args):
    n, c = dst.shape[:2]
    template(src.dtype)[image_grid(pixels, c, n), THREADS](src, view(dst), *args)


def upsample_nearest2d(x, scales, *, out):
    _launch(upsample_nearest_kernel, x, out, out.shape[2] * out.shape[3],
            *map(np.float32, scales))
    return out


def upsample_nearest2d_backward(dy, scales, *, out):
    _launch(upsample_nearest_backward_kernel, dy, out, out.shape[2] * out.shape[3],
            *map(np.float32, scales))
    return out


def upsample_bilinear2d(x, scales, align_corners, *, out):
    _launch(upsample_bilinear_kernel, x, out, out.shape[2] * out.shape[3],
            *map(x.dtype.type, scales), bool(align_corners))
    return out


def upsample_bilinear2d_backward(dy, scales, align_corners, *, out):
    _launch(upsample_bilinear_backward_kernel, dy, out, out.shape[2] * out.shape[3],
            *map(dy.dtype.type, scales), bool(align_corners))
    return out
