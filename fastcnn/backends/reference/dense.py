"""Dense algebra: matmul as a sum of products, linear layers on top of it."""

from ._common import _into, _into_all


def _product(a, b):
    """sum_k a[i, k] * b[k, j]: the definition, one broadcast product summed."""
    return (a[:, :, None] * b[None, :, :]).sum(axis=1)


def matmul(a, b, *, out):
    """c[i, j] = sum_k a[i, k] * b[k, j]."""
    return _into(out, _product(a, b))


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
