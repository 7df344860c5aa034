"""The plain NumPy baseline: what a NumPy user would write for each op.

Idiomatic, not deliberately slow: convolution is im2col through a strided view
(``sliding_window_view``, copied once into columns) followed by a batched BLAS
matmul; pools and upsampling are reshapes of the image into its windows (by other
than integer factors, and bilinear: a product with a resampling matrix per axis). It
covers the shapes the suite runs (pools: stride = kernel, sizes divisible by
it); anything else raises NotImplementedError and the runner marks it n/a.
"""

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from fastcnn.backends import coordinates, output_size


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


def _conv_dx(weight, dy, x_shape, stride, padding):
    """dx: the columns' gradient (one gemm per image), folded back onto the pixels."""
    k = weight.shape[0]
    dcols = np.matmul(weight.reshape(k, -1).T, dy.reshape(dy.shape[0], k, -1))  # (N, C*kh*kw, L)
    return col2im(dcols, x_shape, weight.shape[2:], stride, padding)


def _conv_dweight(cols, dy, weight_shape):
    """(dweight, dbias) from the forward's columns."""
    dy2 = dy.reshape(dy.shape[0], weight_shape[0], -1)                     # (N, K, L)
    dweight = np.einsum("nkl,ncl->kc", dy2, cols, optimize=True).reshape(weight_shape)
    return dweight, dy.sum(axis=(0, 2, 3))


def conv2d_train(x, weight, bias, dy, stride, padding):
    """Forward, then the three gradients from the forward's columns (as a layer caches them)."""
    y, cols = _conv_forward(x, weight, bias, stride, padding)
    dweight, dbias = _conv_dweight(cols, dy, weight.shape)
    return y, _conv_dx(weight, dy, x.shape, stride, padding), dweight, dbias


def conv2d_dx(x, weight, dy, stride, padding):
    return _conv_dx(weight, dy, x.shape, stride, padding)


def conv2d_dweight(x, weight, dy, stride, padding):
    return _conv_dweight(im2col(x, weight.shape[2:], stride, padding), dy, weight.shape)


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


def _adaptive_windows(size, out):
    return [(i * size // out, -(-(i + 1) * size // out)) for i in range(out)]


def adaptive_avg_pool2d(x, output_size):
    """A mean per window: a reshape when the output size divides the input's (global
    pooling too), else one slice per window."""
    (oh, ow), (n, c, h, w) = output_size, x.shape
    if h % oh == 0 and w % ow == 0:
        return avg_pool2d(x, (h // oh, w // ow))
    y = np.empty((n, c, oh, ow), x.dtype)
    for o, (h0, h1) in enumerate(_adaptive_windows(h, oh)):
        for q, (w0, w1) in enumerate(_adaptive_windows(w, ow)):
            y[:, :, o, q] = x[:, :, h0:h1, w0:w1].mean(axis=(2, 3))
    return y


def adaptive_avg_pool2d_train(x, dy, output_size):
    (oh, ow), (h, w) = output_size, x.shape[2:]
    if h % oh == 0 and w % ow == 0:
        return avg_pool2d_train(x, dy, (h // oh, w // ow))
    dx = np.zeros(x.shape, dy.dtype)
    for o, (h0, h1) in enumerate(_adaptive_windows(h, oh)):
        for q, (w0, w1) in enumerate(_adaptive_windows(w, ow)):
            share = dy[:, :, o, q] / dy.dtype.type((h1 - h0) * (w1 - w0))
            dx[:, :, h0:h1, w0:w1] += share[:, :, None, None]
    return adaptive_avg_pool2d(x, output_size), dx


def _ceil_max_pool(x, kernel_size, stride):
    """(y, the arg-max's flat index h * W + w) of a ceil_mode max pool (no padding): the
    image padded at its end with -inf, so that the last windows fit, cut into windows."""
    (n, c, h, w), (kh, kw), (sh, sw) = x.shape, kernel_size, stride
    oh, ow = output_size(h, kh, sh, ceil_mode=True), output_size(w, kw, sw, ceil_mode=True)
    ends = ((0, 0), (0, 0), (0, (oh - 1) * sh + kh - h), (0, (ow - 1) * sw + kw - w))
    windows = sliding_window_view(np.pad(x, ends, constant_values=-np.inf), (kh, kw),
                                  axis=(2, 3))[:, :, ::sh, ::sw][:, :, :oh, :ow]
    flat = windows.reshape(n, c, oh, ow, kh * kw)
    tap = flat.argmax(axis=-1)
    y = np.take_along_axis(flat, tap[..., None], axis=-1)[..., 0]
    rows, cols = np.arange(oh)[:, None] * sh + tap // kw, np.arange(ow) * sw + tap % kw
    return y, rows * w + cols


def max_pool2d_ceil(x, kernel_size, stride):
    y, where = _ceil_max_pool(x, kernel_size, stride)
    return y, where.astype(np.int32)


def max_pool2d_ceil_train(x, dy, kernel_size, stride):
    y, where = _ceil_max_pool(x, kernel_size, stride)
    (n, c, h, w), planes = x.shape, np.arange(x.shape[0] * x.shape[1])
    at = (planes[:, None] * (h * w) + where.reshape(n * c, -1)).ravel()
    dx = np.bincount(at, weights=dy.ravel(), minlength=x.size).astype(dy.dtype)
    return y, dx.reshape(x.shape)


def upsample_nearest2d(x, scale_factor):
    (sh, sw), (n, c, h, w) = scale_factor, x.shape
    wide = np.broadcast_to(x[:, :, :, None, :, None], (n, c, h, sh, w, sw))
    return wide.reshape(n, c, h * sh, w * sw)


def upsample_nearest2d_train(x, dy, scale_factor):
    (sh, sw), (n, c, h, w) = scale_factor, x.shape
    dx = dy.reshape(n, c, h, sh, w, sw).sum(axis=(3, 5))
    return upsample_nearest2d(x, scale_factor), dx


def _resampling(out, size, factor, mode, align_corners, dtype):
    """The (out x size) matrix that resamples one axis, from PyTorch's coordinate rules."""
    m, rows = np.zeros((out, size), dtype), np.arange(out)
    if mode == "nearest":
        scale = coordinates.upsample_scale(size, out, factor, None, dtype)
        m[rows, coordinates.nearest_source(out, size, scale)] = 1
        return m
    scale = coordinates.upsample_scale(size, out, factor, align_corners, dtype)
    i0, i1, w0, w1 = coordinates.linear_source(out, size, scale, align_corners, dtype)
    np.add.at(m, (rows, i0), w0)
    np.add.at(m, (rows, i1), w1)
    return m


def _resamplings(x, scale_factor, mode, align_corners):
    return [_resampling(int(n * f), n, f, mode, align_corners, x.dtype)
            for n, f in zip(x.shape[2:], scale_factor)]


def _product(a, x, b):
    """a x b^T for every plane of x, as two plain gemms: along W on every row, then along
    H with H moved to the front (NumPy's matmul of one matrix by a stack is far slower)."""
    n, c, h, w = x.shape
    t = x.reshape(-1, w) @ b.T                                   # (N*C*H, OW)
    t = t.reshape(n * c, h, -1).transpose(1, 0, 2).reshape(h, -1)  # (H, N*C*OW)
    y = (a @ t).reshape(a.shape[0], n * c, -1).transpose(1, 0, 2)  # (N*C, OH, OW)
    return np.ascontiguousarray(y).reshape(n, c, a.shape[0], -1)


def upsample(x, scale_factor, mode, align_corners=False):
    """Any factor, either mode: y = A x B^T, one resampling matrix per axis."""
    a, b = _resamplings(x, scale_factor, mode, align_corners)
    return _product(a, x, b)


def upsample_train(x, dy, scale_factor, mode, align_corners=False):
    """upsample and its gradient dx = A^T dy B."""
    a, b = _resamplings(x, scale_factor, mode, align_corners)
    return _product(a, x, b), _product(a.T, dy, b.T)


def matmul(a, b):
    return a @ b


def linear(x, weight, bias):
    return x @ weight.T + bias


def linear_train(x, weight, bias, dy):
    return linear(x, weight, bias), dy @ weight, dy.T @ x, dy.sum(axis=0)
