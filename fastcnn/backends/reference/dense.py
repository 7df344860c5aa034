"""Dense algebra: matmul as a sum of products, linear layers on top of it."""

import numpy as np

from ._common import _into, _into_all


def _product(a, b):
    """sum_k a[i, k] * b[k, j]: the definition, one broadcast product summed."""
    return (a[:, :, None] * b[None, :, :]).sum(axis=1)


def _batched(a, b):
    """c[..., i, j] = sum_k a[..., i, k] * b[..., k, j], the batch axes broadcast."""
    return (a[..., :, :, None] * b[..., None, :, :]).sum(axis=-2)


def matmul(a, b, *, out):
    """c[..., i, j] = sum_k a[..., i, k] * b[..., k, j]: a (..., M, K) and b (..., K, N)
    have the same number of axes; their batch axes (all but the last two) broadcast."""
    return _into(out, _batched(a, b))


def _summed_to(g, shape):
    """g summed over the axes along which an operand of shape was broadcast."""
    axes = tuple(i for i, (s, t) in enumerate(zip(shape, g.shape)) if s == 1 and t != 1)
    return g.sum(axis=axes, keepdims=True)


def matmul_backward(dc, a, b, *, out):
    """(da, db) = (dc b^T, a^T dc), each summed over its operand's broadcast axes."""
    da = _batched(dc, np.swapaxes(b, -1, -2))
    db = _batched(np.swapaxes(a, -1, -2), dc)
    return _into_all(out, (_summed_to(da, a.shape), _summed_to(db, b.shape)))


def linear(x, weight, bias, *, out):
    """y = x weight^T + bias, weight shaped (out_features, in_features)."""
    y = _product(x, weight.T)
    if bias is not None:
        y += bias
    return _into(out, y)


def linear_backward(dy, x, weight, need_dx, *, out):
    """(dx, dweight, dbias) = (dy weight, dy^T x, sum of dy over the batch); dx None unless
    need_dx."""
    dx = _product(dy, weight) if need_dx else None
    return _into_all(out, (dx, _product(dy.T, x), dy.sum(axis=0)))
