"""Activations, maxout and dropout, elementwise from their formulas."""

import numpy as np

from .. import dropout_hash
from ._common import _into, _into_all


# Backward ops take what the forward returned (y) where that is enough.


def relu(x, *, out):
    return _into(out, np.maximum(x, 0))


def relu_backward(dy, y, *, out):
    return _into(out, np.where(y > 0, dy, 0))


def leaky_relu(x, negative_slope, *, out):
    return _into(out, np.where(x > 0, x, x * negative_slope))


def leaky_relu_backward(dy, x, negative_slope, *, out):
    return _into(out, np.where(x > 0, dy, dy * negative_slope))


def elu(x, alpha, *, out):
    return _into(out, np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0))))


def elu_backward(dy, y, alpha, *, out):
    """y > 0 exactly where x > 0; below, dy/dx = alpha * exp(x) = y + alpha."""
    return _into(out, np.where(y > 0, dy, dy * (y + alpha)))


def sigmoid(x, *, out):
    return _into(out, 0.5 * (1 + np.tanh(0.5 * x)))  # = 1 / (1 + exp(-x)), never overflows


def sigmoid_backward(dy, y, *, out):
    return _into(out, dy * y * (1 - y))


def tanh(x, *, out):
    return _into(out, np.tanh(x))


def tanh_backward(dy, y, *, out):
    return _into(out, dy * (1 - y * y))


def maxout(x, pool_size, *, out):
    """Max over consecutive groups of pool_size features along axis 1; indices in 0..pool_size-1."""
    groups = x.reshape(x.shape[0], x.shape[1] // pool_size, pool_size, *x.shape[2:])
    idx = groups.argmax(axis=2).astype(np.int32)  # first maximum; a NaN counts as the maximum
    y = np.take_along_axis(groups, idx[:, :, None], axis=2)[:, :, 0]
    return _into_all(out, (y, idx))


def maxout_backward(dy, indices, pool_size, *, out):
    n, g = dy.shape[:2]
    dx = np.zeros((n, g, pool_size) + dy.shape[2:], dy.dtype)
    np.put_along_axis(dx, indices[:, :, None], dy[:, :, None], axis=2)
    return _into(out, dx.reshape((n, g * pool_size) + dy.shape[2:]))


# ---------------------------------------------------------------- dropout
# The mask comes from a counter-based hash of (seed, element index), so every
# backend draws the very same mask for the same seed and the tests can compare.


def dropout(x, p, seed, *, out):
    """y = x * mask, mask = 1/(1-p) where kept, else 0 (inverted dropout); returns (y, mask)."""
    keep = dropout_hash.kept(seed, x.size, p).reshape(x.shape)
    mask = np.where(keep, x.dtype.type(1 / (1 - p)), x.dtype.type(0))
    return _into_all(out, (x * mask, mask))


def dropout_backward(dy, mask, *, out):
    return _into(out, dy * mask)
