"""Softmax and log-softmax over one axis of an array of any rank, and their backward."""

import numpy as np

from ._common import _into


def _shifted(x, dim):
    """x minus its maximum along dim: exp of it never overflows."""
    return x - x.max(axis=dim, keepdims=True)


def softmax(x, dim, *, out):
    if x.size == 0:
        return out
    e = np.exp(_shifted(x, dim))
    return _into(out, e / e.sum(axis=dim, keepdims=True))


def softmax_backward(dy, y, dim, *, out):
    """The Jacobian of softmax, diag(y) - y y^T, applied to dy."""
    return _into(out, y * (dy - (dy * y).sum(axis=dim, keepdims=True)))


def log_softmax(x, dim, *, out):
    if x.size == 0:
        return out
    s = _shifted(x, dim)
    return _into(out, s - np.log(np.exp(s).sum(axis=dim, keepdims=True)))


def log_softmax_backward(dy, y, dim, *, out):
    """d log_softmax_i / dx_j = [i == j] - softmax_j, and softmax = exp(y)."""
    return _into(out, dy - np.exp(y) * dy.sum(axis=dim, keepdims=True))
