"""im2col / col2im and convolution, from the definition: a sum over the kernel's taps."""

import numpy as np

from .. import output_size
from ._common import _into, _into_all, _pad, _tap, _unpad


# ---------------------------------------------------------------- im2col / col2im


def im2col(x, kernel_size, stride, padding, dilation, *, out):
    """cols[n, (c, i, j), (oh, ow)] = xpad[n, c, oh*s + i*d, ow*s + j*d]."""
    n, c, h, w = x.shape
    kh, kw = kernel_size
    oh = output_size(h, kh, stride[0], padding[:2], dilation[0])
    ow = output_size(w, kw, stride[1], padding[2:], dilation[1])
    xpad = _pad(x, padding)
    cols = np.empty((n, c, kh, kw, oh, ow), x.dtype)
    for i in range(kh):
        for j in range(kw):
            cols[:, :, i, j] = _tap(xpad, i, j, (oh, ow), stride, dilation)
    return _into(out, cols.reshape(n, c * kh * kw, oh * ow))


def col2im(cols, input_shape, kernel_size, stride, padding, dilation, *, out):
    """The adjoint of im2col: every column entry is added back to the pixel it came from."""
    n, c, h, w = input_shape
    kh, kw = kernel_size
    oh = output_size(h, kh, stride[0], padding[:2], dilation[0])
    ow = output_size(w, kw, stride[1], padding[2:], dilation[1])
    cols = cols.reshape(n, c, kh, kw, oh, ow)
    xpad = _pad(np.zeros(input_shape, cols.dtype), padding)
    for i in range(kh):
        for j in range(kw):
            _tap(xpad, i, j, (oh, ow), stride, dilation)[...] += cols[:, :, i, j]
    return _into(out, _unpad(xpad, padding))


# ---------------------------------------------------------------- convolution


def conv2d(x, weight, bias, stride, padding, dilation, *, out):
    """y[n, k, oh, ow] = b[k] + sum_{c,i,j} w[k, c, i, j] * xpad[n, c, oh*s + i*d, ow*s + j*d]."""
    n, k, oh, ow = out.shape
    kh, kw = weight.shape[2:]
    xpad = _pad(x, padding)
    y = np.zeros((n, k, oh, ow), x.dtype)
    for i in range(kh):
        for j in range(kw):
            y += np.einsum("nchw,kc->nkhw", _tap(xpad, i, j, (oh, ow), stride, dilation),
                           weight[:, :, i, j])
    if bias is not None:
        y += bias[None, :, None, None]
    return _into(out, y)


def conv2d_backward(dy, x, weight, stride, padding, dilation, need_dx, *, out):
    """Gradients of conv2d: each tap's contribution to y, differentiated separately."""
    _, _, kh, kw = weight.shape
    oh, ow = dy.shape[2:]
    xpad = _pad(x, padding)
    dxpad = np.zeros_like(xpad) if need_dx else None
    dweight = np.empty_like(weight)
    need_dweight = out[1] is not None    # None: not asked for (a frozen layer's)
    for i in range(kh):
        for j in range(kw):
            if need_dweight:
                tap = _tap(xpad, i, j, (oh, ow), stride, dilation)
                dweight[:, :, i, j] = np.einsum("nkhw,nchw->kc", dy, tap)
            if need_dx:
                _tap(dxpad, i, j, (oh, ow), stride, dilation)[...] += np.einsum(
                    "nkhw,kc->nchw", dy, weight[:, :, i, j])
    dx = _unpad(dxpad, padding) if need_dx else None
    return _into_all(out, (dx, dweight, dy.sum(axis=(0, 2, 3))))
