"""The pooling family: max and average pooling (ceil_mode, dilation, count_include_pad,
divisor_override), adaptive and global pooling, the 1-D pools; forward and backward."""

import numpy as np

from .. import _args
from ._checks import (
    _backend, _conv_out, _floats, _integers, _ndim, _nonempty_batch, _out, _outs, _padding,
    _same_shape, _shape, _shape4)


# ---------------------------------------------------------------- pooling
# The 1-D pools run the 2-D kernels on (N, C, 1, L) views of their (N, C, L) arrays.


def _pool_args(op, x, kernel_size, stride, padding, dilation=1, ceil_mode=False, line=False):
    """(kernel, stride, padding, dilation, y's shape) of a pool of x (an array or a _Shape;
    line: a 1-D op's (N, C, 1, L) view)."""
    _ndim(op, "x", x, 4, "(N, C, H, W)")
    _nonempty_batch(op, "x", x)
    k, s, p, d = _args.pool_window(op, kernel_size, stride, padding, dilation)
    ceil_mode = _args.flag(op, "ceil_mode", ceil_mode)
    p = _args.pool_padding(op, _padding(p, x.shape[2:], k, s, d), k)
    what = f"x.shape={_shown(x.shape, line)}"
    out = _conv_out(op, x.shape[2:], k, s, p, d, what, ceil_mode)
    _windows_see_input(op, x.shape[2:], k, s, p, d, out, what)
    return k, s, p, d, tuple(x.shape[:2]) + out


def _windows_see_input(op, size, kernel, stride, padding, dilation, out, what):
    """An error if a window holds nothing but padding. Only windows starting in the top or
    left padding can (every other one starts inside the input), when dilation steps their
    taps over the whole input (PyTorch answers -inf there, at an index outside the plane)."""
    for axis in range(2):
        lo, k, s, d = padding[2 * axis], kernel[axis], stride[axis], dilation[axis]
        for o in range(min(out[axis], -(-lo // s))):   # the windows with o * s < lo
            start = o * s - lo
            first = start % d   # its first tap inside (start < 0)
            if first > min(size[axis] - 1, start + d * (k - 1)):
                raise ValueError(
                    f"{op}: window {o} along {'HW'[axis]} (kernel {k}, dilation {d}) sees only "
                    f"padding {padding} (top, bottom, left, right); {what}")


def _rows(op, name, a):
    """A 1-D pool's (N, C, L) array as the (N, C, 1, L) view the 2-D kernels take."""
    _ndim(op, name, a, 3, "(N, C, L)")
    return a.reshape(a.shape[:2] + (1,) + tuple(a.shape[2:]))


def _viewed(out, shape, line):
    """The out array(s) as the 2-D kernels take them: a 1-D op's as (N, C, 1, L) views; a
    2-D op's as they are (the cuda backend trusts the very index arrays it wrote)."""
    if not line:
        return out
    if isinstance(out, tuple):
        return tuple(None if o is None else o.reshape(shape) for o in out)
    return out.reshape(shape)


def _shown(shape, line):
    """A shape as the caller sees it: a 1-D op's (N, C, 1, L) as (N, C, L)."""
    shape = tuple(shape)
    return shape[:2] + shape[3:] if line else shape


def _shape3(op, name, shape):
    """A 1-D op's (N, C, L), checked, as the 2-D kernels' (N, C, 1, L)."""
    shape = _shape(op, name, shape, "(N, C, L)")
    return shape[:2] + (1,) + shape[2:]


def max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, *,
               indices=True, backend=None, out=None):
    """Max over each window -> (y, indices); indices are int32 arg-max positions h * W + w
    within each input plane (stride defaults to kernel_size; padding never wins; ceil_mode
    rounds the output size up, as PyTorch). indices=False: y alone, for inference, where
    nothing goes backward (out is then y's array)."""
    return _max_pool("max_pool2d", backend, out, x, kernel_size, stride, padding, dilation,
                     ceil_mode, indices)


def max_pool1d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, *,
               indices=True, backend=None, out=None):
    """max_pool2d along L of (N, C, L) -> (y, indices in L), or y with indices=False."""
    return _max_pool("max_pool1d", backend, out, x, kernel_size, stride, padding, dilation,
                     ceil_mode, indices)


def _max_pool(op, backend, out, x, kernel_size, stride, padding, dilation, ceil_mode, indices):
    indices = _args.flag(op, "indices", indices)
    if not indices and isinstance(out, tuple):
        raise TypeError(f"{op}: with indices=False out must be one array (y's), got a tuple")
    be = _backend(op, backend, {"x": x})
    (x,) = _floats(op, be, x=x)
    line, reads = op.endswith("1d"), {"x": x}
    if line:
        x = _rows(op, "x", x)
        kernel_size, stride, padding, dilation = _args.line_window(op, kernel_size, stride,
                                                                   padding, dilation)
    k, s, p, d, y_shape = _pool_args(op, x, kernel_size, stride, padding, dilation, ceil_mode,
                                     line)
    shown = _shown(y_shape, line)
    specs = [(shown, x.dtype), (shown, np.dtype(np.int32)) if indices else None]
    out = _outs(op, be, out if indices else (out, None), specs, reads=reads)
    be.max_pool2d(x, k, s, p, d, out=_viewed(out, y_shape, line))
    return out if indices else out[0]


def max_pool2d_backward(dy, indices, input_shape, *, backend=None, out=None):
    """Send each window's error back to its arg-max pixel: dx of input_shape."""
    return _max_unpool("max_pool2d_backward", backend, out, dy, indices, input_shape)


def max_pool1d_backward(dy, indices, input_shape, *, backend=None, out=None):
    """max_pool2d_backward of (N, C, OL) errors and indices: dx of input_shape (N, C, L)."""
    return _max_unpool("max_pool1d_backward", backend, out, dy, indices, input_shape)


def _max_unpool(op, backend, out, dy, indices, input_shape):
    """The backward of every max pool, fixed or adaptive: indices say where each error goes."""
    be = _backend(op, backend, {"dy": dy, "indices": indices})
    (dy,) = _floats(op, be, dy=dy)
    indices = _integers(op, be, "indices", indices)
    _same_shape(op, ("dy", "indices"), (dy, indices))
    line = op.startswith(("max_pool1d", "adaptive_max_pool1d"))
    reads = {"dy": dy, "indices": indices}
    if line:
        dy, indices = _rows(op, "dy", dy), _rows(op, "indices", indices)
        n, c, h, w = _shape3(op, "input_shape", input_shape)
    else:
        _ndim(op, "dy", dy, 4, "(N, C, OH, OW)")
        n, c, h, w = _shape4(op, "input_shape", input_shape)
    if tuple(dy.shape[:2]) != (n, c):
        raise ValueError(f"{op}: dy.shape={_shown(dy.shape, line)} does not match "
                         f"input_shape={_shown((n, c, h, w), line)} in batch and channels")
    indices = be.check_indices(op, "indices", indices, h * w)
    out = _out(op, be, out, _shown((n, c, h, w), line), dy.dtype, reads=reads)
    be.max_pool2d_backward(dy, indices, (n, c, h, w), out=_viewed(out, (n, c, h, w), line))
    return out


def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None, *, backend=None, out=None):
    """Mean over each window. The divisor, as PyTorch's: divisor_override if given, else the
    window's size inside the padded input (padded zeros count, count_include_pad=True) or
    inside the input alone (False); only ceil_mode's last windows reach past the padding."""
    return _avg_pool("avg_pool2d", backend, out, x, kernel_size, stride, padding, ceil_mode,
                     count_include_pad, divisor_override)


def avg_pool1d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               *, backend=None, out=None):
    """avg_pool2d along L of (N, C, L) (PyTorch's avg_pool1d has no divisor_override)."""
    return _avg_pool("avg_pool1d", backend, out, x, kernel_size, stride, padding, ceil_mode,
                     count_include_pad, None)


def _avg_pool(op, backend, out, x, kernel_size, stride, padding, ceil_mode, count_include_pad,
              divisor_override):
    be = _backend(op, backend, {"x": x})
    (x,) = _floats(op, be, x=x)
    line, reads = op.endswith("1d"), {"x": x}
    if line:
        x = _rows(op, "x", x)
        kernel_size, stride, padding, _ = _args.line_window(op, kernel_size, stride, padding)
    k, s, p, _, y_shape = _pool_args(op, x, kernel_size, stride, padding, 1, ceil_mode, line)
    include, divisor = _args.divisor(op, count_include_pad, divisor_override)
    out = _out(op, be, out, _shown(y_shape, line), x.dtype, reads=reads)
    be.avg_pool2d(x, k, s, p, include, divisor, out=_viewed(out, y_shape, line))
    return out


def avg_pool2d_backward(dy, input_shape, kernel_size, stride=None, padding=0, ceil_mode=False,
                        count_include_pad=True, divisor_override=None, *, backend=None,
                        out=None):
    """Each window's error, over the forward's divisor, added to its pixels: dx of
    input_shape."""
    return _avg_unpool("avg_pool2d_backward", backend, out, dy, input_shape, kernel_size,
                       stride, padding, ceil_mode, count_include_pad, divisor_override)


def avg_pool1d_backward(dy, input_shape, kernel_size, stride=None, padding=0, ceil_mode=False,
                        count_include_pad=True, *, backend=None, out=None):
    return _avg_unpool("avg_pool1d_backward", backend, out, dy, input_shape, kernel_size,
                       stride, padding, ceil_mode, count_include_pad, None)


def _avg_unpool(op, backend, out, dy, input_shape, kernel_size, stride, padding, ceil_mode,
                count_include_pad, divisor_override):
    be = _backend(op, backend, {"dy": dy})
    (dy,) = _floats(op, be, dy=dy)
    line, reads = op.startswith("avg_pool1d"), {"dy": dy}
    if line:
        dy = _rows(op, "dy", dy)
        input_shape = _shape3(op, "input_shape", input_shape)
        kernel_size, stride, padding, _ = _args.line_window(op, kernel_size, stride, padding)
    else:
        _ndim(op, "dy", dy, 4, "(N, C, OH, OW)")
        input_shape = _shape4(op, "input_shape", input_shape)
    k, s, p, _, y_shape = _pool_args(op, _Shape(input_shape, dy.dtype), kernel_size, stride,
                                     padding, 1, ceil_mode, line)
    include, divisor = _args.divisor(op, count_include_pad, divisor_override)
    if tuple(dy.shape) != y_shape:
        raise ValueError(f"{op}: dy must have shape {_shown(y_shape, line)} for input_shape="
                         f"{_shown(input_shape, line)}, kernel_size={k}, stride={s}, "
                         f"padding={p}, ceil_mode={ceil_mode}; got {_shown(dy.shape, line)}")
    out = _out(op, be, out, _shown(input_shape, line), dy.dtype, reads=reads)
    be.avg_pool2d_backward(dy, input_shape, k, s, p, include, divisor,
                           out=_viewed(out, input_shape, line))
    return out


class _Shape:
    """Stands in for an array where only the shape is known (a backward's input_shape)."""

    def __init__(self, shape, dtype):
        self.shape, self.ndim, self.dtype = tuple(shape), len(shape), dtype


# Adaptive pooling (PyTorch's): output (i, j) pools rows floor(i * H / OH) .. ceil((i + 1)
# * H / OH) - 1 and the columns alike, so the windows tile the input, overlapping by at most
# one pixel, for any output size (larger than the input too). Output size 1: global pooling,
# which the backends compute as a plain reduction.


def _adaptive_args(op, x, output_size, line):
    """y's shape for an adaptive pool of x to output_size: an int, or a pair (for the 1-D
    ops a 1-tuple) whose None entries keep the input's size (PyTorch's)."""
    _ndim(op, "x", x, 3 if line else 4, "(N, C, L)" if line else "(N, C, H, W)")
    _nonempty_batch(op, "x", x)
    size = tuple(x.shape[2:])
    if 0 in size:
        raise ValueError(f"{op}: the input has no pixels (x.shape={tuple(x.shape)}): each "
                         f"window needs at least one")
    wanted = _args.output_size(op, output_size, len(size))
    return tuple(x.shape[:2]) + tuple(size[a] if v is None else v for a, v in enumerate(wanted))


def adaptive_avg_pool2d(x, output_size, *, backend=None, out=None):
    """Mean over each adaptive window: (N, C, H, W) -> (N, C, OH, OW)."""
    return _adaptive("adaptive_avg_pool2d", backend, out, x, output_size)


def adaptive_avg_pool1d(x, output_size, *, backend=None, out=None):
    return _adaptive("adaptive_avg_pool1d", backend, out, x, output_size)


def adaptive_max_pool2d(x, output_size, *, backend=None, out=None):
    """Max over each adaptive window -> (y, indices h * W + w, as max_pool2d's; the backward
    is max_pool2d_backward's, also as adaptive_max_pool2d_backward)."""
    return _adaptive("adaptive_max_pool2d", backend, out, x, output_size)


def adaptive_max_pool1d(x, output_size, *, backend=None, out=None):
    return _adaptive("adaptive_max_pool1d", backend, out, x, output_size)


def _adaptive(op, backend, out, x, output_size):
    be = _backend(op, backend, {"x": x})
    (x,) = _floats(op, be, x=x)
    line = op.endswith("1d")
    y_shape = _adaptive_args(op, x, output_size, line)
    x4, shape4 = (_rows(op, "x", x), y_shape[:2] + (1,) + y_shape[2:]) if line else (x, y_shape)
    if "max" in op:
        out = _outs(op, be, out, [(y_shape, x.dtype), (y_shape, np.dtype(np.int32))],
                    reads={"x": x})
        be.adaptive_max_pool2d(x4, out=_viewed(out, shape4, line))
    else:
        out = _out(op, be, out, y_shape, x.dtype, reads={"x": x})
        be.adaptive_avg_pool2d(x4, out=_viewed(out, shape4, line))
    return out


def adaptive_avg_pool2d_backward(dy, input_shape, *, backend=None, out=None):
    """Each window's error, over its size, added to its pixels: dx of input_shape (the
    output size is dy's)."""
    return _adaptive_avg_unpool("adaptive_avg_pool2d_backward", backend, out, dy, input_shape)


def adaptive_avg_pool1d_backward(dy, input_shape, *, backend=None, out=None):
    return _adaptive_avg_unpool("adaptive_avg_pool1d_backward", backend, out, dy, input_shape)


def _adaptive_avg_unpool(op, backend, out, dy, input_shape):
    be = _backend(op, backend, {"dy": dy})
    (dy,) = _floats(op, be, dy=dy)
    line, reads = op.startswith("adaptive_avg_pool1d"), {"dy": dy}
    if line:
        dy, input_shape = _rows(op, "dy", dy), _shape3(op, "input_shape", input_shape)
    else:
        _ndim(op, "dy", dy, 4, "(N, C, OH, OW)")
        input_shape = _shape4(op, "input_shape", input_shape)
    if tuple(dy.shape[:2]) != input_shape[:2] or 0 in dy.shape[2:]:
        raise ValueError(f"{op}: dy.shape={_shown(dy.shape, line)} does not match input_shape="
                         f"{_shown(input_shape, line)} in batch and channels, or is empty")
    out = _out(op, be, out, _shown(input_shape, line), dy.dtype, reads=reads)
    be.adaptive_avg_pool2d_backward(dy, input_shape, out=_viewed(out, input_shape, line))
    return out


def adaptive_max_pool2d_backward(dy, indices, input_shape, *, backend=None, out=None):
    """max_pool2d_backward: the indices say where each window's error goes."""
    return _max_unpool("adaptive_max_pool2d_backward", backend, out, dy, indices, input_shape)


def adaptive_max_pool1d_backward(dy, indices, input_shape, *, backend=None, out=None):
    return _max_unpool("adaptive_max_pool1d_backward", backend, out, dy, indices, input_shape)
