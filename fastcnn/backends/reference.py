"""The reference backend: every op written straight from its definition.

This is the oracle the compiled and CUDA backends are tested against, so it is
written to be read, not to be fast: convolution and pooling are sums over the
kernel's taps (one strided slice per tap), never im2col; matmul is the sum of
products. Arguments arrive already checked and normalised by
``fastcnn.functional`` (pairs are ``(h, w)`` tuples, arrays are contiguous and
share one floating dtype); results have the input's dtype.

Every op that returns arrays takes ``out=``: an array (or a tuple matching the
returned tuple, ``None`` entries allocated) to write the result into.
"""

import numpy as np

from . import conv_output_size
from ._numpy import (DEVICE, asarray, check_indices, check_labels, empty,  # noqa: F401
                     is_array, to_host, zeros)

# ---------------------------------------------------------------- helpers


def _tap(xpad, i, j, out_hw, stride, dilation):
    """The input values tap (i, j) of the kernel sees at every output position."""
    (oh, ow), (sh, sw), (dh, dw) = out_hw, stride, dilation
    return xpad[..., i * dh: i * dh + sh * (oh - 1) + 1: sh,
                j * dw: j * dw + sw * (ow - 1) + 1: sw]


def _pad(x, padding, value=0.0):
    ph, pw = padding
    return np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=value)


def _unpad(xpad, padding):
    ph, pw = padding
    return xpad[:, :, ph: xpad.shape[2] - ph, pw: xpad.shape[3] - pw]


def _into(out, value):
    """Return value, written into out when the caller gave one."""
    if out is None or value is None:
        return value
    out[...] = value
    return out


def _into_all(out, values):
    if out is None:
        return values
    return tuple(_into(o, v) for o, v in zip(out, values))


# ---------------------------------------------------------------- im2col / col2im


def im2col(x, kernel_size, stride, padding, dilation, *, out=None):
    """cols[n, (c, i, j), (oh, ow)] = xpad[n, c, oh*s + i*d, ow*s + j*d]."""
    n, c, h, w = x.shape
    kh, kw = kernel_size
    oh = conv_output_size(h, kh, stride[0], padding[0], dilation[0])
    ow = conv_output_size(w, kw, stride[1], padding[1], dilation[1])
    xpad = _pad(x, padding)
    cols = np.empty((n, c, kh, kw, oh, ow), x.dtype)
    for i in range(kh):
        for j in range(kw):
            cols[:, :, i, j] = _tap(xpad, i, j, (oh, ow), stride, dilation)
    return _into(out, cols.reshape(n, c * kh * kw, oh * ow))


def col2im(cols, input_shape, kernel_size, stride, padding, dilation, *, out=None):
    """The adjoint of im2col: every column entry is added back to the pixel it came from."""
    n, c, h, w = input_shape
    kh, kw = kernel_size
    oh = conv_output_size(h, kh, stride[0], padding[0], dilation[0])
    ow = conv_output_size(w, kw, stride[1], padding[1], dilation[1])
    cols = cols.reshape(n, c, kh, kw, oh, ow)
    xpad = np.zeros((n, c, h + 2 * padding[0], w + 2 * padding[1]), cols.dtype)
    for i in range(kh):
        for j in range(kw):
            _tap(xpad, i, j, (oh, ow), stride, dilation)[...] += cols[:, :, i, j]
    return _into(out, _unpad(xpad, padding))


# ---------------------------------------------------------------- convolution


def conv2d(x, weight, bias, stride, padding, dilation, *, out=None):
    """y[n, k, oh, ow] = b[k] + sum_{c,i,j} w[k, c, i, j] * xpad[n, c, oh*s + i*d, ow*s + j*d]."""
    n, _, h, w = x.shape
    k, _, kh, kw = weight.shape
    oh = conv_output_size(h, kh, stride[0], padding[0], dilation[0])
    ow = conv_output_size(w, kw, stride[1], padding[1], dilation[1])
    xpad = _pad(x, padding)
    y = np.zeros((n, k, oh, ow), x.dtype)
    for i in range(kh):
        for j in range(kw):
            y += np.einsum("nchw,kc->nkhw", _tap(xpad, i, j, (oh, ow), stride, dilation),
                           weight[:, :, i, j])
    if bias is not None:
        y += bias[None, :, None, None]
    return _into(out, y)


def conv2d_backward(dy, x, weight, stride, padding, dilation, need_dx, *, out=None):
    """Gradients of conv2d: each tap's contribution to y, differentiated separately."""
    _, _, kh, kw = weight.shape
    oh, ow = dy.shape[2:]
    xpad = _pad(x, padding)
    dxpad = np.zeros_like(xpad) if need_dx else None
    dweight = np.empty_like(weight)
    for i in range(kh):
        for j in range(kw):
            tap = _tap(xpad, i, j, (oh, ow), stride, dilation)
            dweight[:, :, i, j] = np.einsum("nkhw,nchw->kc", dy, tap)
            if need_dx:
                _tap(dxpad, i, j, (oh, ow), stride, dilation)[...] += np.einsum(
                    "nkhw,kc->nchw", dy, weight[:, :, i, j])
    dx = _unpad(dxpad, padding) if need_dx else None
    return _into_all(out, (dx, dweight, dy.sum(axis=(0, 2, 3))))


# ---------------------------------------------------------------- pooling


def _pool_output_hw(x_shape, kernel_size, stride, padding):
    return (conv_output_size(x_shape[2], kernel_size[0], stride[0], padding[0], 1),
            conv_output_size(x_shape[3], kernel_size[1], stride[1], padding[1], 1))


def max_pool2d(x, kernel_size, stride, padding, *, out=None):
    """y = max over each window (padding never wins); indices = the arg-max as h * W + w.

    Taps are visited in row-major order and a later tap wins only if strictly
    larger, so ties go to the first; a NaN wins over any number and the first
    NaN stays, so NaN propagates.
    """
    _, _, h, w = x.shape
    oh, ow = _pool_output_hw(x.shape, kernel_size, stride, padding)
    xpad = _pad(x, padding, -np.inf)
    # Where each padded pixel sits in the unpadded plane, as h * W + w.
    rows = np.arange(h + 2 * padding[0]) - padding[0]
    cols = np.arange(w + 2 * padding[1]) - padding[1]
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


def max_pool2d_backward(dy, indices, input_shape, *, out=None):
    """The error is sent back (upsampled) to the arg-max pixel of each window."""
    n, c, h, w = input_shape
    dx = np.zeros((n * c, h * w), dy.dtype)
    planes = np.repeat(np.arange(n * c), dy.shape[2] * dy.shape[3])
    np.add.at(dx, (planes, indices.reshape(-1)), dy.reshape(-1))
    return _into(out, dx.reshape(input_shape))


def avg_pool2d(x, kernel_size, stride, padding, *, out=None):
    """y = mean over each window; padded zeros count in the divisor (PyTorch's default)."""
    oh, ow = _pool_output_hw(x.shape, kernel_size, stride, padding)
    xpad = _pad(x, padding)
    y = np.zeros(x.shape[:2] + (oh, ow), x.dtype)
    for i in range(kernel_size[0]):
        for j in range(kernel_size[1]):
            y += _tap(xpad, i, j, (oh, ow), stride, (1, 1))
    return _into(out, y / x.dtype.type(kernel_size[0] * kernel_size[1]))


def avg_pool2d_backward(dy, input_shape, kernel_size, stride, padding, *, out=None):
    """The error is upsampled over each window and divided by the window size."""
    n, c, h, w = input_shape
    oh, ow = dy.shape[2:]
    dxpad = np.zeros((n, c, h + 2 * padding[0], w + 2 * padding[1]), dy.dtype)
    share = dy / dy.dtype.type(kernel_size[0] * kernel_size[1])
    for i in range(kernel_size[0]):
        for j in range(kernel_size[1]):
            _tap(dxpad, i, j, (oh, ow), stride, (1, 1))[...] += share
    return _into(out, _unpad(dxpad, padding))


# ---------------------------------------------------------------- upsampling


def upsample_nearest2d(x, scale_factor, *, out=None):
    """y[n, c, h, w] = x[n, c, h // sh, w // sw]."""
    sh, sw = scale_factor
    return _into(out, x.repeat(sh, axis=2).repeat(sw, axis=3))


def upsample_nearest2d_backward(dy, scale_factor, *, out=None):
    """Each input pixel collects the error of the sh x sw block it was copied to."""
    sh, sw = scale_factor
    n, c, h, w = dy.shape
    return _into(out, dy.reshape(n, c, h // sh, sh, w // sw, sw).sum(axis=(3, 5)))


# ---------------------------------------------------------------- dense algebra


def matmul(a, b, *, out=None):
    """c[i, j] = sum_k a[i, k] * b[k, j]."""
    return _into(out, (a[:, :, None] * b[None, :, :]).sum(axis=1))


def linear(x, weight, bias, *, out=None):
    """y = x weight^T + bias, weight shaped (out_features, in_features)."""
    y = matmul(x, weight.T)
    if bias is not None:
        y += bias
    return _into(out, y)


def linear_backward(dy, x, weight, need_dx, *, out=None):
    """(dx, dweight, dbias) = (dy weight, dy^T x, sum of dy over the batch); dx None unless
    need_dx."""
    dx = matmul(dy, weight) if need_dx else None
    return _into_all(out, (dx, matmul(dy.T, x), dy.sum(axis=0)))


# ---------------------------------------------------------------- activations
# Backward ops take what the forward returned (y) where that is enough.


def relu(x, *, out=None):
    return _into(out, np.maximum(x, 0))


def relu_backward(dy, y, *, out=None):
    return _into(out, np.where(y > 0, dy, 0))


def leaky_relu(x, negative_slope, *, out=None):
    return _into(out, np.where(x > 0, x, x * negative_slope))


def leaky_relu_backward(dy, x, negative_slope, *, out=None):
    return _into(out, np.where(x > 0, dy, dy * negative_slope))


def elu(x, alpha, *, out=None):
    return _into(out, np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0))))


def elu_backward(dy, y, alpha, *, out=None):
    """y > 0 exactly where x > 0; below, dy/dx = alpha * exp(x) = y + alpha."""
    return _into(out, np.where(y > 0, dy, dy * (y + alpha)))


def sigmoid(x, *, out=None):
    return _into(out, 0.5 * (1 + np.tanh(0.5 * x)))  # = 1 / (1 + exp(-x)), never overflows


def sigmoid_backward(dy, y, *, out=None):
    return _into(out, dy * y * (1 - y))


def tanh(x, *, out=None):
    return _into(out, np.tanh(x))


def tanh_backward(dy, y, *, out=None):
    return _into(out, dy * (1 - y * y))


def softmax(x, *, out=None):
    """Softmax over axis 1 of a (N, C) array, shifted by the row maximum."""
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return _into(out, e / e.sum(axis=1, keepdims=True))


def softmax_backward(dy, y, *, out=None):
    return _into(out, y * (dy - (dy * y).sum(axis=1, keepdims=True)))


def maxout(x, pool_size, *, out=None):
    """Max over consecutive groups of pool_size features along axis 1; indices in 0..pool_size-1."""
    groups = x.reshape(x.shape[0], x.shape[1] // pool_size, pool_size, *x.shape[2:])
    idx = groups.argmax(axis=2).astype(np.int32)  # first maximum; a NaN counts as the maximum
    y = np.take_along_axis(groups, idx[:, :, None], axis=2)[:, :, 0]
    return _into_all(out, (y, idx))


def maxout_backward(dy, indices, pool_size, *, out=None):
    n, g = dy.shape[:2]
    dx = np.zeros((n, g, pool_size) + dy.shape[2:], dy.dtype)
    np.put_along_axis(dx, indices[:, :, None], dy[:, :, None], axis=2)
    return _into(out, dx.reshape((n, g * pool_size) + dy.shape[2:]))


# ---------------------------------------------------------------- dropout
# The mask comes from a counter-based hash of (seed, element index), so every
# backend draws the very same mask for the same seed and the tests can compare.


def _mix32(h):
    """lowbias32 (C. Wellons): a bijective uint32 hash with good avalanche."""
    with np.errstate(over="ignore"):   # the products wrap modulo 2**32 by design
        h = h ^ (h >> np.uint32(16))
        h = h * np.uint32(0x7FEB352D)
        h = h ^ (h >> np.uint32(15))
        h = h * np.uint32(0x846CA68B)
        return h ^ (h >> np.uint32(16))


def dropout_threshold(p):
    """An element is kept iff the top 24 bits of its hash are >= this threshold."""
    return int(p * (1 << 24))


def dropout(x, p, seed, *, out=None):
    """y = x * mask, mask = 1/(1-p) where kept, else 0 (inverted dropout); returns (y, mask)."""
    key = _mix32(np.uint32(seed))
    bits = _mix32(np.arange(x.size, dtype=np.uint32) ^ key) >> np.uint32(8)
    keep = (bits >= dropout_threshold(p)).reshape(x.shape)
    mask = np.where(keep, x.dtype.type(1 / (1 - p)), x.dtype.type(0))
    return _into_all(out, (x * mask, mask))


def dropout_backward(dy, mask, *, out=None):
    return _into(out, dy * mask)


# ---------------------------------------------------------------- batch normalisation


def _channel_view(v, ndim):
    """A per-channel vector shaped to broadcast over (N, C) or (N, C, H, W)."""
    return v.reshape((1, -1) + (1,) * (ndim - 2))


def batch_norm(x, gamma, beta, running_mean, running_var, momentum, eps, training, *, out=None):
    """y = (x - mean) / sqrt(var + eps) * gamma + beta, statistics per channel (axis 1).

    Training uses the batch's statistics and moves the running ones towards
    them in place (the running variance is the unbiased one, as PyTorch);
    evaluation uses the running ones. Returns (y, mean, invstd).
    """
    axes = (0,) + tuple(range(2, x.ndim))
    if training:
        mean = x.mean(axis=axes)
        var = x.var(axis=axes)
        if running_mean is not None:
            count = x.size // x.shape[1]
            running_mean[...] = (1 - momentum) * running_mean + momentum * mean
            running_var[...] = (1 - momentum) * running_var + momentum * var * (count / (count - 1))
    else:
        mean, var = running_mean.copy(), running_var
    invstd = 1 / np.sqrt(var + eps)
    xhat = (x - _channel_view(mean, x.ndim)) * _channel_view(invstd, x.ndim)
    y = xhat * _channel_view(gamma, x.ndim) + _channel_view(beta, x.ndim)
    return _into_all(out, (y, mean.astype(x.dtype), invstd.astype(x.dtype)))


def batch_norm_backward(dy, x, gamma, mean, invstd, training, *, out=None):
    """(dx, dgamma, dbeta); in training the batch statistics depend on x too."""
    axes = (0,) + tuple(range(2, x.ndim))
    count = x.size // x.shape[1]
    xhat = (x - _channel_view(mean, x.ndim)) * _channel_view(invstd, x.ndim)
    dbeta = dy.sum(axis=axes)
    dgamma = (dy * xhat).sum(axis=axes)
    scale = _channel_view(gamma * invstd, x.ndim)
    if training:
        dx = scale * (dy - _channel_view(dbeta / count, x.ndim)
                      - xhat * _channel_view(dgamma / count, x.ndim))
    else:
        dx = scale * dy
    return _into_all(out, (dx, dgamma, dbeta))


# ---------------------------------------------------------------- losses
# Each loss returns the mean over the batch as a Python float (PyTorch's
# reduction='mean'); its backward returns the gradient of that mean.


def softmax_cross_entropy(logits, labels, *, out=None):
    """loss = mean_n(logsumexp(z_n) - z_n[label_n]); returns (loss, probs)."""
    z = logits - logits.max(axis=1, keepdims=True)
    lse = np.log(np.exp(z).sum(axis=1, keepdims=True))
    picked = np.take_along_axis(z, labels[:, None].astype(np.intp), axis=1)
    loss = float((lse - picked).mean())
    return loss, _into(out, np.exp(z - lse))


def softmax_cross_entropy_backward(probs, labels, *, out=None):
    d = probs.copy()
    d[np.arange(len(labels)), labels] -= 1
    return _into(out, d / d.dtype.type(len(labels)))


def bce_with_logits(logits, targets):
    """mean(max(z, 0) - z t + log(1 + exp(-|z|))), binary cross-entropy of sigmoid(z)."""
    z, t = logits, targets
    return float((np.maximum(z, 0) - z * t + np.log1p(np.exp(-np.abs(z)))).mean())


def bce_with_logits_backward(logits, targets, *, out=None):
    return _into(out, (sigmoid(logits) - targets) / logits.dtype.type(logits.size))


def bce(probs, targets):
    """mean(-(t log p + (1 - t) log(1 - p))), each log clamped at -100 as PyTorch."""
    p, t = probs, targets
    log_p = np.maximum(np.log(p), -100)
    log_1mp = np.maximum(np.log1p(-p), -100)
    return float((-(t * log_p + (1 - t) * log_1mp)).mean())


def bce_backward(probs, targets, *, out=None):
    p, t = probs, targets
    d = (p - t) / np.maximum(p * (1 - p), p.dtype.type(1e-12))
    return _into(out, d / p.dtype.type(p.size))


def mse(pred, target):
    return float(((pred - target) ** 2).mean())


def mse_backward(pred, target, *, out=None):
    return _into(out, 2 * (pred - target) / pred.dtype.type(pred.size))


def count_correct(scores, labels, *, into=None):
    """How many rows of scores have their maximum at the label (added to into[0], if given)."""
    hits = int((scores.argmax(axis=1) == labels).sum())
    if into is None:
        return hits
    into[0] += hits
    return into


# ---------------------------------------------------------------- optimizer steps
# Each updates param (and its state arrays) in place, PyTorch's formulas;
# weight_decay is the L2 term added to the gradient.


def sgd_step(param, grad, velocity, lr, momentum, nesterov, weight_decay):
    g = grad + weight_decay * param if weight_decay else grad
    if momentum:
        velocity *= momentum
        velocity += g
        g = g + momentum * velocity if nesterov else velocity
    param -= lr * g


def adam_step(param, grad, m, v, step, lr, beta1, beta2, eps, weight_decay):
    g = grad + weight_decay * param if weight_decay else grad
    m *= beta1
    m += (1 - beta1) * g
    v *= beta2
    v += (1 - beta2) * g * g
    bias1, bias2 = 1 - beta1 ** step, 1 - beta2 ** step
    param -= (lr / bias1) * m / (np.sqrt(v) / np.sqrt(bias2) + eps)


def adagrad_step(param, grad, sum_sq, step, lr, lr_decay, eps, weight_decay):
    g = grad + weight_decay * param if weight_decay else grad
    sum_sq += g * g
    param -= (lr / (1 + (step - 1) * lr_decay)) * g / (np.sqrt(sum_sq) + eps)


def rmsprop_step(param, grad, square_avg, buf, lr, alpha, eps, weight_decay, momentum):
    g = grad + weight_decay * param if weight_decay else grad
    square_avg *= alpha
    square_avg += (1 - alpha) * g * g
    step = g / (np.sqrt(square_avg) + eps)
    if momentum:
        buf *= momentum
        buf += step
        step = buf
    param -= lr * step


def adadelta_step(param, grad, square_avg, acc_delta, lr, rho, eps, weight_decay):
    g = grad + weight_decay * param if weight_decay else grad
    square_avg *= rho
    square_avg += (1 - rho) * g * g
    delta = np.sqrt(acc_delta + eps) / np.sqrt(square_avg + eps) * g
    acc_delta *= rho
    acc_delta += (1 - rho) * delta * delta
    param -= lr * delta
