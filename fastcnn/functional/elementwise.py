"""Elementwise ops and their kin: the activations, maxout, softmax / log_softmax over any
dim, dropout; forward and backward."""

import numpy as np

from .._args import arg as _arg
from .._args import integer as _int
from ._checks import _backend, _floats, _integers, _ndim, _out, _outs, _same_shape


# ---------------------------------------------------------------- activations


def _unary(op, backend, out, x, *args):
    be = _backend(op, backend, {"x": x})
    (x,) = _floats(op, be, x=x)
    out = _out(op, be, out, x.shape, x.dtype, reads={"x": x})
    return getattr(be, op)(x, *args, out=out)


def _unary_backward(op, backend, out, dy, y, name, *args, layout=None):
    be = _backend(op, backend, {"dy": dy, name: y})
    dy, y = _floats(op, be, **{"dy": dy, name: y})
    if layout is not None:
        _ndim(op, name, y, 2, layout)
    _same_shape(op, ("dy", name), (dy, y))
    out = _out(op, be, out, dy.shape, dy.dtype, reads={"dy": dy, name: y})
    return getattr(be, op)(dy, y, *args, out=out)


def relu(x, *, backend=None, out=None):
    """max(x, 0); out may be x itself (in place)."""
    return _unary("relu", backend, out, x)


def relu_backward(dy, y, *, backend=None, out=None):
    """dy where the forward output y > 0, else 0."""
    return _unary_backward("relu_backward", backend, out, dy, y, "y")


def leaky_relu(x, negative_slope=0.01, *, backend=None, out=None):
    slope = _arg("leaky_relu", "negative_slope", negative_slope)
    return _unary("leaky_relu", backend, out, x, slope)


def leaky_relu_backward(dy, x, negative_slope=0.01, *, backend=None, out=None):
    slope = _arg("leaky_relu_backward", "negative_slope", negative_slope)
    return _unary_backward("leaky_relu_backward", backend, out, dy, x, "x", slope)


def elu(x, alpha=1.0, *, backend=None, out=None):
    alpha = _arg("elu", "alpha", alpha)
    return _unary("elu", backend, out, x, alpha)


def elu_backward(dy, y, alpha=1.0, *, backend=None, out=None):
    alpha = _arg("elu_backward", "alpha", alpha)
    return _unary_backward("elu_backward", backend, out, dy, y, "y", alpha)


def sigmoid(x, *, backend=None, out=None):
    return _unary("sigmoid", backend, out, x)


def sigmoid_backward(dy, y, *, backend=None, out=None):
    return _unary_backward("sigmoid_backward", backend, out, dy, y, "y")


def tanh(x, *, backend=None, out=None):
    return _unary("tanh", backend, out, x)


def tanh_backward(dy, y, *, backend=None, out=None):
    return _unary_backward("tanh_backward", backend, out, dy, y, "y")


def _has_axes(op, **arrays):
    """An error for a 0-D array (asarray would quietly make it 1-D)."""
    for name, a in arrays.items():
        try:
            ndim = None if a is None else np.ndim(a)
        except (TypeError, ValueError):   # not array-like (a ragged list): _floats says so
            continue
        if ndim == 0:
            raise ValueError(f"{op}: {name} must have at least one axis, got a 0-D array")


def _dim(op, dim, x):
    """dim as an axis of x, counted from the end if negative (as PyTorch)."""
    dim = _int(op, "dim", dim, -x.ndim)
    if dim >= x.ndim:
        raise ValueError(f"{op}: dim must be in [{-x.ndim}, {x.ndim}) for x.shape="
                         f"{tuple(x.shape)}, got {dim}")
    return dim % x.ndim


def _softmax(op, backend, out, x, dim):
    be = _backend(op, backend, {"x": x})
    _has_axes(op, x=x)
    (x,) = _floats(op, be, x=x)
    dim = _dim(op, dim, x)
    return getattr(be, op)(x, dim, out=_out(op, be, out, x.shape, x.dtype, reads={"x": x}))


def _softmax_backward(op, backend, out, dy, y, dim):
    be = _backend(op, backend, {"dy": dy, "y": y})
    _has_axes(op, dy=dy, y=y)
    dy, y = _floats(op, be, dy=dy, y=y)
    _same_shape(op, ("dy", "y"), (dy, y))
    dim = _dim(op, dim, y)
    out = _out(op, be, out, dy.shape, dy.dtype, reads={"dy": dy, "y": y})
    return getattr(be, op)(dy, y, dim, out=out)


def softmax(x, dim=1, *, backend=None, out=None):
    """exp(x) / sum(exp(x)) over axis dim of x of any rank (shifted by the maximum, so
    it never overflows); dim=1 by default: the classes of (N, C) scores."""
    return _softmax("softmax", backend, out, x, dim)


def softmax_backward(dy, y, dim=1, *, backend=None, out=None):
    """dx = y * (dy - sum(dy * y)) over axis dim, from softmax's output y."""
    return _softmax_backward("softmax_backward", backend, out, dy, y, dim)


def log_softmax(x, dim=1, *, backend=None, out=None):
    """x - max - log(sum(exp(x - max))) over axis dim: the log of softmax, finite where
    softmax underflows to 0."""
    return _softmax("log_softmax", backend, out, x, dim)


def log_softmax_backward(dy, y, dim=1, *, backend=None, out=None):
    """dx = dy - exp(y) * sum(dy) over axis dim, from log_softmax's output y."""
    return _softmax_backward("log_softmax_backward", backend, out, dy, y, dim)


def maxout(x, pool_size, *, backend=None, out=None):
    """Max over consecutive groups of pool_size features (axis 1) -> (y, indices in the group)."""
    op = "maxout"
    be = _backend(op, backend, {"x": x})
    (x,) = _floats(op, be, x=x)
    k = _arg(op, "pool_size", pool_size)
    if x.ndim < 2 or x.shape[1] % k:
        raise ValueError(f"{op}: x's axis 1 must be a multiple of pool_size={k}, "
                         f"got x.shape={tuple(x.shape)}")
    y_shape = (x.shape[0], x.shape[1] // k) + tuple(x.shape[2:])
    out = _outs(op, be, out, [(y_shape, x.dtype), (y_shape, np.dtype(np.int32))],
                reads={"x": x})
    return be.maxout(x, k, out=out)


def maxout_backward(dy, indices, pool_size, *, backend=None, out=None):
    op = "maxout_backward"
    be = _backend(op, backend, {"dy": dy, "indices": indices})
    (dy,) = _floats(op, be, dy=dy)
    indices = _integers(op, be, "indices", indices)
    k = _arg(op, "pool_size", pool_size)
    _same_shape(op, ("dy", "indices"), (dy, indices))
    if dy.ndim < 2:
        raise ValueError(f"{op}: dy must be at least 2-D, got shape {tuple(dy.shape)}")
    indices = be.check_indices(op, "indices", indices, k)
    x_shape = (dy.shape[0], dy.shape[1] * k) + tuple(dy.shape[2:])
    out = _out(op, be, out, x_shape, dy.dtype, reads={"dy": dy, "indices": indices})
    return be.maxout_backward(dy, indices, k, out=out)


# ---------------------------------------------------------------- dropout


def dropout(x, p, seed, *, backend=None, out=None):
    """Inverted dropout: (x * mask, mask), mask = 1/(1-p) for kept elements else 0.

    The mask is a hash of (seed, element index), the same on every backend.
    """
    op = "dropout"
    p = _arg(op, "p", p)
    seed = _int(op, "seed", seed, 0, maximum=None) & 0xFFFFFFFF
    be = _backend(op, backend, {"x": x})
    (x,) = _floats(op, be, x=x)
    out = _outs(op, be, out, [(x.shape, x.dtype), (x.shape, x.dtype)], reads={"x": x})
    return be.dropout(x, p, seed, out=out)


def dropout_backward(dy, mask, *, backend=None, out=None):
    return _unary_backward("dropout_backward", backend, out, dy, mask, "mask")
