"""The plain NumPy baseline: what a NumPy user would write for each op.

Idiomatic, not deliberately slow: convolution is im2col through a strided view
(``sliding_window_view``, copied once into columns) followed by a batched BLAS
matmul; pools and upsampling are reshapes of the image into its windows. It
covers the shapes the suite runs (pools: stride = kernel, sizes divisible by
it); anything else raises NotImplementedError and the runner marks it n/a.
"""

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from fastcnn.backends import output_size


def _pad(x, padding):
    ph, pw = padding
    if ph == pw == 0:
        return x
    return np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))


def _windows(x, kernel_size, stride, padding):
    """A view (N, C, OH, OW, kh, kw) of every window of the padded image; no copy."""
    view = sliding_window_view(_pad(x, padding), kernel_size, axis=(2, 3))
    return view[:, :, ::stride[0], ::stride[1]]


def im2col(x, kernel_size, stride, padding):
    n, c, oh, ow, kh, kw = (win := _windows(x, kernel_size, stride, padding)).shape
    return win.transpose(0, 1, 4, 5, 2, 3).reshape(n, c * kh * kw, oh * ow)


def col2im(cols, input_shape, kernel_size, stride, padding):
    """Add every column entry back to its pixel: one strided slice per kernel tap."""
    n, c, h, w = input_shape
    (kh, kw), (sh, sw), (ph, pw) = kernel_size, stride, padding
    oh, ow = output_size(h, kh, sh, (ph, ph)), output_size(w, kw, sw, (pw, pw))
    cols = cols.reshape(n, c, kh, kw, oh, ow)
    xpad = np.zeros((n, c, h + 2 * ph, w + 2 * pw), cols.dtype)
    for i in range(kh):
        for j in range(kw):
            xpad[:, :, i: i + sh * oh: sh, j: j + sw * ow: sw] += cols[:, :, i, j]
    return xpad[:, :, ph: ph + h, pw: pw + w]


def _conv_forward(x, weight, bias, stride, padding):
    k, c, kh, kw = weight.shape
    cols = im2col(x, (kh, kw), stride, padding)          # (N, C*kh*kw, OH*OW)
    y = np.matmul(weight.reshape(k, -1), cols)           # one gemm per image
    oh = output_size(x.shape[2], kh, stride[0], (padding[0], padding[0]))
    y = y.reshape(x.shape[0], k, oh, -1)
    y += bias[:, None, None]
    return y, cols


def conv2d(x, weight, bias, stride, padding):
    return _conv_forward(x, weight, bias, stride, padding)[0]


def conv2d_train(x, weight, bias, dy, stride, padding):
    """Forward, then the three gradients from the forward's columns (as a layer caches them)."""
    y, cols = _conv_forward(x, weight, bias, stride, padding)
    k = weight.shape[0]
    dy2 = dy.reshape(dy.shape[0], k, -1)                                   # (N, K, L)
    dweight = np.einsum("nkl,ncl->kc", dy2, cols, optimize=True).reshape(weight.shape)
    dcols = np.matmul(weight.reshape(k, -1).T, dy2)                        # (N, C*kh*kw, L)
    dx = col2im(dcols, x.shape, weight.shape[2:], stride, padding)
    return y, dx, dweight, dy.sum(axis=(0, 2, 3))


def _blocks(x, kernel_size):
    """(N, C, OH, kh, OW, kw): the image cut into non-overlapping windows (a view)."""
    n, c, h, w = x.shape
    kh, kw = kernel_size
    if h % kh or w % kw:
        raise NotImplementedError("the NumPy pools need sizes divisible by the kernel")
    return x.reshape(n, c, h // kh, kh, w // kw, kw)


def _max_pool(x, kernel_size):
    n, c, oh, kh, ow, kw = (blocks := _blocks(x, kernel_size)).shape
    flat = blocks.transpose(0, 1, 2, 4, 3, 5).reshape(n, c, oh, ow, kh * kw)
    tap = flat.argmax(axis=-1)
    return flat.max(axis=-1), tap


def max_pool2d(x, kernel_size):
    """(y, indices) with indices as fastcnn and PyTorch give them: h * W + w in the plane."""
    y, tap = _max_pool(x, kernel_size)
    (kh, kw), (oh, ow), w = kernel_size, y.shape[2:], x.shape[3]
    rows = np.arange(oh)[:, None] * kh + tap // kw
    cols = np.arange(ow) * kw + tap % kw
    return y, (rows * w + cols).astype(np.int32)


def max_pool2d_train(x, dy, kernel_size):
    y, tap = _max_pool(x, kernel_size)
    n, c, oh, ow = y.shape
    kh, kw = kernel_size
    dflat = np.zeros((n, c, oh, ow, kh * kw), dy.dtype)
    np.put_along_axis(dflat, tap[..., None], dy[..., None], axis=-1)
    dx = dflat.reshape(n, c, oh, ow, kh, kw).transpose(0, 1, 2, 4, 3, 5).reshape(x.shape)
    return y, dx


def avg_pool2d(x, kernel_size):
    return _blocks(x, kernel_size).mean(axis=(3, 5))


def avg_pool2d_train(x, dy, kernel_size):
    (kh, kw), (n, c, oh, ow) = kernel_size, dy.shape
    share = dy / dy.dtype.type(kh * kw)
    dx = np.broadcast_to(share[:, :, :, None, :, None], (n, c, oh, kh, ow, kw))
    return avg_pool2d(x, kernel_size), dx.reshape(x.shape)


def upsample_nearest2d(x, scale_factor):
    (sh, sw), (n, c, h, w) = scale_factor, x.shape
    wide = np.broadcast_to(x[:, :, :, None, :, None], (n, c, h, sh, w, sw))
    return wide.reshape(n, c, h * sh, w * sw)


def upsample_nearest2d_train(x, dy, scale_factor):
    (sh, sw), (n, c, h, w) = scale_factor, x.shape
    dx = dy.reshape(n, c, h, sh, w, sw).sum(axis=(3, 5))
    return upsample_nearest2d(x, scale_factor), dx


def matmul(a, b):
    return a @ b


def linear(x, weight, bias):
    return x @ weight.T + bias


def linear_train(x, weight, bias, dy):
    return linear(x, weight, bias), dy @ weight, dy.T @ x, dy.sum(axis=0)
