"""Pooling: one thread per output value forward, one per input value backward (a
gather), except max-pool's backward (below) and global average pooling (a block per
plane, a reduction)."""

import functools

import numpy as np
from numba import cuda

from ._arrays import fill, view, views, written_indices
from ._jit import MAX_BLOCKS, THREADS, blocks_for, boolean, i32, i64, image_grid, kernel
from .reduce import block_sum


@cuda.jit(device=True, inline="always")
def counted(start, k, size, pad_end, include_pad):
    """How many of a window's k pixels along one axis its divisor counts (PyTorch's rule):
    those inside the padded input (include_pad), or inside the input."""
    end = min(start + k, size + pad_end)
    if not include_pad:
        start, end = max(start, 0), min(end, size)
    return end - start


@cuda.jit(device=True, inline="always")
def window_start(i, size, out):
    """Adaptive window i of out along an axis of size: [start, end), PyTorch's."""
    return i * size // out


@cuda.jit(device=True, inline="always")
def window_end(i, size, out):
    return ((i + 1) * size + out - 1) // out


@kernel(lambda f: (f[:, :, :, ::1], f[:, :, :, ::1], i32[:, :, :, ::1]) + (i64,) * 8
        + (boolean,))
def max_pool_kernel(F):
    def max_pool(x, y, indices, kh, kw, sh, sw, ph, pw, dh, dw, keep):
        """The window's maximum and, if keep, where it is (h * W + w). Taps go in
        row-major order and a later one wins only if larger, so ties go to the first; a
        NaN beats any number and the first NaN stays (NaN propagates). Padding never
        wins."""
        images, channels, height, width = x.shape
        oh_size, ow_size = y.shape[2], y.shape[3]
        for n in range(cuda.blockIdx.z, images, cuda.gridDim.z):
            for c in range(cuda.blockIdx.y, channels, cuda.gridDim.y):
                for q in range(cuda.grid(1), oh_size * ow_size, cuda.gridsize(1)):
                    oh, ow = q // ow_size, q % ow_size
                    best = F(-np.inf)
                    where = -1
                    for i in range(kh):
                        h = oh * sh - ph + i * dh
                        for j in range(kw):
                            w = ow * sw - pw + j * dw
                            if 0 <= h < height and 0 <= w < width:
                                v = x[n, c, h, w]
                                if where < 0 or v > best or (v != v and best == best):
                                    best, where = v, h * width + w
                    y[n, c, oh, ow] = best
                    if keep:
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


# Average pooling's divisor: `divisor` when every window shares one (divisor_override, or
# kh * kw when no window reaches past the padding), else (divisor 0) the window's own.
_avg_signature = (lambda f: (f[:, :, :, ::1], f[:, :, :, ::1]) + (i64,) * 8 + (boolean, i64))


@kernel(_avg_signature)
def avg_pool_kernel(F):
    def avg_pool(x, y, kh, kw, sh, sw, ph, pw, pb, pr, include_pad, divisor):
        """The window's sum over its divisor; padding adds zeros to it."""
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
                    count = divisor
                    if count == 0:
                        count = (counted(oh * sh - ph, kh, height, pb, include_pad)
                                 * counted(ow * sw - pw, kw, width, pr, include_pad))
                    y[n, c, oh, ow] = total / F(count)
    return avg_pool


@kernel(_avg_signature)
def avg_pool_backward_kernel(F):
    def avg_pool_backward(dy, dx, kh, kw, sh, sw, ph, pw, pb, pr, include_pad, divisor):
        """dx[h, w] = the sum, over the windows that contain (h, w), of dy over the window's
        divisor. Window oh covers padded rows oh*sh .. oh*sh + kh - 1."""
        images, channels, height, width = dx.shape
        oh_size, ow_size = dy.shape[2], dy.shape[3]
        for n in range(cuda.blockIdx.z, images, cuda.gridDim.z):
            for c in range(cuda.blockIdx.y, channels, cuda.gridDim.y):
                for q in range(cuda.grid(1), height * width, cuda.gridsize(1)):
                    hp, wp = q // width + ph, q % width + pw      # in padded coordinates
                    total = F(0)
                    for oh in range(max(0, (hp - kh + sh) // sh), min(oh_size, hp // sh + 1)):
                        rows = counted(oh * sh - ph, kh, height, pb, include_pad)
                        for ow in range(max(0, (wp - kw + sw) // sw),
                                        min(ow_size, wp // sw + 1)):
                            if divisor:
                                total += dy[n, c, oh, ow]
                            else:
                                total += dy[n, c, oh, ow] / F(
                                    rows * counted(ow * sw - pw, kw, width, pr, include_pad))
                    if divisor:
                        total /= F(divisor)
                    dx[n, c, q // width, q % width] = total
    return avg_pool_backward


def max_pool2d(x, kernel_size, stride, padding, dilation, *, out):
    y, indices = views(out)      # indices None: the maxima alone
    n, c, oh, ow = y.shape
    keep = indices is not None
    max_pool_kernel(x.dtype)[image_grid(oh * ow, c, n), THREADS](
        x, y, indices if keep else _no_indices(), *kernel_size, *stride, padding[0],
        padding[2], *dilation, keep)
    if keep:
        written_indices(indices, x.shape[2] * x.shape[3])   # its backward need not check them
    return out


@functools.cache
def _no_indices():
    """A one-element stand-in for the indices a kernel is told not to write."""
    return cuda.device_array((1, 1, 1, 1), np.int32)


def max_pool2d_backward(dy, indices, input_shape, *, out):
    n, c, h, w = input_shape
    dx = view(out)
    fill(dx, 0)   # in parallel, coalesced: faster than each plane's thread zeroing its own
    planes = n * c
    max_pool_backward_kernel(dy.dtype)[blocks_for(planes), THREADS](
        dy.reshape((planes, dy.size // planes)), indices.reshape((planes, dy.size // planes)),
        dx.reshape((planes, h * w)))
    return out


def _divisor(shape, y_shape, kernel_size, stride, padding, count_include_pad, divisor_override):
    """The divisor every window shares, or 0 where each has its own."""
    if divisor_override is not None:
        return divisor_override
    (kh, kw), (sh, sw), (top, bottom, left, right) = kernel_size, stride, padding
    if count_include_pad and ((y_shape[2] - 1) * sh + kh <= shape[2] + top + bottom
                              and (y_shape[3] - 1) * sw + kw <= shape[3] + left + right):
        return kh * kw
    return 0


def avg_pool2d(x, kernel_size, stride, padding, count_include_pad, divisor_override, *, out):
    y = view(out)
    n, c, oh, ow = y.shape
    divisor = _divisor(x.shape, y.shape, kernel_size, stride, padding, count_include_pad,
                       divisor_override)
    avg_pool_kernel(x.dtype)[image_grid(oh * ow, c, n), THREADS](
        x, y, *kernel_size, *stride, *padding[::2], *padding[1::2], bool(count_include_pad),
        divisor)
    return out


def avg_pool2d_backward(dy, input_shape, kernel_size, stride, padding, count_include_pad,
                        divisor_override, *, out):
    n, c, h, w = input_shape
    dx = view(out)
    divisor = _divisor(input_shape, dy.shape, kernel_size, stride, padding, count_include_pad,
                       divisor_override)
    avg_pool_backward_kernel(dy.dtype)[image_grid(h * w, c, n), THREADS](
        dy, dx, *kernel_size, *stride, *padding[::2], *padding[1::2], bool(count_include_pad),
        divisor)
    return out


# ---------------------------------------------------------------- adaptive pooling


@kernel(lambda f: (f[:, :, :, ::1], f[:, :, :, ::1]))
def adaptive_avg_kernel(F):
    def adaptive_avg(x, y):
        """The mean of output (oh, ow)'s window."""
        images, channels, height, width = x.shape
        oh_size, ow_size = y.shape[2], y.shape[3]
        for n in range(cuda.blockIdx.z, images, cuda.gridDim.z):
            for c in range(cuda.blockIdx.y, channels, cuda.gridDim.y):
                for q in range(cuda.grid(1), oh_size * ow_size, cuda.gridsize(1)):
                    oh, ow = q // ow_size, q % ow_size
                    h0, h1 = window_start(oh, height, oh_size), window_end(oh, height, oh_size)
                    w0, w1 = window_start(ow, width, ow_size), window_end(ow, width, ow_size)
                    total = F(0)
                    for h in range(h0, h1):
                        for w in range(w0, w1):
                            total += x[n, c, h, w]
                    y[n, c, oh, ow] = total / F((h1 - h0) * (w1 - w0))
    return adaptive_avg


@kernel(lambda f: (f[:, ::1], f[::1]))
def global_avg_kernel(F):
    def global_avg(x, y):
        """y[plane] = the mean of row plane of x: a block per plane, its threads reading
        the plane together (coalesced), their sums added in shared memory."""
        buf = cuda.shared.array(THREADS, F)
        size = x.shape[1]
        for plane in range(cuda.blockIdx.x, x.shape[0], cuda.gridDim.x):
            total = F(0)
            for i in range(cuda.threadIdx.x, size, THREADS):
                total += x[plane, i]
            total = block_sum(buf, total)
            if cuda.threadIdx.x == 0:
                y[plane] = total / F(size)
    return global_avg


@kernel(lambda f: (f[:, :, :, ::1], f[:, :, :, ::1]))
def adaptive_avg_backward_kernel(F):
    def adaptive_avg_backward(dy, dx):
        """dx[h, w] = the sum of dy over its window's size, over the windows that contain
        (h, w): rows [floor(h * OH / H), ceil((h + 1) * OH / H)) of dy, the columns alike."""
        images, channels, height, width = dx.shape
        oh_size, ow_size = dy.shape[2], dy.shape[3]
        for n in range(cuda.blockIdx.z, images, cuda.gridDim.z):
            for c in range(cuda.blockIdx.y, channels, cuda.gridDim.y):
                for q in range(cuda.grid(1), height * width, cuda.gridsize(1)):
                    h, w = q // width, q % width
                    total = F(0)
                    for oh in range(window_start(h, oh_size, height),
                                    window_end(h, oh_size, height)):
                        rows = (window_end(oh, height, oh_size)
                                - window_start(oh, height, oh_size))
                        for ow in range(window_start(w, ow_size, width),
                                        window_end(w, ow_size, width)):
                            cols = (window_end(ow, width, ow_size)
                                    - window_start(ow, width, ow_size))
                            total += dy[n, c, oh, ow] / F(rows * cols)
                    dx[n, c, h, w] = total
    return adaptive_avg_backward


@kernel(lambda f: (f[:, :, :, ::1], f[:, :, :, ::1], i32[:, :, :, ::1]))
def adaptive_max_kernel(F):
    def adaptive_max(x, y, indices):
        """The window's maximum and where it is (h * W + w), by max_pool's rule."""
        images, channels, height, width = x.shape
        oh_size, ow_size = y.shape[2], y.shape[3]
        for n in range(cuda.blockIdx.z, images, cuda.gridDim.z):
            for c in range(cuda.blockIdx.y, channels, cuda.gridDim.y):
                for q in range(cuda.grid(1), oh_size * ow_size, cuda.gridsize(1)):
                    oh, ow = q // ow_size, q % ow_size
                    h0, h1 = window_start(oh, height, oh_size), window_end(oh, height, oh_size)
                    w0, w1 = window_start(ow, width, ow_size), window_end(ow, width, ow_size)
                    best = x[n, c, h0, w0]
                    where = h0 * width + w0
                    for h in range(h0, h1):
                        for w in range(w0, w1):
                            v = x[n, c, h, w]
                            if v > best or (v != v and best == best):
                                best, where = v, h * width + w
                    y[n, c, oh, ow] = best
                    indices[n, c, oh, ow] = where
    return adaptive_max


def adaptive_avg_pool2d(x, *, out):
    y = view(out)
    n, c, oh, ow = y.shape
    if oh == ow == 1 and n * c:   # global pooling: a reduction per plane
        planes, size = n * c, x.shape[2] * x.shape[3]
        global_avg_kernel(x.dtype)[min(planes, MAX_BLOCKS * 16), THREADS](
            x.reshape((planes, size)), y.reshape((planes,)))
    else:
        adaptive_avg_kernel(x.dtype)[image_grid(oh * ow, c, n), THREADS](x, y)
    return out


def adaptive_avg_pool2d_backward(dy, input_shape, *, out):
    n, c, h, w = input_shape
    dx = view(out)
    adaptive_avg_backward_kernel(dy.dtype)[image_grid(h * w, c, n), THREADS](dy, dx)
    return out


def adaptive_max_pool2d(x, *, out):
    y, indices = views(out)
    n, c, oh, ow = y.shape
    adaptive_max_kernel(x.dtype)[image_grid(oh * ow, c, n), THREADS](x, y, indices)
    written_indices(indices, x.shape[2] * x.shape[3])
    return out
