"""Depthwise convolution (groups == in_channels, weight (C*m, 1, kh, kw)) by direct sliding
windows: a depthwise layer's GEMMs would have m rows each, one launch per channel.

Forward: one thread per output value, over its kh*kw taps. dx: one thread per input
pixel gathers from the outputs whose windows cover it (as col2im does), so nothing is
written twice. dweight: a block per (output channel, run of the batch) sums dy times
the pixel each tap saw, for every tap; the runs' partial sums are added in order after
(deterministic, no atomics).

The conv module calls these for conv2d and for conv_transpose2d (whose forward is the
dx below, with its bias). Output extents come from the arrays' shapes.
"""

import math

from numba import cuda

from ._arrays import flat, scratch
from ._jit import MAX_GRID_YZ, THREADS, boolean, i64, image_grid, kernel, target_blocks
from .reduce import block_sum, sum_splits


def applies(x_shape, w_shape, groups):
    """True for depthwise convolutions: one input channel per group, any multiplier m."""
    return groups > 1 and groups == x_shape[1] and w_shape[1] == 1


def _window_signature(f):
    return (f[:, :, :, ::1], f[:, :, :, ::1], f[::1], f[:, :, :, ::1]) + (i64,) * 6 + (boolean,)


@kernel(_window_signature)
def depthwise_kernel(F):
    def depthwise(x, weight, bias, y, sh, sw, ph, pw, dh, dw, has_bias):
        """y[n, k, oh, ow] = b[k] + sum_{i,j} w[k, 0, i, j] * x[n, k // m, oh*sh - ph + i*dh,
        ow*sw - pw + j*dw], the taps in the padding left out."""
        images, channels, height, width = x.shape
        k_size, oh_size, ow_size = y.shape[1], y.shape[2], y.shape[3]
        kh, kw = weight.shape[2], weight.shape[3]
        m = k_size // channels
        for n in range(cuda.blockIdx.z, images, cuda.gridDim.z):
            for k in range(cuda.blockIdx.y, k_size, cuda.gridDim.y):
                c = k // m
                for q in range(cuda.grid(1), oh_size * ow_size, cuda.gridsize(1)):
                    oh, ow = q // ow_size, q % ow_size
                    total = bias[k] if has_bias else F(0)
                    for i in range(kh):
                        h = oh * sh - ph + i * dh
                        if 0 <= h < height:
                            for j in range(kw):
                                w = ow * sw - pw + j * dw
                                if 0 <= w < width:
                                    total += weight[k, 0, i, j] * x[n, c, h, w]
                    y[n, k, oh, ow] = total
    return depthwise


@kernel(_window_signature)
def depthwise_input_grad_kernel(F):
    def depthwise_input_grad(dy, weight, bias, dx, sh, sw, ph, pw, dh, dw, has_bias):
        """dx[n, c, h, w] = b[c] + the sum over the m output channels of c and the taps
        (i, j) whose window covers (h, w) (output oh with oh*sh = h + ph - i*dh, likewise
        for w) of w[k, 0, i, j] * dy[n, k, oh, ow]."""
        images, channels, height, width = dx.shape
        k_size, oh_size, ow_size = dy.shape[1], dy.shape[2], dy.shape[3]
        kh, kw = weight.shape[2], weight.shape[3]
        m = k_size // channels
        for n in range(cuda.blockIdx.z, images, cuda.gridDim.z):
            for c in range(cuda.blockIdx.y, channels, cuda.gridDim.y):
                for p in range(cuda.grid(1), height * width, cuda.gridsize(1)):
                    h, w = p // width, p % width
                    total = bias[c] if has_bias else F(0)
                    for i in range(kh):
                        hs = h + ph - i * dh
                        if hs >= 0 and hs % sh == 0 and hs // sh < oh_size:
                            for j in range(kw):
                                ws = w + pw - j * dw
                                if ws >= 0 and ws % sw == 0 and ws // sw < ow_size:
                                    for k in range(c * m, c * m + m):
                                        total += weight[k, 0, i, j] * dy[n, k, hs // sh,
                                                                         ws // sw]
                    dx[n, c, h, w] = total
    return depthwise_input_grad


@kernel(lambda f: (f[:, :, :, ::1], f[:, :, :, ::1], f[:, ::1]) + (i64,) * 8)
def depthwise_weight_grad_kernel(F):
    def depthwise_weight_grad(dy, x, partials, sh, sw, ph, pw, dh, dw, kh, kw):
        """Block (k, s): for every tap (i, j), its run s of the sum over (n, oh, ow) of
        dy[n, k, oh, ow] * x[n, k // m, oh*sh - ph + i*dh, ow*sw - pw + j*dw], into
        partials[s, k*kh*kw + i*kw + j]."""
        buf = cuda.shared.array(THREADS, F)
        k, s = cuda.blockIdx.x, cuda.blockIdx.y
        images, channels, height, width = x.shape
        k_size, oh_size, ow_size = dy.shape[1], dy.shape[2], dy.shape[3]
        c = k // (k_size // channels)
        plane = oh_size * ow_size
        for tap in range(kh * kw):
            i, j = tap // kw, tap % kw
            total = F(0)
            for e in range(s * THREADS + cuda.threadIdx.x, images * plane,
                           cuda.gridDim.y * THREADS):
                n, oh, ow = e // plane, (e % plane) // ow_size, e % ow_size
                h, w = oh * sh - ph + i * dh, ow * sw - pw + j * dw
                if 0 <= h < height and 0 <= w < width:
                    total += dy[n, k, oh, ow] * x[n, c, h, w]
            total = block_sum(buf, total)
            if cuda.threadIdx.x == 0:
                partials[s, k * kh * kw + tap] = total
    return depthwise_weight_grad


def _geometry(stride, padding, dilation):
    return (*stride, padding[0], padding[2], *dilation)


def conv2d(x, weight, bias, stride, padding, dilation, y):
    """y = the depthwise convolution of x by weight (+ bias); device arrays."""
    n, k, oh, ow = y.shape
    depthwise_kernel(x.dtype)[image_grid(oh * ow, k, n), THREADS](
        x, weight, flat(weight) if bias is None else bias, y,
        *_geometry(stride, padding, dilation), bias is not None)


def input_grad(dy, weight, bias, stride, padding, dilation, dx):
    """dx of the depthwise convolution whose output gradient is dy (+ bias per channel:
    conv_transpose2d's forward)."""
    n, c, h, w = dx.shape
    depthwise_input_grad_kernel(dy.dtype)[image_grid(h * w, c, n), THREADS](
        dy, weight, flat(weight) if bias is None else bias, dx,
        *_geometry(stride, padding, dilation), bias is not None)


def weight_grad(dy, x, stride, padding, dilation, dweight):
    """dweight of the depthwise convolution of x whose output gradient is dy."""
    n, k, oh, ow = dy.shape
    kh, kw = dweight.shape[2:]
    splits = max(1, min(math.ceil(n * oh * ow / (8 * THREADS)), target_blocks() // k,
                        MAX_GRID_YZ))
    partials = (dweight.reshape((1, dweight.size)) if splits == 1
                else scratch("depthwise_partials", (splits, dweight.size), dy.dtype))
    depthwise_weight_grad_kernel(dy.dtype)[(k, splits), THREADS](
        dy, x, partials, *_geometry(stride, padding, dilation), kh, kw)
    if splits > 1:
        sum_splits(partials, flat(dweight))
