"""Dense algebra: matmul (batched, broadcast) and the linear layer, forward and backward."""

import math
import numpy as np

from .. import _args
from ._checks import _backend, _floats, _ndim, _nonempty_batch, _out, _outs
from .elementwise import _has_axes


# ---------------------------------------------------------------- dense algebra


def _matmul_args(op, a, b):
    """NumPy's matmul rules: (a as (..., M, K), b as (..., K, N), both with the output's
    number of batch axes, the shape the backend fills, the shape returned). A 1-D a is
    one row and a 1-D b one column, dropped from the result; batch axes broadcast."""
    a_shape, b_shape = tuple(a.shape), tuple(b.shape)
    shapes = f"a.shape={a_shape}, b.shape={b_shape}"
    a2 = (1,) + a_shape if len(a_shape) == 1 else a_shape
    b2 = b_shape + (1,) if len(b_shape) == 1 else b_shape
    if a2[-1] != b2[-2]:
        raise ValueError(f"{op}: inner dimensions differ ({shapes})")
    try:
        batch = np.broadcast_shapes(a2[:-2], b2[:-2])
    except ValueError:
        raise ValueError(f"{op}: the batch axes (all but the last two) do not broadcast "
                         f"({shapes})") from None
    a2 = (1,) * (len(batch) + 2 - len(a2)) + a2
    b2 = (1,) * (len(batch) + 2 - len(b2)) + b2
    m, n = a2[-2], b2[-1]
    returned = batch + ((m,) if len(a_shape) > 1 else ()) + ((n,) if len(b_shape) > 1 else ())
    return a.reshape(a2), b.reshape(b2), batch + (m, n), returned


def _as_rows(a2, b2, shape):
    """A batch of a's times one b is one product of a's stacked rows: (Z*M, K) @ (K, N)."""
    a_shape, b_shape = tuple(a2.shape), tuple(b2.shape)
    if len(a_shape) > 2 and all(s == 1 for s in b_shape[:-2]) and a_shape[:-2] == shape[:-2]:
        rows = math.prod(shape[:-1])
        return (a2.reshape((rows, a_shape[-1])), b2.reshape(b_shape[-2:]), (rows, shape[-1]))
    return a2, b2, shape


def matmul(a, b, *, backend=None, out=None):
    """c = a @ b with NumPy's rules: (..., M, K) @ (..., K, N) -> (..., M, N), the batch
    axes (all but the last two) broadcast; a 1-D a is a row, a 1-D b a column (that axis
    is dropped from c)."""
    op = "matmul"
    be = _backend(op, backend, {"a": a, "b": b})
    _has_axes(op, a=a, b=b)
    a, b = _floats(op, be, a=a, b=b)
    a2, b2, shape, returned = _matmul_args(op, a, b)
    out = _out(op, be, out, returned, a.dtype, reads={"a": a, "b": b})
    a2, b2, shape = _as_rows(a2, b2, shape)
    be.matmul(a2, b2, out=out if shape == returned else out.reshape(shape))
    return out


def matmul_backward(dc, a, b, *, backend=None, out=None):
    """Gradients of matmul: (da, db) = (dc @ b^T, a^T @ dc), each summed over the batch
    axes its operand was broadcast along, in a's and b's shapes."""
    op = "matmul_backward"
    be = _backend(op, backend, {"dc": dc, "a": a, "b": b})
    _has_axes(op, a=a, b=b)
    dc, a, b = _floats(op, be, dc=dc, a=a, b=b)
    a2, b2, shape, returned = _matmul_args(op, a, b)
    # (a dot product's 0-D dc arrives 1-D: asarray gives every array an axis)
    if tuple(dc.shape) != returned and not (returned == () and dc.size == 1):
        raise ValueError(f"{op}: dc must have the product's shape {returned} (a.shape="
                         f"{tuple(a.shape)}, b.shape={tuple(b.shape)}), got {tuple(dc.shape)}")
    da, db = _outs(op, be, out, [(a.shape, a.dtype), (b.shape, a.dtype)],
                   reads={"dc": dc, "a": a, "b": b})
    a2, b2, shape = _as_rows(a2, b2, shape)
    be.matmul_backward(dc.reshape(shape), a2, b2,
                       out=(da.reshape(tuple(a2.shape)), db.reshape(tuple(b2.shape))))
    return da, db


def _linear_args(op, x, weight):
    _ndim(op, "x", x, 2, "(N, in_features)")
    _ndim(op, "weight", weight, 2, "(out_features, in_features)")
    _nonempty_batch(op, "x", x)
    if weight.shape[1] != x.shape[1]:
        raise ValueError(f"{op}: weight expects {weight.shape[1]} input features but x has "
                         f"{x.shape[1]} (x.shape={tuple(x.shape)}, "
                         f"weight.shape={tuple(weight.shape)})")


def linear(x, weight, bias=None, *, backend=None, out=None):
    """y = x @ weight.T + bias, weight shaped (out_features, in_features)."""
    op = "linear"
    be = _backend(op, backend, {"x": x, "weight": weight, "bias": bias})
    x, weight, bias = _floats(op, be, ("bias",), x=x, weight=weight, bias=bias)
    _linear_args(op, x, weight)
    if bias is not None and tuple(bias.shape) != (weight.shape[0],):
        raise ValueError(f"{op}: bias must have shape ({weight.shape[0]},) for weight.shape="
                         f"{tuple(weight.shape)}, got {tuple(bias.shape)}")
    out = _out(op, be, out, (x.shape[0], weight.shape[0]), x.dtype,
               reads={"x": x, "weight": weight, "bias": bias})
    return be.linear(x, weight, bias, out=out)


def linear_backward(dy, x, weight, need_dx=True, *, need_dweight=True, backend=None, out=None):
    """Gradients of linear: (dx or None, dweight, dbias); need_dweight=False gives
    (dx or None, None, None), dx alone computed (dy @ weight: a frozen layer's)."""
    op = "linear_backward"
    be = _backend(op, backend, {"dy": dy, "x": x, "weight": weight})
    dy, x, weight = _floats(op, be, dy=dy, x=x, weight=weight)
    _linear_args(op, x, weight)
    if tuple(dy.shape) != (x.shape[0], weight.shape[0]):
        raise ValueError(f"{op}: dy must have shape {(x.shape[0], weight.shape[0])} "
                         f"(x.shape={tuple(x.shape)}, weight.shape={tuple(weight.shape)}), "
                         f"got {tuple(dy.shape)}")
    need_dx = _args.flag(op, "need_dx", need_dx)
    wanted = _args.flag(op, "need_dweight", need_dweight)
    out = _outs(op, be, out, [(x.shape, x.dtype) if need_dx else None,
                              (weight.shape, x.dtype) if wanted else None,
                              ((weight.shape[0],), x.dtype) if wanted else None],
                reads={"dy": dy, "x": x, "weight": weight})
    if not wanted:
        return (be.matmul(dy, weight, out=out[0]) if need_dx else None), None, None
    return be.linear_backward(dy, x, weight, need_dx, out=out)
