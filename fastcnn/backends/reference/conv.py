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
# Grouped: the channels split into `groups` equal runs, and output group g sees input
# group g only. Arrays are viewed with the group as an axis of its own: x as
# (N, G, C/G, H, W), weight as (G, K/G, C/G, kh, kw).


def _grouped(a, groups):
    """a (N, C, ...) viewed as (N, G, C/G, ...)."""
    return a.reshape(a.shape[0], groups, a.shape[1] // groups, *a.shape[2:])


def _weight_groups(weight, groups):
    """A weight (K, ...) viewed as (G, K/G, ...)."""
    return weight.reshape(groups, weight.shape[0] // groups, *weight.shape[1:])


def conv2d(x, weight, bias, stride, padding, dilation, groups, *, out):
    """y[n, g, k, oh, ow] = b[g, k] + sum_{c,i,j} w[g, k, c, i, j] * xpad[n, g, c, oh*s + i*d,
    ow*s + j*d], where g is the group, k and c channels within it."""
    n, k, oh, ow = out.shape
    kh, kw = weight.shape[2:]
    xpad = _grouped(_pad(x, padding), groups)
    w = _weight_groups(weight, groups)
    y = np.zeros((n, groups, k // groups, oh, ow), x.dtype)
    for i in range(kh):
        for j in range(kw):
            y += np.einsum("ngchw,gkc->ngkhw", _tap(xpad, i, j, (oh, ow), stride, dilation),
                           w[..., i, j])
    y = y.reshape(n, k, oh, ow)
    if bias is not None:
        y += bias[None, :, None, None]
    return _into(out, y)


def conv2d_backward(dy, x, weight, stride, padding, dilation, groups, need_dx, *, out):
    """Gradients of conv2d: each tap's contribution to y, differentiated separately."""
    k, _, kh, kw = weight.shape
    oh, ow = dy.shape[2:]
    xpad = _grouped(_pad(x, padding), groups)
    dyg = _grouped(dy, groups)
    w = _weight_groups(weight, groups)
    dxpad = np.zeros_like(xpad) if need_dx else None
    dweight = np.empty_like(w)
    need_dweight = out[1] is not None    # None: not asked for (a frozen layer's)
    for i in range(kh):
        for j in range(kw):
            if need_dweight:
                tap = _tap(xpad, i, j, (oh, ow), stride, dilation)
                dweight[..., i, j] = np.einsum("ngkhw,ngchw->gkc", dyg, tap)
            if need_dx:
                _tap(dxpad, i, j, (oh, ow), stride, dilation)[...] += np.einsum(
                    "ngkhw,gkc->ngchw", dyg, w[..., i, j])
    dx = _unpad(dxpad.reshape(x.shape[0], -1, *xpad.shape[3:]), padding) if need_dx else None
    return _into_all(out, (dx, dweight.reshape(weight.shape), dy.sum(axis=(0, 2, 3))))


# ---------------------------------------------------------------- transposed convolution
# Every input pixel scatters its kernel-weighted value onto the output: input (h, w) with
# tap (i, j) lands on output (h*s - pt + i*d, w*s - pl + j*d). The weight is
# (C, K/G, kh, kw): input channel first. Work happens on the uncropped output (the
# full extent the taps reach, extended by output_padding), then the padding is cut off.


def _full(out_hw, x_hw, kernel, stride, padding, dilation):
    """The uncropped output's extent: what the taps reach, or more (output_padding)."""
    return tuple(max((x_hw[a] - 1) * stride[a] + dilation[a] * (kernel[a] - 1) + 1,
                     padding[2 * a] + out_hw[a]) for a in range(2))


def _crop(full, out_hw, padding):
    top, left = padding[0], padding[2]
    return full[..., top: top + out_hw[0], left: left + out_hw[1]]


def conv_transpose2d(x, weight, bias, stride, padding, groups, dilation, *, out):
    """ypad[n, g, k, h*s + i*d, w*s + j*d] += sum_c x[n, g, c, h, w] * w[g, c, k, i, j];
    y = ypad cropped by the padding, + b."""
    n, k, oh, ow = out.shape
    h, w = x.shape[2:]
    kh, kw = weight.shape[2:]
    xg, wg = _grouped(x, groups), _weight_groups(weight, groups)
    full = np.zeros((n, groups, k // groups) + _full((oh, ow), (h, w), (kh, kw), stride,
                                                     padding, dilation), x.dtype)
    for i in range(kh):
        for j in range(kw):
            _tap(full, i, j, (h, w), stride, dilation)[...] += np.einsum(
                "ngchw,gck->ngkhw", xg, wg[..., i, j])
    y = _crop(full, (oh, ow), padding).reshape(n, k, oh, ow)
    if bias is not None:
        y = y + bias[None, :, None, None]
    return _into(out, y)


def conv_transpose2d_backward(dy, x, weight, stride, padding, groups, dilation, need_dx, *,
                              out):
    """Gradients of conv_transpose2d: dy placed back into the uncropped output, then each
    tap's values read where that tap wrote."""
    n, k, oh, ow = dy.shape
    h, w = x.shape[2:]
    kh, kw = weight.shape[2:]
    xg, wg = _grouped(x, groups), _weight_groups(weight, groups)
    full = np.zeros((n, groups, k // groups) + _full((oh, ow), (h, w), (kh, kw), stride,
                                                     padding, dilation), dy.dtype)
    _crop(full, (oh, ow), padding)[...] = _grouped(dy, groups)
    dx = np.zeros_like(xg) if need_dx else None
    dweight = np.empty_like(wg)
    for i in range(kh):
        for j in range(kw):
            tap = _tap(full, i, j, (h, w), stride, dilation)
            dweight[..., i, j] = np.einsum("ngkhw,ngchw->gck", tap, xg)
            if need_dx:
                dx += np.einsum("ngkhw,gck->ngchw", tap, wg[..., i, j])
    dx = dx.reshape(x.shape) if need_dx else None
    return _into_all(out, (dx, dweight.reshape(weight.shape), dy.sum(axis=(0, 2, 3))))
