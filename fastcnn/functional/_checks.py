"""The argument rules every functional op shares: where the arrays live (the backend),
their dtype, rank and layout, padding and window sizes, and the out= arrays (checked, or
allocated when not given)."""

import threading
from contextlib import contextmanager

import numpy as np

from .. import _args
from .. import backends
from .._args import integer as _int

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

# The ops whose out= may be one of their inputs: each element is read, then written, alone.
IN_PLACE = frozenset({
    "relu", "relu_backward", "leaky_relu", "leaky_relu_backward", "elu", "elu_backward",
    "sigmoid", "sigmoid_backward", "tanh", "tanh_backward", "dropout_backward"})

# ---------------------------------------------------------------- argument checks


# ---------------------------------------------------------------- recording backend calls

_recording = threading.local()


@contextmanager
def recording():
    """The backend calls the ops make in this thread inside the block, as (name, function,
    args, kwargs), in order: what an eval-mode layer's plan replays (fastcnn.nn.plan)."""
    calls = []
    before, _recording.calls = getattr(_recording, "calls", None), calls
    try:
        yield calls
    finally:
        _recording.calls = before


class _Recorded:
    """A backend module whose functions note each call before making it."""

    def __init__(self, be, calls):
        self._be, self._calls = be, calls

    def __getattr__(self, name):
        value = getattr(self._be, name)
        if not callable(value):
            return value

        def call(*args, **kwargs):
            self._calls.append((name, value, args, kwargs))
            return value(*args, **kwargs)
        return call


def _backend(op, backend, arrays):
    """The backend module for these arrays: the one named, else where the arrays live."""
    gpu = [name for name, a in arrays.items() if a is not None and backends.on_gpu(a)]
    host = [name for name, a in arrays.items()   # arrays, not other objects (their own error)
            if a is not None and not backends.on_gpu(a) and hasattr(a, "shape")]
    if backend is None:
        if gpu and host:
            raise ValueError(f"{op}: mixed devices: {', '.join(gpu)} on the GPU but "
                             f"{', '.join(host)} on the host; move them with "
                             f"fastcnn.to_device or fastcnn.to_host")
        backend = "cuda" if gpu else "cpu"
    be = backends.get(backend)
    wrong = host if be.DEVICE == "cuda" else gpu
    if wrong:
        where = "on the host" if be.DEVICE == "cuda" else "on the GPU"
        raise ValueError(f"{op}: backend {backend!r} computes on {be.DEVICE} but "
                         f"{', '.join(wrong)} {'is' if len(wrong) == 1 else 'are'} {where}")
    calls = getattr(_recording, "calls", None)
    return be if calls is None else _Recorded(be, calls)


def _floats(op, be, optional=(), **arrays):
    """The arrays as contiguous arrays of one floating dtype; only those named in optional
    may be None (and stay None)."""
    out, dtype, first = [], None, None
    for name, a in arrays.items():
        if a is None:
            if name not in optional:
                raise TypeError(f"{op}: {name} must be an array, got None")
            out.append(None)
            continue
        if isinstance(a, np.ndarray) and not a.dtype.isnative:
            a = a.astype(a.dtype.newbyteorder("="))    # big-endian data: native order
        kind = _dtype(a)
        if kind not in FLOAT_DTYPES:   # before moving a: named alike on every backend
            what = (f"{name}.shape={tuple(a.shape)}" if hasattr(a, "shape")
                    else f"a {type(a).__name__}, not an array")
            raise TypeError(f"{op}: {name} must be float32 or float64, got {kind} ({what})")
        if hasattr(a, "shape"):   # before a contiguous copy of a huge view is made
            _args.fits(op, name, a.shape, kind, on_host=False)
        try:
            a = be.asarray(a)
        except (TypeError, ValueError) as e:
            raise TypeError(f"{op}: {name} is not an array ({type(a).__name__}): {e}") from None
        if dtype is None:
            dtype, first = a.dtype, name
        elif a.dtype != dtype:
            raise TypeError(f"{op}: {name} is {a.dtype} but {first} is {dtype}; "
                            f"all arrays must share one dtype")
        out.append(a)
    return out


def _dtype(a):
    """a's element type as a NumPy dtype, without converting a: also for the CUDA arrays
    of other libraries (a PyTorch dtype is not a NumPy one) and for plain Python data."""
    dtype = getattr(a, "dtype", None)
    if isinstance(dtype, np.dtype):
        return dtype
    interface = getattr(a, "__cuda_array_interface__", None)
    if interface is not None:
        return np.dtype(interface["typestr"])
    try:
        return np.asarray(a).dtype
    except (TypeError, ValueError):   # not array-like at all (a ragged list)
        return np.dtype(object)


def _integers(op, be, name, a):
    """A contiguous array of integers (labels, pooling indices)."""
    if a is None:
        raise TypeError(f"{op}: {name} must be an array of integers, got None")
    if _dtype(a).kind not in "iu":
        shape = f" ({name}.shape={tuple(a.shape)})" if hasattr(a, "shape") else ""
        raise TypeError(f"{op}: {name} must hold integers, got {_dtype(a)}{shape}")
    if hasattr(a, "shape"):
        _args.fits(op, name, a.shape, _dtype(a), on_host=False)
    return be.asarray(a)


def _ndim(op, name, a, ndim, layout):
    if a is not None and a.ndim != ndim:
        raise ValueError(f"{op}: {name} must be {ndim}-D {layout}, got shape {tuple(a.shape)}")


def _nonempty_batch(op, name, a):
    if a.shape[0] == 0:
        raise ValueError(f"{op}: {name} has an empty batch ({name}.shape={tuple(a.shape)})")


def _out(op, be, out, shape, dtype, name="out", reads=None):
    """The array an op writes its result into: the caller's out, checked (reads: the op's
    inputs, by name), or a new array of shape and dtype where the backend computes. Every
    backend op is handed the arrays to fill; none allocates its results. Either way the
    result must be one the kernels can index, and fit in memory."""
    _args.fits(op, "the result" if name == "out" else f"the result {name}", shape, dtype,
               on_host=be.DEVICE == "cpu")
    if out is None:
        return be.empty(shape, dtype)
    return _checked_out(op, be, out, shape, dtype, name, reads)


def _checked_out(op, be, out, shape, dtype, name, reads=None):
    """out itself, if it is an array the op can write (see the module's docstring): where
    the op computes, of shape and dtype, C-contiguous, writeable, and sharing no memory
    with the arrays in reads (but for an elementwise op's input itself)."""
    kind = "a CUDA array" if be.DEVICE == "cuda" else "a NumPy array"
    if not hasattr(out, "shape"):
        raise TypeError(f"{op}: {name} must be {kind}, got {type(out).__name__}")
    if tuple(out.shape) != tuple(shape) or _dtype(out) != dtype:
        raise ValueError(f"{op}: {name} must have shape {tuple(shape)} and dtype {dtype}, "
                         f"got shape {tuple(out.shape)} and dtype {_dtype(out)}")
    if not be.is_array(out):
        raise TypeError(f"{op}: {name} must be {kind} (where the op computes: {be.DEVICE}), "
                        f"got {type(out).__name__}")
    if not _args.c_contiguous(out):
        raise ValueError(f"{op}: {name} must be C-contiguous")
    if not _args.writeable(out):
        raise ValueError(f"{op}: {name} is read-only (flags.writeable is False); the result "
                         f"is written into it")
    if reads:
        _no_clash(op, {name: out}, reads)
    return out


def _no_clash(op, written, reads):
    """An error if an array the op writes shares memory with another it writes or one it
    reads (an elementwise op may write into an input itself)."""
    pair = _args.clash(written, reads, in_place=op in IN_PLACE)
    if pair is None:
        return
    (name, other), arrays = pair, {**reads, **written}
    in_place = (f" ({op} may write into {other} itself, but not into a part of it)"
                if op in IN_PLACE else "")
    does = "writes both" if other in written else f"reads {other} while it writes {name}"
    raise ValueError(f"{op}: {name} overlaps {other} in memory ({name}.shape="
                     f"{tuple(arrays[name].shape)}, {other}.shape={tuple(arrays[other].shape)}):"
                     f" the op {does}; give {name} its own array{in_place}")


def _outs(op, be, out, specs, reads=None):
    """_out for each (shape, dtype) spec of a multi-result op (None entries of out are
    allocated); a None spec is a result not asked for, which stays None. No two results
    may overlap."""
    if out is None:
        out = (None,) * len(specs)
    if not isinstance(out, tuple) or len(out) != len(specs):
        raise TypeError(f"{op}: out must be a tuple of {len(specs)} arrays (or None entries)")
    given = {f"out[{i}]": o for i, o in enumerate(out)}
    checked = tuple(None if spec is None else _out(op, be, o, *spec, name=f"out[{i}]")
                    for i, (o, spec) in enumerate(zip(out, specs)))
    _no_clash(op, {k: given[k] if spec else None for k, spec in zip(given, specs)},
              reads or {})
    return checked


def _padding(padding, size, kernel, stride, dilation):
    """(top, bottom, left, right) for this input: padding as _args.padding gave it, a
    mode resolved ("same": the output keeps the input's size at stride 1, an odd pad's
    extra row or column at the bottom or right; "same_upper" / "same_lower": output =
    ceil(input / stride), the extra at the end / the start)."""
    if not isinstance(padding, str):
        return padding
    pads = []
    for axis in range(2):
        extent = dilation[axis] * (kernel[axis] - 1) + 1
        wanted = 0 if padding == "valid" else -(-size[axis] // stride[axis])
        total = max((wanted - 1) * stride[axis] + extent - size[axis], 0)
        early = total // 2 if padding != "same_lower" else total - total // 2
        pads += [early, total - early]
    return tuple(pads)


def _conv_out(op, size, kernel, stride, padding, dilation, what, ceil_mode=False):
    """Output (oh, ow) of a sliding window with padding (top, bottom, left, right); an
    error if the window does not fit, or if the padded input or the dilated kernel would
    overflow the kernels' C int. ceil_mode: the pools' rounding up (output_size), where,
    as in PyTorch, one window may also be larger than the padded input."""
    if 0 in tuple(size):   # all-padding windows: no backend has a sensible answer (PyTorch)
        raise ValueError(f"{op}: the input has no pixels ({size[0]}x{size[1]}): a sliding "
                         f"window needs at least one in each direction; {what}")
    out = []
    padded = (size[0] + padding[0] + padding[1], size[1] + padding[2] + padding[3])
    for axis in range(2):
        extent = dilation[axis] * (kernel[axis] - 1) + 1
        if max(extent, padded[axis]) > _args.INT_MAX:
            raise ValueError(f"{op}: along {'HW'[axis]} the padded input ({padded[axis]:,}) "
                             f"or the dilated kernel ({extent:,}) exceeds {_args.INT_MAX:,}, "
                             f"the kernels' C int ({what})")
        n = backends.output_size(size[axis], kernel[axis], stride[axis],
                                 padding[2 * axis: 2 * axis + 2], dilation[axis], ceil_mode)
        if extent > padded[axis] and not (ceil_mode and n >= 1):
            raise ValueError(
                f"{op}: the {'dilated ' if dilation[axis] > 1 else ''}kernel "
                f"({kernel[0]}x{kernel[1]}, extent {extent} along {'HW'[axis]}) is larger than "
                f"the padded input ({size[0]}x{size[1]} padded by {padding} -> "
                f"{padded[0]}x{padded[1]}); {what}")
        out.append(n)
    return tuple(out)


def _shape(op, name, shape, layout):
    """shape checked as a tuple of positive ints of layout's rank (layout: "(N, C, H, W)")."""
    rank = layout.count(",") + 1
    try:
        shape = tuple(_int(op, name, s, 1) for s in shape)
    except TypeError:
        raise TypeError(f"{op}: {name} must be a tuple of {rank} ints, got {shape!r}") from None
    if len(shape) != rank:
        raise ValueError(f"{op}: {name} must be {layout}, got {shape!r}")
    return shape


def _shape4(op, name, shape):
    return _shape(op, name, shape, "(N, C, H, W)")


def _same_shape(op, names, arrays):
    shapes = [tuple(a.shape) for a in arrays]
    if any(s != shapes[0] for s in shapes):
        listed = ", ".join(f"{n}.shape={s}" for n, s in zip(names, shapes))
        raise ValueError(f"{op}: {' and '.join(names)} must have the same shape ({listed})")
