"""fastcnn.functional: one function per op, whatever the backend.

Each function checks its arguments once (ranks, dtypes, shapes, ranges), with
messages that name the argument and the shapes, normalises them (pairs become
``(h, w)`` tuples, arrays become contiguous), picks the backend from where the
data lives (NumPy arrays -> ``cpu``, CUDA arrays -> ``cuda``) unless
``backend=`` names one, and calls that backend's function of the same name.
Backends trust what they get, which keeps the compiled loops free of checks.

One kind of check needs the values, not just the shapes: that indices (max-pool
and maxout arg-max positions) and class labels lie in range. The backend does it
(``check_indices``, ``check_labels``), because on the GPU looking at values means
a copy to the host and a wait for the GPU, which a training step should pay once
(for its loss), not for every such array. NumPy backends simply check. The cuda
backend does not re-check indices its own max_pool2d/maxout wrote (any others it
checks, with that copy), and leaves labels to the loss kernels that read them:
they skip and count bad ones, and the op raises the same ValueError from the
value it brings to the host anyway (softmax_cross_entropy, count_correct), or,
where nothing comes back, marks them (softmax_cross_entropy_backward: NaN rows
of the gradient; count_correct(into=): not counted). Kernels that read indices
skip out-of-range ones, so nothing that reaches them can write out of bounds.

Layouts follow PyTorch: images are NCHW, conv weights (out, in, kh, kw),
linear weights (out_features, in_features). Every int argument for a 2-D op
also takes a pair ``(h, w)``. Results have the input's dtype (float32 or
float64). Ops returning arrays take ``out=`` to write into (a tuple for ops
returning several); it must have the result's shape and dtype. Results the
caller did not pass are allocated here, so a backend op only fills the arrays
it is handed.
"""

import numbers

import numpy as np

from . import backends

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

# ---------------------------------------------------------------- argument checks


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
    return be


def _floats(op, be, **arrays):
    """The arrays as contiguous arrays of one floating dtype (None stays None)."""
    out, dtype, first = [], None, None
    for name, a in arrays.items():
        if a is None:
            out.append(None)
            continue
        if _dtype(a) not in FLOAT_DTYPES:   # before moving a: named alike on every backend
            shape = f" ({name}.shape={tuple(a.shape)})" if hasattr(a, "shape") else ""
            raise TypeError(f"{op}: {name} must be float32 or float64, got {_dtype(a)}{shape}")
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
    a = be.asarray(a)
    if a.dtype.kind not in "iu":
        raise TypeError(f"{op}: {name} must hold integers, got {a.dtype} "
                        f"({name}.shape={tuple(a.shape)})")
    return a


def _ndim(op, name, a, ndim, layout):
    if a is not None and a.ndim != ndim:
        raise ValueError(f"{op}: {name} must be {ndim}-D {layout}, got shape {tuple(a.shape)}")


def _nonempty_batch(op, name, a):
    if a.shape[0] == 0:
        raise ValueError(f"{op}: {name} has an empty batch ({name}.shape={tuple(a.shape)})")


def _int(op, name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{op}: {name} must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{op}: {name} must be >= {minimum}, got {value}")
    return int(value)


def _pair(op, name, value, minimum):
    """An int or an (h, w) pair of ints, each >= minimum, as a tuple."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{op}: {name} must be an int or a pair (h, w), got {value!r}")
        return tuple(_int(op, name, v, minimum) for v in value)
    v = _int(op, name, value, minimum)
    return (v, v)


def _number(op, name, value, low=-np.inf, high=np.inf, high_open=False):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{op}: {name} must be a number, got {value!r}")
    if not (low <= value and (value < high if high_open else value <= high)):
        bound = f"[{low}, {high})" if high_open else f"[{low}, {high}]"
        raise ValueError(f"{op}: {name} must be in {bound}, got {value}")
    return float(value)


def _out(op, be, out, shape, dtype, name="out"):
    """The array an op writes its result into: the caller's out, checked, or a new array
    of shape and dtype where the backend computes. Every backend op is handed the arrays
    to fill; none allocates its results."""
    if out is None:
        return be.empty(shape, dtype)
    return _checked_out(op, be, out, shape, dtype, name)


def _checked_out(op, be, out, shape, dtype, name):
    """out itself, if it is an array the op can write: right device, shape, dtype and
    C-contiguous."""
    if not hasattr(out, "shape"):
        raise TypeError(f"{op}: {name} must be an array on {be.DEVICE}, got {type(out).__name__}")
    if tuple(out.shape) != tuple(shape) or _dtype(out) != dtype:
        raise ValueError(f"{op}: {name} must have shape {tuple(shape)} and dtype {dtype}, "
                         f"got shape {tuple(out.shape)} and dtype {_dtype(out)}")
    if be.DEVICE != ("cuda" if backends.on_gpu(out) else "cpu"):
        raise TypeError(f"{op}: {name} must be an array on {be.DEVICE}, got {type(out).__name__}")
    if not _c_contiguous(out):
        raise ValueError(f"{op}: {name} must be C-contiguous")
    return out


def _outs(op, be, out, specs):
    """_out for each (shape, dtype) spec of a multi-result op (None entries of out are
    allocated); a None spec is a result not asked for, which stays None."""
    if out is None:
        out = (None,) * len(specs)
    if not isinstance(out, tuple) or len(out) != len(specs):
        raise TypeError(f"{op}: out must be a tuple of {len(specs)} arrays (or None entries)")
    return tuple(None if spec is None else _out(op, be, o, *spec, name=f"out[{i}]")
                 for i, (o, spec) in enumerate(zip(out, specs)))


def _c_contiguous(a):
    flags = getattr(a, "flags", None)
    if flags is not None:
        return bool(flags["C_CONTIGUOUS"])
    # Other libraries' CUDA arrays (PyTorch): from the interface; axes of length 1
    # may have any stride.
    interface = a.__cuda_array_interface__
    if interface.get("strides") is None:
        return True
    expected = np.dtype(interface["typestr"]).itemsize
    for size, stride in reversed(list(zip(interface["shape"], interface["strides"]))):
        if size > 1 and stride != expected:
            return False
        expected *= size
    return True


PADDING_MODES = ("valid", "same", "same_upper", "same_lower")


def _padding(op, padding, size, kernel, stride, dilation):
    """Padding as (top, bottom, left, right), from an int (every side), an (h, w) pair
    (both sides of each axis), a (top, bottom, left, right) tuple, or a mode: "valid"
    (none), "same" (PyTorch's: at stride 1 the output keeps the input's size, an odd
    pad's extra row or column at the bottom or right), "same_upper" / "same_lower"
    (ONNX's auto_pad: output = ceil(input / stride), the extra at the end / the start)."""
    if isinstance(padding, str):
        mode = padding.lower()
        if mode not in PADDING_MODES:
            raise ValueError(f"{op}: padding must be an int, a pair, a 4-tuple or one of "
                             f"{PADDING_MODES}, got {padding!r}")
        if mode == "same" and tuple(stride) != (1, 1):
            raise ValueError(f"{op}: padding='same' needs stride 1 (as in PyTorch), got "
                             f"stride={tuple(stride)}; 'same_upper' is ONNX's rule for strides")
        pads = []
        for axis in range(2):
            extent = dilation[axis] * (kernel[axis] - 1) + 1
            wanted = 0 if mode == "valid" else -(-size[axis] // stride[axis])
            total = max((wanted - 1) * stride[axis] + extent - size[axis], 0)
            early = total // 2 if mode != "same_lower" else total - total // 2
            pads += [early, total - early]
        return tuple(pads)
    if isinstance(padding, (tuple, list)) and len(padding) == 4:
        return tuple(_int(op, "padding", v, 0) for v in padding)
    if isinstance(padding, (tuple, list)) and len(padding) != 2:
        raise ValueError(f"{op}: padding must be an int, (h, w), (top, bottom, left, right) "
                         f"or one of {PADDING_MODES}, got {padding!r}")
    ph, pw = _pair(op, "padding", padding, 0)
    return (ph, ph, pw, pw)


def _conv_out(op, size, kernel, stride, padding, dilation, what):
    """Output (oh, ow) of a sliding window with padding (top, bottom, left, right); an
    error if the window does not fit."""
    if 0 in tuple(size):   # all-padding windows: no backend has a sensible answer (PyTorch)
        raise ValueError(f"{op}: the input has no pixels ({size[0]}x{size[1]}): a sliding "
                         f"window needs at least one in each direction; {what}")
    out = []
    padded = (size[0] + padding[0] + padding[1], size[1] + padding[2] + padding[3])
    for axis in range(2):
        extent = dilation[axis] * (kernel[axis] - 1) + 1
        if extent > padded[axis]:
            raise ValueError(
                f"{op}: the {'dilated ' if dilation[axis] > 1 else ''}kernel "
                f"({kernel[0]}x{kernel[1]}, extent {extent} along {'HW'[axis]}) is larger than "
                f"the padded input ({size[0]}x{size[1]} padded by {padding} -> "
                f"{padded[0]}x{padded[1]}); {what}")
        out.append(backends.output_size(size[axis], kernel[axis], stride[axis],
                                        padding[2 * axis: 2 * axis + 2], dilation[axis]))
    return tuple(out)


def _shape4(op, name, shape):
    try:
        shape = tuple(_int(op, name, s, 1) for s in shape)
    except TypeError:
        raise TypeError(f"{op}: {name} must be a tuple of 4 ints, got {shape!r}") from None
    if len(shape) != 4:
        raise ValueError(f"{op}: {name} must be (N, C, H, W), got {shape!r}")
    return shape


def _same_shape(op, names, arrays):
    shapes = [tuple(a.shape) for a in arrays]
    if any(s != shapes[0] for s in shapes):
        listed = ", ".join(f"{n}.shape={s}" for n, s in zip(names, shapes))
        raise ValueError(f"{op}: {' and '.join(names)} must have the same shape ({listed})")


# ---------------------------------------------------------------- im2col / col2im


def im2col(x, kernel_size, stride=1, padding=0, dilation=1, *, backend=None, out=None):
    """Unfold sliding windows: (N, C, H, W) -> cols (N, C*kh*kw, OH*OW)."""
    op = "im2col"
    be = _backend(op, backend, {"x": x})
    (x,) = _floats(op, be, x=x)
    _ndim(op, "x", x, 4, "(N, C, H, W)")
    _nonempty_batch(op, "x", x)
    k = _pair(op, "kernel_size", kernel_size, 1)
    s, d = _pair(op, "stride", stride, 1), _pair(op, "dilation", dilation, 1)
    p = _padding(op, padding, x.shape[2:], k, s, d)
    oh, ow = _conv_out(op, x.shape[2:], k, s, p, d, f"x.shape={tuple(x.shape)}")
    n, c = x.shape[:2]
    out = _out(op, be, out, (n, c * k[0] * k[1], oh * ow), x.dtype)
    return be.im2col(x, k, s, p, d, out=out)


def col2im(cols, input_shape, kernel_size, stride=1, padding=0, dilation=1, *,
           backend=None, out=None):
    """Fold cols (N, C*kh*kw, OH*OW) back to input_shape, summing where windows overlap."""
    op = "col2im"
    be = _backend(op, backend, {"cols": cols})
    (cols,) = _floats(op, be, cols=cols)
    _ndim(op, "cols", cols, 3, "(N, C*kh*kw, OH*OW)")
    n, c, h, w = _shape4(op, "input_shape", input_shape)
    k = _pair(op, "kernel_size", kernel_size, 1)
    s, d = _pair(op, "stride", stride, 1), _pair(op, "dilation", dilation, 1)
    p = _padding(op, padding, (h, w), k, s, d)
    oh, ow = _conv_out(op, (h, w), k, s, p, d, f"input_shape={(n, c, h, w)}")
    expected = (n, c * k[0] * k[1], oh * ow)
    if tuple(cols.shape) != expected:
        raise ValueError(f"{op}: cols must have shape {expected} for input_shape="
                         f"{(n, c, h, w)} and kernel_size={k}, got {tuple(cols.shape)}")
    out = _out(op, be, out, (n, c, h, w), cols.dtype)
    return be.col2im(cols, (n, c, h, w), k, s, p, d, out=out)


# ---------------------------------------------------------------- convolution


def _conv_args(op, x, weight, stride, padding, dilation):
    _ndim(op, "x", x, 4, "(N, C, H, W)")
    _ndim(op, "weight", weight, 4, "(out_channels, in_channels, kh, kw)")
    _nonempty_batch(op, "x", x)
    if weight.shape[1] != x.shape[1]:
        raise ValueError(f"{op}: weight expects {weight.shape[1]} input channels but x has "
                         f"{x.shape[1]} (x.shape={tuple(x.shape)}, "
                         f"weight.shape={tuple(weight.shape)})")
    if weight.shape[0] == 0:
        raise ValueError(f"{op}: weight has no output channels (weight.shape="
                         f"{tuple(weight.shape)})")
    s, d = _pair(op, "stride", stride, 1), _pair(op, "dilation", dilation, 1)
    p = _padding(op, padding, x.shape[2:], weight.shape[2:], s, d)
    oh, ow = _conv_out(op, x.shape[2:], weight.shape[2:], s, p, d,
                       f"x.shape={tuple(x.shape)}, weight.shape={tuple(weight.shape)}")
    return s, p, d, (x.shape[0], weight.shape[0], oh, ow)


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, *, backend=None, out=None):
    """2-D convolution (cross-correlation, as PyTorch): (N, C, H, W) -> (N, K, OH, OW)."""
    op = "conv2d"
    be = _backend(op, backend, {"x": x, "weight": weight, "bias": bias})
    x, weight, bias = _floats(op, be, x=x, weight=weight, bias=bias)
    s, p, d, y_shape = _conv_args(op, x, weight, stride, padding, dilation)
    if bias is not None and tuple(bias.shape) != (weight.shape[0],):
        raise ValueError(f"{op}: bias must have shape ({weight.shape[0]},) for weight.shape="
                         f"{tuple(weight.shape)}, got {tuple(bias.shape)}")
    out = _out(op, be, out, y_shape, x.dtype)
    return be.conv2d(x, weight, bias, s, p, d, out=out)


def conv2d_backward(dy, x, weight, stride=1, padding=0, dilation=1, need_dx=True, *,
                    need_dweight=True, backend=None, out=None):
    """Gradients of conv2d: (dx or None, dweight, dbias); need_dweight=False leaves out
    dweight and dbias (None: a frozen layer's), which are then not computed."""
    op = "conv2d_backward"
    be = _backend(op, backend, {"dy": dy, "x": x, "weight": weight})
    dy, x, weight = _floats(op, be, dy=dy, x=x, weight=weight)
    s, p, d, y_shape = _conv_args(op, x, weight, stride, padding, dilation)
    if tuple(dy.shape) != y_shape:
        raise ValueError(f"{op}: dy must have the output's shape {y_shape} "
                         f"(x.shape={tuple(x.shape)}, weight.shape={tuple(weight.shape)}), "
                         f"got {tuple(dy.shape)}")
    wanted = bool(need_dweight)
    out = _outs(op, be, out, [(x.shape, x.dtype) if need_dx else None,
                              (weight.shape, x.dtype) if wanted else None,
                              ((weight.shape[0],), x.dtype) if wanted else None])
    if not (need_dx or wanted):
        return out
    return be.conv2d_backward(dy, x, weight, s, p, d, bool(need_dx), out=out)


# ---------------------------------------------------------------- pooling


def _pool_args(op, x, kernel_size, stride, padding):
    _ndim(op, "x", x, 4, "(N, C, H, W)")
    _nonempty_batch(op, "x", x)
    k = _pair(op, "kernel_size", kernel_size, 1)
    s = k if stride is None else _pair(op, "stride", stride, 1)
    p = _padding(op, padding, x.shape[2:], k, s, (1, 1))
    if max(p[:2]) > k[0] // 2 or max(p[2:]) > k[1] // 2:
        raise ValueError(f"{op}: padding {p} (top, bottom, left, right) must be at most half "
                         f"of kernel_size {k}")
    oh, ow = _conv_out(op, x.shape[2:], k, s, p, (1, 1), f"x.shape={tuple(x.shape)}")
    return k, s, p, tuple(x.shape[:2]) + (oh, ow)


def max_pool2d(x, kernel_size, stride=None, padding=0, *, backend=None, out=None):
    """Max over each window -> (y, indices); indices are int32 arg-max positions h * W + w
    within each input plane (stride defaults to kernel_size; padding never wins)."""
    op = "max_pool2d"
    be = _backend(op, backend, {"x": x})
    (x,) = _floats(op, be, x=x)
    k, s, p, y_shape = _pool_args(op, x, kernel_size, stride, padding)
    out = _outs(op, be, out, [(y_shape, x.dtype), (y_shape, np.dtype(np.int32))])
    return be.max_pool2d(x, k, s, p, out=out)


def max_pool2d_backward(dy, indices, input_shape, *, backend=None, out=None):
    """Send each window's error back to its arg-max pixel: dx of input_shape."""
    op = "max_pool2d_backward"
    be = _backend(op, backend, {"dy": dy, "indices": indices})
    (dy,) = _floats(op, be, dy=dy)
    indices = _integers(op, be, "indices", indices)
    _ndim(op, "dy", dy, 4, "(N, C, OH, OW)")
    n, c, h, w = _shape4(op, "input_shape", input_shape)
    _same_shape(op, ("dy", "indices"), (dy, indices))
    if tuple(dy.shape[:2]) != (n, c):
        raise ValueError(f"{op}: dy.shape={tuple(dy.shape)} does not match "
                         f"input_shape={(n, c, h, w)} in batch and channels")
    indices = be.check_indices(op, "indices", indices, h * w)
    out = _out(op, be, out, (n, c, h, w), dy.dtype)
    return be.max_pool2d_backward(dy, indices, (n, c, h, w), out=out)


def avg_pool2d(x, kernel_size, stride=None, padding=0, *, backend=None, out=None):
    """Mean over each window; padded zeros count in the divisor (PyTorch's default)."""
    op = "avg_pool2d"
    be = _backend(op, backend, {"x": x})
    (x,) = _floats(op, be, x=x)
    k, s, p, y_shape = _pool_args(op, x, kernel_size, stride, padding)
    out = _out(op, be, out, y_shape, x.dtype)
    return be.avg_pool2d(x, k, s, p, out=out)


def avg_pool2d_backward(dy, input_shape, kernel_size, stride=None, padding=0, *,
                        backend=None, out=None):
    """Upsample the error over each window, divided by the window size: dx of input_shape."""
    op = "avg_pool2d_backward"
    be = _backend(op, backend, {"dy": dy})
    (dy,) = _floats(op, be, dy=dy)
    _ndim(op, "dy", dy, 4, "(N, C, OH, OW)")
    input_shape = _shape4(op, "input_shape", input_shape)
    k, s, p, y_shape = _pool_args(op, _Shape(input_shape, dy.dtype), kernel_size, stride, padding)
    if tuple(dy.shape) != y_shape:
        raise ValueError(f"{op}: dy must have shape {y_shape} for input_shape={input_shape}, "
                         f"kernel_size={k}, stride={s}, padding={p}; got {tuple(dy.shape)}")
    out = _out(op, be, out, input_shape, dy.dtype)
    return be.avg_pool2d_backward(dy, input_shape, k, s, p, out=out)


class _Shape:
    """Stands in for an array where only the shape is known (a backward's input_shape)."""

    def __init__(self, shape, dtype):
        self.shape, self.ndim, self.dtype = tuple(shape), len(shape), dtype


# ---------------------------------------------------------------- upsampling


def upsample_nearest2d(x, scale_factor, *, backend=None, out=None):
    """Nearest-neighbour upsampling by integer factors: (N, C, H, W) -> (N, C, sh*H, sw*W)."""
    op = "upsample_nearest2d"
    be = _backend(op, backend, {"x": x})
    (x,) = _floats(op, be, x=x)
    _ndim(op, "x", x, 4, "(N, C, H, W)")
    _nonempty_batch(op, "x", x)
    sh, sw = _pair(op, "scale_factor", scale_factor, 1)
    n, c, h, w = x.shape
    out = _out(op, be, out, (n, c, h * sh, w * sw), x.dtype)
    return be.upsample_nearest2d(x, (sh, sw), out=out)


def upsample_nearest2d_backward(dy, scale_factor, *, backend=None, out=None):
    """Sum the error over each sh x sw block: (N, C, sh*H, sw*W) -> (N, C, H, W)."""
    op = "upsample_nearest2d_backward"
    be = _backend(op, backend, {"dy": dy})
    (dy,) = _floats(op, be, dy=dy)
    _ndim(op, "dy", dy, 4, "(N, C, H, W)")
    _nonempty_batch(op, "dy", dy)
    sh, sw = _pair(op, "scale_factor", scale_factor, 1)
    n, c, h, w = dy.shape
    if h % sh or w % sw:
        raise ValueError(f"{op}: dy's height and width ({h}, {w}) must be multiples of "
                         f"scale_factor {(sh, sw)}")
    out = _out(op, be, out, (n, c, h // sh, w // sw), dy.dtype)
    return be.upsample_nearest2d_backward(dy, (sh, sw), out=out)


# ---------------------------------------------------------------- dense algebra


def matmul(a, b, *, backend=None, out=None):
    """c = a @ b for 2-D a (M, K) and b (K, N)."""
    op = "matmul"
    be = _backend(op, backend, {"a": a, "b": b})
    a, b = _floats(op, be, a=a, b=b)
    _ndim(op, "a", a, 2, "(M, K)")
    _ndim(op, "b", b, 2, "(K, N)")
    if a.shape[1] != b.shape[0]:
        raise ValueError(f"{op}: inner dimensions differ (a.shape={tuple(a.shape)}, "
                         f"b.shape={tuple(b.shape)})")
    out = _out(op, be, out, (a.shape[0], b.shape[1]), a.dtype)
    return be.matmul(a, b, out=out)


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
    x, weight, bias = _floats(op, be, x=x, weight=weight, bias=bias)
    _linear_args(op, x, weight)
    if bias is not None and tuple(bias.shape) != (weight.shape[0],):
        raise ValueError(f"{op}: bias must have shape ({weight.shape[0]},) for weight.shape="
                         f"{tuple(weight.shape)}, got {tuple(bias.shape)}")
    out = _out(op, be, out, (x.shape[0], weight.shape[0]), x.dtype)
    return be.linear(x, weight, bias, out=out)


def linear_backward(dy, x, weight, *, need_dweight=True, backend=None, out=None):
    """Gradients of linear: (dx, dweight, dbias); need_dweight=False gives (dx, None, None),
    dx alone computed (dy @ weight: a frozen layer's)."""
    op = "linear_backward"
    be = _backend(op, backend, {"dy": dy, "x": x, "weight": weight})
    dy, x, weight = _floats(op, be, dy=dy, x=x, weight=weight)
    _linear_args(op, x, weight)
    if tuple(dy.shape) != (x.shape[0], weight.shape[0]):
        raise ValueError(f"{op}: dy must have shape {(x.shape[0], weight.shape[0])} "
                         f"(x.shape={tuple(x.shape)}, weight.shape={tuple(weight.shape)}), "
                         f"got {tuple(dy.shape)}")
    wanted = bool(need_dweight)
    out = _outs(op, be, out, [(x.shape, x.dtype), (weight.shape, x.dtype) if wanted else None,
                              ((weight.shape[0],), x.dtype) if wanted else None])
    if not wanted:
        return be.matmul(dy, weight, out=out[0]), None, None
    return be.linear_backward(dy, x, weight, out=out)


# ---------------------------------------------------------------- activations


def _unary(op, backend, out, x, *args):
    be = _backend(op, backend, {"x": x})
    (x,) = _floats(op, be, x=x)
    out = _out(op, be, out, x.shape, x.dtype)
    return getattr(be, op)(x, *args, out=out)


def _unary_backward(op, backend, out, dy, y, name, *args):
    be = _backend(op, backend, {"dy": dy, name: y})
    dy, y = _floats(op, be, **{"dy": dy, name: y})
    _same_shape(op, ("dy", name), (dy, y))
    out = _out(op, be, out, dy.shape, dy.dtype)
    return getattr(be, op)(dy, y, *args, out=out)


def relu(x, *, backend=None, out=None):
    """max(x, 0); out may be x itself (in place)."""
    return _unary("relu", backend, out, x)


def relu_backward(dy, y, *, backend=None, out=None):
    """dy where the forward output y > 0, else 0."""
    return _unary_backward("relu_backward", backend, out, dy, y, "y")


def leaky_relu(x, negative_slope=0.01, *, backend=None, out=None):
    slope = _number("leaky_relu", "negative_slope", negative_slope)
    return _unary("leaky_relu", backend, out, x, slope)


def leaky_relu_backward(dy, x, negative_slope=0.01, *, backend=None, out=None):
    slope = _number("leaky_relu_backward", "negative_slope", negative_slope)
    return _unary_backward("leaky_relu_backward", backend, out, dy, x, "x", slope)


def elu(x, alpha=1.0, *, backend=None, out=None):
    alpha = _number("elu", "alpha", alpha, low=0)
    return _unary("elu", backend, out, x, alpha)


def elu_backward(dy, y, alpha=1.0, *, backend=None, out=None):
    alpha = _number("elu_backward", "alpha", alpha, low=0)
    return _unary_backward("elu_backward", backend, out, dy, y, "y", alpha)


def sigmoid(x, *, backend=None, out=None):
    return _unary("sigmoid", backend, out, x)


def sigmoid_backward(dy, y, *, backend=None, out=None):
    return _unary_backward("sigmoid_backward", backend, out, dy, y, "y")


def tanh(x, *, backend=None, out=None):
    return _unary("tanh", backend, out, x)


def tanh_backward(dy, y, *, backend=None, out=None):
    return _unary_backward("tanh_backward", backend, out, dy, y, "y")


def softmax(x, *, backend=None, out=None):
    """Softmax over the classes (axis 1) of a (N, C) array."""
    op = "softmax"
    be = _backend(op, backend, {"x": x})
    (x,) = _floats(op, be, x=x)
    _ndim(op, "x", x, 2, "(N, C)")
    out = _out(op, be, out, x.shape, x.dtype)
    return be.softmax(x, out=out)


def softmax_backward(dy, y, *, backend=None, out=None):
    _ndim("softmax_backward", "y", y, 2, "(N, C)")
    return _unary_backward("softmax_backward", backend, out, dy, y, "y")


def maxout(x, pool_size, *, backend=None, out=None):
    """Max over consecutive groups of pool_size features (axis 1) -> (y, indices in the group)."""
    op = "maxout"
    be = _backend(op, backend, {"x": x})
    (x,) = _floats(op, be, x=x)
    k = _int(op, "pool_size", pool_size, 1)
    if x.ndim < 2 or x.shape[1] % k:
        raise ValueError(f"{op}: x's axis 1 must be a multiple of pool_size={k}, "
                         f"got x.shape={tuple(x.shape)}")
    y_shape = (x.shape[0], x.shape[1] // k) + tuple(x.shape[2:])
    out = _outs(op, be, out, [(y_shape, x.dtype), (y_shape, np.dtype(np.int32))])
    return be.maxout(x, k, out=out)


def maxout_backward(dy, indices, pool_size, *, backend=None, out=None):
    op = "maxout_backward"
    be = _backend(op, backend, {"dy": dy, "indices": indices})
    (dy,) = _floats(op, be, dy=dy)
    indices = _integers(op, be, "indices", indices)
    k = _int(op, "pool_size", pool_size, 1)
    _same_shape(op, ("dy", "indices"), (dy, indices))
    if dy.ndim < 2:
        raise ValueError(f"{op}: dy must be at least 2-D, got shape {tuple(dy.shape)}")
    indices = be.check_indices(op, "indices", indices, k)
    x_shape = (dy.shape[0], dy.shape[1] * k) + tuple(dy.shape[2:])
    out = _out(op, be, out, x_shape, dy.dtype)
    return be.maxout_backward(dy, indices, k, out=out)


# ---------------------------------------------------------------- dropout


def dropout(x, p, seed, *, backend=None, out=None):
    """Inverted dropout: (x * mask, mask), mask = 1/(1-p) for kept elements else 0.

    The mask is a hash of (seed, element index), the same on every backend.
    """
    op = "dropout"
    p = _number(op, "p", p, 0, 1, high_open=True)
    seed = _int(op, "seed", seed, 0) & 0xFFFFFFFF
    be = _backend(op, backend, {"x": x})
    (x,) = _floats(op, be, x=x)
    out = _outs(op, be, out, [(x.shape, x.dtype), (x.shape, x.dtype)])
    return be.dropout(x, p, seed, out=out)


def dropout_backward(dy, mask, *, backend=None, out=None):
    return _unary_backward("dropout_backward", backend, out, dy, mask, "mask")


# ---------------------------------------------------------------- batch normalisation


def batch_norm(x, gamma, beta, running_mean=None, running_var=None, momentum=0.1, eps=1e-5,
               training=True, *, backend=None, out=None):
    """Normalise each channel (axis 1) of (N, C) or (N, C, H, W) -> (y, mean, invstd).

    Training uses the batch statistics and updates running_mean / running_var in
    place (if given); evaluation uses them.
    """
    op = "batch_norm"
    arrays = {"x": x, "gamma": gamma, "beta": beta,
              "running_mean": running_mean, "running_var": running_var}
    be = _backend(op, backend, arrays)
    x, gamma, beta = _floats(op, be, x=x, gamma=gamma, beta=beta)
    if x.ndim not in (2, 4):
        raise ValueError(f"{op}: x must be (N, C) or (N, C, H, W), got shape {tuple(x.shape)}")
    c = x.shape[1]
    stats = {"gamma": gamma, "beta": beta, "running_mean": running_mean,
             "running_var": running_var}
    for name, a in stats.items():
        if a is not None and tuple(a.shape) != (c,):
            raise ValueError(f"{op}: {name} must have shape ({c},) for x.shape="
                             f"{tuple(x.shape)}, got {tuple(a.shape)}")
    if (running_mean is None) != (running_var is None):
        raise ValueError(f"{op}: give both running_mean and running_var, or neither")
    for name in ("running_mean", "running_var"):
        a = stats[name]
        if a is not None and (_dtype(a) != x.dtype or not _c_contiguous(a)):
            raise TypeError(f"{op}: {name} is updated in place, so it must be a contiguous "
                            f"{x.dtype} array, got {_dtype(a)}")
    count = x.size // c if c else 0
    if training and count < 2:
        raise ValueError(f"{op}: training needs more than one value per channel "
                         f"(x.shape={tuple(x.shape)})")
    if not training and running_mean is None:
        raise ValueError(f"{op}: evaluation (training=False) needs running_mean and running_var")
    momentum = _number(op, "momentum", momentum, 0, 1)
    eps = _number(op, "eps", eps, 0)
    out = _outs(op, be, out, [(x.shape, x.dtype), ((c,), x.dtype), ((c,), x.dtype)])
    return be.batch_norm(x, gamma, beta, running_mean, running_var, momentum, eps,
                         bool(training), out=out)


def batch_norm_backward(dy, x, gamma, mean, invstd, training=True, *, backend=None, out=None):
    """Gradients of batch_norm from its saved mean and invstd: (dx, dgamma, dbeta)."""
    op = "batch_norm_backward"
    arrays = {"dy": dy, "x": x, "gamma": gamma, "mean": mean, "invstd": invstd}
    be = _backend(op, backend, arrays)
    dy, x, gamma, mean, invstd = _floats(op, be, **arrays)
    _same_shape(op, ("dy", "x"), (dy, x))
    if x.ndim not in (2, 4):
        raise ValueError(f"{op}: x must be (N, C) or (N, C, H, W), got shape {tuple(x.shape)}")
    c = x.shape[1]
    for name, a in (("gamma", gamma), ("mean", mean), ("invstd", invstd)):
        if tuple(a.shape) != (c,):
            raise ValueError(f"{op}: {name} must have shape ({c},) for x.shape="
                             f"{tuple(x.shape)}, got {tuple(a.shape)}")
    out = _outs(op, be, out, [(x.shape, x.dtype), ((c,), x.dtype), ((c,), x.dtype)])
    return be.batch_norm_backward(dy, x, gamma, mean, invstd, bool(training), out=out)


# ---------------------------------------------------------------- losses


def _labels(op, be, logits, labels):
    """Integer labels (N,) for logits (N, C); their range is be.check_labels' affair (on the
    GPU, the loss kernels': see the module's docstring)."""
    _ndim(op, "logits", logits, 2, "(N, C)")
    _nonempty_batch(op, "logits", logits)
    labels = _integers(op, be, "labels", labels)
    if tuple(labels.shape) != (logits.shape[0],):
        raise ValueError(f"{op}: labels must have shape ({logits.shape[0]},) for "
                         f"logits.shape={tuple(logits.shape)}, got {tuple(labels.shape)}")
    return be.check_labels(op, labels, logits.shape[1])


def softmax_cross_entropy(logits, labels, *, backend=None, out=None):
    """Fused, stable softmax + cross-entropy with integer labels -> (mean loss, probs)."""
    op = "softmax_cross_entropy"
    be = _backend(op, backend, {"logits": logits, "labels": labels})
    (logits,) = _floats(op, be, logits=logits)
    labels = _labels(op, be, logits, labels)
    out = _out(op, be, out, logits.shape, logits.dtype)
    return be.softmax_cross_entropy(logits, labels, out=out)


def softmax_cross_entropy_backward(probs, labels, *, backend=None, out=None):
    """d(mean loss)/d(logits) = (probs - onehot(labels)) / N. On the GPU a label outside
    [0, C) gives a row of NaN instead of an error (the forward op reports it)."""
    op = "softmax_cross_entropy_backward"
    be = _backend(op, backend, {"probs": probs, "labels": labels})
    (probs,) = _floats(op, be, probs=probs)
    labels = _labels(op, be, probs, labels)
    out = _out(op, be, out, probs.shape, probs.dtype)
    return be.softmax_cross_entropy_backward(probs, labels, out=out)


def _pred_target(op, backend, pred, target, names):
    be = _backend(op, backend, {names[0]: pred, names[1]: target})
    pred, target = _floats(op, be, **{names[0]: pred, names[1]: target})
    _same_shape(op, names, (pred, target))
    if pred.size == 0:
        raise ValueError(f"{op}: {names[0]} is empty ({names[0]}.shape={tuple(pred.shape)})")
    return be, pred, target


def bce_with_logits(logits, targets, *, backend=None):
    """Mean binary cross-entropy of sigmoid(logits) against targets in [0, 1]."""
    op = "bce_with_logits"
    be, logits, targets = _pred_target(op, backend, logits, targets, ("logits", "targets"))
    return be.bce_with_logits(logits, targets)


def bce_with_logits_backward(logits, targets, *, backend=None, out=None):
    op = "bce_with_logits_backward"
    be, logits, targets = _pred_target(op, backend, logits, targets, ("logits", "targets"))
    return be.bce_with_logits_backward(logits, targets,
                                       out=_out(op, be, out, logits.shape, logits.dtype))


def bce(probs, targets, *, backend=None):
    """Mean binary cross-entropy of probabilities against targets (logs clamped at -100)."""
    op = "bce"
    be, probs, targets = _pred_target(op, backend, probs, targets, ("probs", "targets"))
    return be.bce(probs, targets)


def bce_backward(probs, targets, *, backend=None, out=None):
    op = "bce_backward"
    be, probs, targets = _pred_target(op, backend, probs, targets, ("probs", "targets"))
    return be.bce_backward(probs, targets, out=_out(op, be, out, probs.shape, probs.dtype))


def mse(pred, target, *, backend=None):
    """Mean squared error over all elements."""
    be, pred, target = _pred_target("mse", backend, pred, target, ("pred", "target"))
    return be.mse(pred, target)


def mse_backward(pred, target, *, backend=None, out=None):
    op = "mse_backward"
    be, pred, target = _pred_target(op, backend, pred, target, ("pred", "target"))
    return be.mse_backward(pred, target, out=_out(op, be, out, pred.shape, pred.dtype))


def count_correct(scores, labels, *, backend=None, into=None):
    """How many rows of scores (N, C) have their maximum at the label.

    into: a one-element int64 array where scores live, to add the count to instead of
    returning it (into itself is returned): a running total that stays on the GPU, so
    counting costs no copy to the host. There, labels outside [0, C) are not counted
    rather than reported (nothing comes back to raise from); fit counts the labels its
    loss has just checked.
    """
    op = "count_correct"
    be = _backend(op, backend, {"scores": scores, "labels": labels, "into": into})
    (scores,) = _floats(op, be, scores=scores)
    labels = _labels(op, be, scores, labels)
    if into is not None:
        into = _checked_out(op, be, into, (1,), np.dtype(np.int64), "into")
    return be.count_correct(scores, labels, into=into)


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
    return be.add(a, b, out=_out("add", be, out, a.shape, a.dtype))


def multiply(a, b, *, backend=None, out=None):
    """a * b, elementwise, for two arrays of one shape (its backward: multiply(dy, b) and
    multiply(dy, a))."""
    be, a, b = _pair_of_arrays("multiply", backend, a, b)
    return be.multiply(a, b, out=_out("multiply", be, out, a.shape, a.dtype))


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
    return be.concat(tuple(xs), out=_out(op, be, out, shape, xs[0].dtype))


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
    return be.concat_backward(dy, channels, out=_outs(op, be, out, shapes))


# ---------------------------------------------------------------- optimizer steps
# In-place updates of a parameter and its state arrays (PyTorch's formulas).


def _step_arrays(op, backend, param, grad, **state):
    arrays = {"param": param, "grad": grad, **state}
    be = _backend(op, backend, arrays)
    for name, a in arrays.items():
        if a is None:
            continue
        dtype = _dtype(a) if hasattr(a, "dtype") else None
        if dtype not in FLOAT_DTYPES or dtype != _dtype(param):
            raise TypeError(f"{op}: {name} must be a float array of param's dtype "
                            f"({getattr(param, 'dtype', None)}), got {getattr(a, 'dtype', a)}")
        if tuple(a.shape) != tuple(param.shape):
            raise ValueError(f"{op}: {name}.shape={tuple(a.shape)} differs from "
                             f"param.shape={tuple(param.shape)}")
        if name != "grad" and not _c_contiguous(a):
            raise ValueError(f"{op}: {name} is updated in place and must be C-contiguous")
    return be, be.asarray(grad)


def sgd_step(param, grad, velocity=None, lr=0.01, momentum=0.0, nesterov=False,
             weight_decay=0.0, *, backend=None):
    op = "sgd_step"
    momentum = _number(op, "momentum", momentum, 0)
    if momentum and velocity is None:
        raise ValueError(f"{op}: momentum={momentum} needs a velocity array")
    if nesterov and not momentum:
        raise ValueError(f"{op}: nesterov needs momentum > 0")
    be, grad = _step_arrays(op, backend, param, grad, velocity=velocity)
    be.sgd_step(param, grad, velocity, _number(op, "lr", lr, 0), momentum, bool(nesterov),
                _number(op, "weight_decay", weight_decay, 0))


def adam_step(param, grad, m, v, step, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8,
              weight_decay=0.0, *, backend=None):
    op = "adam_step"
    be, grad = _step_arrays(op, backend, param, grad, m=m, v=v)
    be.adam_step(param, grad, m, v, _int(op, "step", step, 1), _number(op, "lr", lr, 0),
                 _number(op, "beta1", beta1, 0, 1, True), _number(op, "beta2", beta2, 0, 1, True),
                 _number(op, "eps", eps, 0), _number(op, "weight_decay", weight_decay, 0))


def adagrad_step(param, grad, sum_sq, step, lr=1e-2, lr_decay=0.0, eps=1e-10,
                 weight_decay=0.0, *, backend=None):
    op = "adagrad_step"
    be, grad = _step_arrays(op, backend, param, grad, sum_sq=sum_sq)
    be.adagrad_step(param, grad, sum_sq, _int(op, "step", step, 1), _number(op, "lr", lr, 0),
                    _number(op, "lr_decay", lr_decay, 0), _number(op, "eps", eps, 0),
                    _number(op, "weight_decay", weight_decay, 0))


def rmsprop_step(param, grad, square_avg, buf=None, lr=1e-2, alpha=0.99, eps=1e-8,
                 weight_decay=0.0, momentum=0.0, *, backend=None):
    op = "rmsprop_step"
    momentum = _number(op, "momentum", momentum, 0)
    if momentum and buf is None:
        raise ValueError(f"{op}: momentum={momentum} needs a buf array")
    be, grad = _step_arrays(op, backend, param, grad, square_avg=square_avg, buf=buf)
    be.rmsprop_step(param, grad, square_avg, buf, _number(op, "lr", lr, 0),
                    _number(op, "alpha", alpha, 0, 1), _number(op, "eps", eps, 0),
                    _number(op, "weight_decay", weight_decay, 0), momentum)


def adadelta_step(param, grad, square_avg, acc_delta, lr=1.0, rho=0.9, eps=1e-6,
                  weight_decay=0.0, *, backend=None):
    op = "adadelta_step"
    be, grad = _step_arrays(op, backend, param, grad, square_avg=square_avg,
                            acc_delta=acc_delta)
    be.adadelta_step(param, grad, square_avg, acc_delta, _number(op, "lr", lr, 0),
                     _number(op, "rho", rho, 0, 1), _number(op, "eps", eps, 0),
                     _number(op, "weight_decay", weight_decay, 0))
