"""Pooling: one thread per output value forward, one per input value backward (a
gather), except max-pool's backward (below)."""

import numpy as np
from numba import cuda

from ._arrays import fill, view, views, written_indices
from ._jit import THREADS, blocks_for, i32, i64, image_grid, kernel


def _pool_signature(f):
    return (f[:, :, :, ::1], f[:, :, :, ::1]) + (i64,) * 6


@kernel(lambda f: (f[:, :, :, ::1], f[:, :, :, ::1], i32[:, :, :, ::1]) + (i64,) * 6)
def max_pool_kernel(F):
    def max_pool(x, y, indices, kh, kw, sh, sw, ph, pw):
        """The window's maximum and where it is (h * W + w). Taps go in row-major order and
        a later one wins only if larger, so ties go to the first; a NaN beats any number
        and the first NaN stays (NaN propagates). Padding never wins."""
        images, channels, height, width = x.shape
        oh_size, ow_size = y.shape[2], y.shape[3]
        for n in range(cuda.blockIdx.z, images, cuda.gridDim.z):
            for c in range(cuda.blockIdx.y, channels, cuda.gridDim.y):
                for q in range(cuda.grid(1), oh_size * ow_size, cuda.gridsize(1)):
                    oh, ow = q // ow_size, q % ow_size
                    best = F(-np.inf)
                    where = -1
                    for i in range(kh):
                        h = oh * sh - ph + i
                        for j in range(kw):
                            w = ow * sw - pw + j
                            if 0 <= h < height and 0 <= w < width:
                                v = x[n, c, h, w]
                                if where < 0 or v > best or (v != v and best == best):
                                    best, where = v, h * width + w
                    y[n, c, oh, ow] = best
                    indices[n, c, oh, ow] = where
    return max_pool


@kernel(lambda f: (f[:, ::1], i32[:, ::1], f[:, ::1]))
def max_pool_backward_kernel(F):
    def max_pool_backward(dy, indices, dx):
        """dx[plane, indices[plane, o]] += dy[plane, o], dx zeroed before. The indices alone
        do not say which windows overlap (the op is not given the window geometry), so a
        gather per input pixel is impossible; instead one thread owns a whole plane (n, c)
        and scatters into it in order: no two threads write the same pixel, no atomics,
        and the sums are deterministic (in the reference's order). An index outside the
        plane is skipped (see _arrays.check_indices: unchecked indices may reach here)."""
        size = dx.shape[1]
        for plane in range(cuda.grid(1), dx.shape[0], cuda.gridsize(1)):
            for o in range(dy.shape[1]):
                i = indices[plane, o]
                if 0 <= i < size:
                    dx[plane, i] += dy[plane, o]
    return max_pool_backward


@kernel(_pool_signature)
def avg_pool_kernel(F):
    def avg_pool(x, y, kh, kw, sh, sw, ph, pw):
        """The window's mean; padding counts as zeros in it (PyTorch's default)."""
        images, channels, height, width = x.shape
        oh_size, ow_size = y.shape[2], y.shape[3]
        for n in range(cuda.blockIdx.z, images, cuda.gridDim.z):
            for c in range(cuda.blockIdx.y, channels, cuda.gridDim.y):
                for q in range(cuda.grid(1), oh_size * ow_size, cuda.gridsize(1)):
                    oh, ow = q // ow_size, q % ow_size
                    total = F(0)
                    for i in range(kh):
                        h = oh * sh - ph + i
                        for j in range(kw):
                            w = ow * sw - pw + j
                            if 0 <= h < height and 0 <= w < width:
                                total += x[n, c, h, w]
                    y[n, c, oh, ow] = total / F(kh * kw)
    return avg_pool


@kernel(_pool_signature)
def avg_pool_backward_kernel(F):
    def avg_pool_backward(dy, dx, kh, kw, sh, sw, ph, pw):
        """dx[h, w] = the sum of dy over the windows that contain (h, w), over the window
        size. Window oh covers padded rows oh*sh .. oh*sh + kh - 1."""
        images, channels, height, width = dx.shape
        oh_size, ow_size = dy.shape[2], dy.shape[3]
        for n in range(cuda.blockIdx.z, images, cuda.gridDim.z):
            for c in range(cuda.blockIdx.y, channels, cuda.gridDim.y):
                for q in range(cuda.grid(1), height * width, cuda.gridsize(1)):
                    hp, wp = q // width + ph, q % width + pw      # in padded coordinates
                    total = F(0)
                    for oh in range(max(0, (hp - kh + sh) // sh), min(oh_size, hp // sh + 1)):
                        for ow in range(max(0, (wp - kw + sw) // sw),
                                        min(ow_size, wp // sw + 1)):
                            total += dy[n, c, oh, ow]
                    dx[n, c, q // width, q % width] = total / F(kh * kw)
    return avg_pool_backward


def max_pool2d(x, kernel_size, stride, padding, *, out):
    y, indices = views(out)
    n, c, oh, ow = y.shape
    max_pool_kernel(x.dtype)[image_grid(oh * ow, c, n), THREADS](
        x, y, indices, *kernel_size, *stride, padding[0], padding[2])
    written_indices(indices, x.shape[2] * x.shape[3])   # its backward need not check them
    return out


def max_pool2d_backward(dy, indices, input_shape, *, out):
    n, c, h, w = input_shape
    dx = view(out)
    fill(dx, 0)   # in parallel, coalesced: faster than each plane's thread zeroing its own
    planes = n * c
    max_pool_backward_kernel(dy.dtype)[blocks_for(planes), THREADS](
        dy.reshape((planes, dy.size // planes)), indices.reshape((planes, dy.size // planes)),
        dx.reshape((planes, h * w)))
    return out


def avg_pool2d(x, kernel_size, stride, padding, *, out):
    y = view(out)
    n, c, oh, ow = y.shape
    avg_pool_kernel(x.dtype)[image_grid(oh * ow, c, n), THREADS](
        x, y, *kernel_size, *stride, padding[0], padding[2])
    return out


def avg_pool2d_backward(dy, input_shape, kernel_size, stride, padding, *, out):
    n, c, h, w = input_shape
    dx = view(out)
    avg_pool_backward_kernel(dy.dtype)[image_grid(h * w, c, n), THREADS](
        dy, dx, *kernel_size, *stride, padding[0], padding[2])
    return out
