"""Max and average pooling, from the definition: a max or a mean over the kernel's taps;
adaptive pooling, a max or a mean over each window, one window at a time."""

import numpy as np

from ._common import _into, _into_all, _pad, _tap, _unpad


def _reach(size, out, kernel, stride, padding, dilation):
    """The padding (lo, hi) one axis needs for every window to lie inside: ceil_mode's last
    window may reach past the given hi padding (its taps there see nothing)."""
    lo, hi = padding
    end = (out - 1) * stride + dilation * (kernel - 1) + 1   # in padded coordinates
    return lo, max(hi, end - size - lo)


def _padded(x, out_hw, kernel_size, stride, padding, dilation, value):
    """x padded with value so that every window lies inside, and the padding used."""
    rows = _reach(x.shape[2], out_hw[0], kernel_size[0], stride[0], padding[:2], dilation[0])
    cols = _reach(x.shape[3], out_hw[1], kernel_size[1], stride[1], padding[2:], dilation[1])
    return _pad(x, rows + cols, value), rows + cols


def max_pool2d(x, kernel_size, stride, padding, dilation, *, out):
    """y = max over each window (padding never wins); indices = the arg-max as h * W + w.

    Taps are visited in row-major order and a later tap wins only if strictly
    larger, so ties go to the first; a NaN wins over any number and the first
    NaN stays, so NaN propagates.
    """
    _, _, h, w = x.shape
    oh, ow = out[0].shape[2:]
    xpad, reach = _padded(x, (oh, ow), kernel_size, stride, padding, dilation, -np.inf)
    # Where each padded pixel sits in the unpadded plane, as h * W + w.
    rows = np.arange(xpad.shape[2]) - reach[0]
    cols = np.arange(xpad.shape[3]) - reach[2]
    where = (rows[:, None] * w + cols[None, :]).astype(np.int32)
    valid = (rows[:, None] >= 0) & (rows[:, None] < h) & (cols[None, :] >= 0) & (cols[None, :] < w)
    y = np.full(x.shape[:2] + (oh, ow), -np.inf, x.dtype)
    idx = np.full(x.shape[:2] + (oh, ow), -1, np.int32)
    for i in range(kernel_size[0]):
        for j in range(kernel_size[1]):
            v = _tap(xpad, i, j, (oh, ow), stride, dilation)
            tap_where = _tap(where, i, j, (oh, ow), stride, dilation)
            tap_valid = _tap(valid, i, j, (oh, ow), stride, dilation)
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


def _window_sizes(size, out, kernel, stride, padding, count_include_pad):
    """How many pixels each window along one axis counts (PyTorch's rule): those inside
    the padded input, or only those inside the input."""
    lo, hi = padding
    start = np.arange(out) * stride - lo
    end = np.minimum(start + kernel, size + hi)
    if not count_include_pad:
        start, end = np.maximum(start, 0), np.minimum(end, size)
    return end - start


def _divisors(shape, y_hw, kernel_size, stride, padding, count_include_pad, divisor_override,
              dtype):
    """Each window's divisor: divisor_override, or the product of its sizes along H and W."""
    if divisor_override is not None:
        return dtype.type(divisor_override)
    rows = _window_sizes(shape[2], y_hw[0], kernel_size[0], stride[0], padding[:2],
                         count_include_pad)
    cols = _window_sizes(shape[3], y_hw[1], kernel_size[1], stride[1], padding[2:],
                         count_include_pad)
    return (rows[:, None] * cols[None, :]).astype(dtype)


def avg_pool2d(x, kernel_size, stride, padding, count_include_pad, divisor_override, *, out):
    """y = the sum over each window (padding adds zeros) over its divisor (_divisors)."""
    oh, ow = out.shape[2:]
    xpad, _ = _padded(x, (oh, ow), kernel_size, stride, padding, (1, 1), 0.0)
    y = np.zeros(x.shape[:2] + (oh, ow), x.dtype)
    for i in range(kernel_size[0]):
        for j in range(kernel_size[1]):
            y += _tap(xpad, i, j, (oh, ow), stride, (1, 1))
    return _into(out, y / _divisors(x.shape, (oh, ow), kernel_size, stride, padding,
                                    count_include_pad, divisor_override, x.dtype))


def avg_pool2d_backward(dy, input_shape, kernel_size, stride, padding, count_include_pad,
                        divisor_override, *, out):
    """The error, over each window's divisor, is upsampled over the window."""
    oh, ow = dy.shape[2:]
    zeros = np.zeros(input_shape, dy.dtype)
    dxpad, reach = _padded(zeros, (oh, ow), kernel_size, stride, padding, (1, 1), 0.0)
    share = dy / _divisors(input_shape, (oh, ow), kernel_size, stride, padding,
                           count_include_pad, divisor_override, dy.dtype)
    for i in range(kernel_size[0]):
        for j in range(kernel_size[1]):
            _tap(dxpad, i, j, (oh, ow), stride, (1, 1))[...] += share
    return _into(out, _unpad(dxpad, reach))


# ---------------------------------------------------------------- adaptive pooling


def _adaptive_windows(size, out):
    """PyTorch's adaptive windows along one axis: [floor(i * size / out), ceil((i + 1) *
    size / out)) for each output i."""
    return [(i * size // out, -(-(i + 1) * size // out)) for i in range(out)]


def _each_window(shape, out_hw):
    for o, (h0, h1) in enumerate(_adaptive_windows(shape[2], out_hw[0])):
        for q, (w0, w1) in enumerate(_adaptive_windows(shape[3], out_hw[1])):
            yield o, q, slice(h0, h1), slice(w0, w1)


def adaptive_avg_pool2d(x, *, out):
    y = np.empty(out.shape, x.dtype)
    for o, q, rows, cols in _each_window(x.shape, out.shape[2:]):
        count = (rows.stop - rows.start) * (cols.stop - cols.start)
        y[:, :, o, q] = x[:, :, rows, cols].sum(axis=(2, 3)) / x.dtype.type(count)
    return _into(out, y)


def adaptive_avg_pool2d_backward(dy, input_shape, *, out):
    dx = np.zeros(input_shape, dy.dtype)
    for o, q, rows, cols in _each_window(input_shape, dy.shape[2:]):
        count = (rows.stop - rows.start) * (cols.stop - cols.start)
        dx[:, :, rows, cols] += (dy[:, :, o, q] / dy.dtype.type(count))[:, :, None, None]
    return _into(out, dx)


def adaptive_max_pool2d(x, *, out):
    """The window's maximum and where it is (h * W + w): the first of equal maxima, and
    the first NaN if there is one (np.argmax's rule, which is max_pool2d's)."""
    n, c, h, w = x.shape
    y, idx = np.empty(out[0].shape, x.dtype), np.empty(out[1].shape, np.int32)
    for o, q, rows, cols in _each_window(x.shape, out[0].shape[2:]):
        width = cols.stop - cols.start
        window = x[:, :, rows, cols].reshape(n, c, (rows.stop - rows.start) * width)
        at = window.argmax(axis=2)
        idx[:, :, o, q] = (rows.start + at // width) * w + cols.start + at % width
        y[:, :, o, q] = np.take_along_axis(window, at[..., None], 2)[..., 0]
    return _into_all(out, (y, idx))
