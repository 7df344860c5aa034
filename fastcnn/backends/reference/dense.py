"""Dense algebra: matmul as a sum of products, linear layers on top of it."""

from ._common import _into, _into_all


def matmul(a, b, *, out=None):
    """c[i, j] = sum_k a[i, k] * b[k, j]."""
    return _into(out, (a[:, :, None] * b[None, :, :]).sum(axis=1))


def linear(x, weight, bias, *, out=None):
    """y = x weight^T + bias, weight shaped (out_features, in_features)."""
    y = matmul(x, weight.T)
    if bias is not None:
        y += bias
    return _into(out, y)


def linear_backward(dy, x, weight, *, out=None):
    """(dx, dweight, dbias) = (dy weight, dy^T x, sum of dy over the batch)."""
    return _into_all(out, (matmul(dy, weight), matmul(dy.T, x), dy.sum(axis=0)))
