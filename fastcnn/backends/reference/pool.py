"""Max and average pooling, from the definition: a max or a mean over the kernel's taps."""

import numpy as np

from ._common import _into, _into_all, _pad, _tap, _unpad


def max_pool2d(x, kernel_size, stride, padding, *, out):
    """y = max over each window (padding never wins); indices = the arg-max as h * W + w.

    Taps are visited in row-major order and a later tap wins only if strictly
    larger, so ties go to the first; a NaN wins over any number and the first
    NaN stays, so NaN propagates.
    """
    _, _, h, w = x.shape
    oh, ow = out[0].shape[2:]
    xpad = _pad(x, padding, -np.inf)
    # Where each padded pixel sits in the unpadded plane, as h * W + w.
    rows = np.arange(xpad.shape[2]) - padding[0]
    cols = np.arange(xpad.shape[3]) - padding[2]
    where = (rows[:, None] * w + cols[None, :]).astype(np.int32)
    valid = (rows[:, None] >= 0) & (rows[:, None] < h) & (cols[None, :] >= 0) & (cols[None, :] < w)
    y = np.full(x.shape[:2] + (oh, ow), -np.inf, x.dtype)
    idx = np.full(x.shape[:2] + (oh, ow), -1, np.int32)
    for i in range(kernel_size[0]):
        for j in range(kernel_size[1]):
            v = _tap(xpad, i, j, (oh, ow), stride, (1, 1))
            tap_where = _tap(where, i, j, (oh, ow), stride, (1, 1))
            tap_valid = _tap(valid, i, j, (oh, ow), stride, (1, 1))
            better = tap_valid & ((v > y) | (np.isnan(v) & ~np.isnan(y)) | (idx < 0))
            y = np.where(better, v, y)
            idx = np.where(better, tap_where, idx)
    return _into_all(out, (y, idx))


def max_pool2d_backward(dy, indices, input_shape, *, out):
    """The error is sent back (upsampled) to the arg-max pixel of each window."""
    n, c, h, w = input_shape
    dx = np.zeros((n * c, h * w), dy.dtype)
    planes = np.repeat(np.arange(n * c), dy.shape[2] * dy.shape[3])
    np.add.at(dx, (planes, indices.reshape(-1)), dy.reshape(-1))
    return _into(out, dx.reshape(input_shape))


def avg_pool2d(x, kernel_size, stride, padding, *, out):
    """y = mean over each window; padded zeros count in the divisor (PyTorch's default)."""
    oh, ow = out.shape[2:]
    xpad = _pad(x, padding)
    y = np.zeros(x.shape[:2] + (oh, ow), x.dtype)
    for i in range(kernel_size[0]):
        for j in range(kernel_size[1]):
            y += _tap(xpad, i, j, (oh, ow), stride, (1, 1))
    return _into(out, y / x.dtype.type(kernel_size[0] * kernel_size[1]))


def avg_pool2d_backward(dy, input_shape, kernel_size, stride, padding, *, out):
    """The error is upsampled over each window and divided by the window size."""
    n, c, h, w = input_shape
    oh, ow = dy.shape[2:]
    dxpad = _pad(np.zeros(input_shape, dy.dtype), padding)
    share = dy / dy.dtype.type(kernel_size[0] * kernel_size[1])
    for i in range(kernel_size[0]):
        for j in range(kernel_size[1]):
            _tap(dxpad, i, j, (oh, ow), stride, (1, 1))[...] += share
    return _into(out, _unpad(dxpad, padding))
