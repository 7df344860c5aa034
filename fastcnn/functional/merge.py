"""The merge family: what graph models' fan-in layers (Add, Multiply, Concat) compute, and
concat's backward."""

from ._checks import _backend, _floats, _int, _out, _outs, _same_shape


# ---------------------------------------------------------------- merging
# What graph models' fan-in layers (Add, Multiply, Concat) compute, and the sum of the
# gradients of a tensor used twice.


def _pair_of_arrays(op, backend, a, b):
    be = _backend(op, backend, {"a": a, "b": b})
    a, b = _floats(op, be, a=a, b=b)
    _same_shape(op, ("a", "b"), (a, b))
    return be, a, b


def add(a, b, *, backend=None, out=None):
    """a + b, elementwise, for two arrays of one shape."""
    be, a, b = _pair_of_arrays("add", backend, a, b)
    return be.add(a, b, out=_out("add", be, out, a.shape, a.dtype, reads={"a": a, "b": b}))


def multiply(a, b, *, backend=None, out=None):
    """a * b, elementwise, for two arrays of one shape (its backward: multiply(dy, b) and
    multiply(dy, a))."""
    be, a, b = _pair_of_arrays("multiply", backend, a, b)
    return be.multiply(a, b, out=_out("multiply", be, out, a.shape, a.dtype,
                                      reads={"a": a, "b": b}))


def concat(xs, *, backend=None, out=None):
    """The arrays xs (N, C_i, ...) joined along axis 1, the channels: (N, sum of C_i, ...).
    They must agree on every other axis."""
    op = "concat"
    if not isinstance(xs, (list, tuple)) or not xs:
        raise TypeError(f"{op}: xs must be a non-empty list of arrays, got {type(xs).__name__}")
    names = [f"xs[{i}]" for i in range(len(xs))]
    be = _backend(op, backend, dict(zip(names, xs)))
    xs = _floats(op, be, **dict(zip(names, xs)))
    first = tuple(xs[0].shape)
    if len(first) < 2:
        raise ValueError(f"{op}: xs[0] must be at least 2-D (N, C, ...), got shape {first}")
    for name, x in zip(names[1:], xs[1:]):
        shape = tuple(x.shape)
        if len(shape) != len(first) or shape[:1] + shape[2:] != first[:1] + first[2:]:
            raise ValueError(f"{op}: {name}.shape={shape} does not match xs[0].shape={first} "
                             f"on the axes other than 1 (the channels)")
    shape = first[:1] + (sum(int(x.shape[1]) for x in xs),) + first[2:]
    return be.concat(tuple(xs), out=_out(op, be, out, shape, xs[0].dtype,
                                         reads=dict(zip(names, xs))))


def concat_backward(dy, channels, *, backend=None, out=None):
    """dy (N, sum of channels, ...) cut along axis 1 into the gradients of concat's
    inputs: a tuple of arrays of channels[i] channels each."""
    op = "concat_backward"
    be = _backend(op, backend, {"dy": dy})
    (dy,) = _floats(op, be, dy=dy)
    if not isinstance(channels, (list, tuple)) or not channels:
        raise TypeError(f"{op}: channels must be a non-empty list of ints, got {channels!r}")
    channels = tuple(_int(op, "channels", c, 0) for c in channels)
    if dy.ndim < 2 or dy.shape[1] != sum(channels):
        raise ValueError(f"{op}: dy must be (N, {sum(channels)}, ...) for channels={channels}, "
                         f"got shape {tuple(dy.shape)}")
    shapes = [(tuple(dy.shape[:1]) + (c,) + tuple(dy.shape[2:]), dy.dtype) for c in channels]
    return be.concat_backward(dy, channels, out=_outs(op, be, out, shapes, reads={"dy": dy}))
