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
float64).

Arrays in: NumPy arrays, or anything NumPy makes a float array of (a list of
floats, a NumPy scalar); a big-endian float array is converted to native byte
order (a copy, like a non-contiguous array). Other dtypes (int, bool, complex,
float16, object) are refused, never cast. No array, given or computed, may hold
more than 2**31 - 1 elements (the kernels index with C int), nor a size
argument exceed that; a result larger than the machine's memory is refused
before anything is allocated.

Ops returning arrays take ``out=`` to write into (a tuple for ops returning
several, ``None`` entries allocated): an array where the op computes, of the
result's shape and dtype, C-contiguous, writeable, and sharing no memory with
the op's inputs or its other outputs. The elementwise activations and their
backward ops (and dropout_backward) may write in place: their ``out`` may be
one of their inputs itself (``F.relu(x, out=x)``), though not a part of one.
Arrays an op updates in place (running statistics, optimizer state) are checked
the same way. Results the caller did not pass are allocated here, so a backend
op only fills the arrays it is handed.
"""

import math
import numbers

import numpy as np

from . import _args, backends
from ._args import arg as _arg
from ._args import integer as _int
from .backends import coordinates

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

# The ops whose out= may be one of their inputs: each element is read, then written, alone.
IN_PLACE = frozenset({
    "relu", "relu_backward", "leaky_relu", "leaky_relu_backward", "elu", "elu_backward",
    "sigmoid", "sigmoid_backward", "tanh", "tanh_backward", "dropout_backward"})

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
    k = _arg(op, "kernel_size", kernel_size)
    s, p, d = _args.conv_window(op, stride, padding, dilation)
    p = _padding(p, x.shape[2:], k, s, d)
    oh, ow = _conv_out(op, x.shape[2:], k, s, p, d, f"x.shape={tuple(x.shape)}")
    n, c = x.shape[:2]
    out = _out(op, be, out, (n, c * k[0] * k[1], oh * ow), x.dtype, reads={"x": x})
    return be.im2col(x, k, s, p, d, out=out)


def col2im(cols, input_shape, kernel_size, stride=1, padding=0, dilation=1, *,
           backend=None, out=None):
    """Fold cols (N, C*kh*kw, OH*OW) back to input_shape, summing where windows overlap."""
    op = "col2im"
    be = _backend(op, backend, {"cols": cols})
    (cols,) = _floats(op, be, cols=cols)
    _ndim(op, "cols", cols, 3, "(N, C*kh*kw, OH*OW)")
    n, c, h, w = _shape4(op, "input_shape", input_shape)
    k = _arg(op, "kernel_size", kernel_size)
    s, p, d = _args.conv_window(op, stride, padding, dilation)
    p = _padding(p, (h, w), k, s, d)
    oh, ow = _conv_out(op, (h, w), k, s, p, d, f"input_shape={(n, c, h, w)}")
    expected = (n, c * k[0] * k[1], oh * ow)
    if tuple(cols.shape) != expected:
        raise ValueError(f"{op}: cols must have shape {expected} for input_shape="
                         f"{(n, c, h, w)} and kernel_size={k}, got {tuple(cols.shape)}")
    out = _out(op, be, out, (n, c, h, w), cols.dtype, reads={"cols": cols})
    return be.col2im(cols, (n, c, h, w), k, s, p, d, out=out)


# ---------------------------------------------------------------- convolution


def _groups(op, x, weight, groups, transposed=False):
    """groups as an int that divides both channel counts; weight is (out, in/groups, ...)
    for a convolution, (in, out/groups, ...) for a transposed one."""
    groups = _int(op, "groups", groups, 1)
    shapes = f"(x.shape={tuple(x.shape)}, weight.shape={tuple(weight.shape)}, groups={groups})"
    inputs, outputs = ((weight.shape[0], weight.shape[1] * groups) if transposed
                       else (weight.shape[1] * groups, weight.shape[0]))
    if x.shape[1] % groups:
        raise ValueError(f"{op}: groups={groups} does not divide x's {x.shape[1]} input "
                         f"channels {shapes}")
    if outputs % groups:
        raise ValueError(f"{op}: groups={groups} does not divide weight's {outputs} output "
                         f"channels {shapes}")
    if x.shape[1] != inputs:
        raise ValueError(f"{op}: weight expects {inputs} input channels but x has "
                         f"{x.shape[1]} {shapes}")
    if outputs == 0:
        raise ValueError(f"{op}: weight has no output channels {shapes}")
    if 0 in weight.shape[2:]:
        raise ValueError(f"{op}: weight's kernel is empty (weight.shape={tuple(weight.shape)})")
    return groups


def _conv_args(op, x, weight, stride, padding, dilation, groups):
    _ndim(op, "x", x, 4, "(N, C, H, W)")
    _ndim(op, "weight", weight, 4, "(out_channels, in_channels/groups, kh, kw)")
    _nonempty_batch(op, "x", x)
    groups = _groups(op, x, weight, groups)
    s, p, d = _args.conv_window(op, stride, padding, dilation)
    p = _padding(p, x.shape[2:], weight.shape[2:], s, d)
    oh, ow = _conv_out(op, x.shape[2:], weight.shape[2:], s, p, d,
                       f"x.shape={tuple(x.shape)}, weight.shape={tuple(weight.shape)}")
    columns = x.shape[1] * weight.shape[2] * weight.shape[3]   # im2col's rows, one image
    _args.fits(op, "one image's column matrix", (columns, oh * ow), x.dtype)
    return s, p, d, groups, (x.shape[0], weight.shape[0], oh, ow)


def _bias(op, bias, channels, weight):
    if bias is not None and tuple(bias.shape) != (channels,):
        raise ValueError(f"{op}: bias must have shape ({channels},) for weight.shape="
                         f"{tuple(weight.shape)}, got {tuple(bias.shape)}")


def _dy(op, dy, shape, x, weight):
    if tuple(dy.shape) != tuple(shape):
        raise ValueError(f"{op}: dy must have the output's shape {tuple(shape)} "
                         f"(x.shape={tuple(x.shape)}, weight.shape={tuple(weight.shape)}), "
                         f"got {tuple(dy.shape)}")


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *, backend=None,
           out=None):
    """2-D convolution (cross-correlation, as PyTorch): (N, C, H, W) -> (N, K, OH, OW), weight
    (K, C/groups, kh, kw). With groups, output channels [g*K/G, (g+1)*K/G) see input
    channels [g*C/G, (g+1)*C/G) only; groups == C is a depthwise convolution."""
    op = "conv2d"
    be = _backend(op, backend, {"x": x, "weight": weight, "bias": bias})
    x, weight, bias = _floats(op, be, ("bias",), x=x, weight=weight, bias=bias)
    s, p, d, g, y_shape = _conv_args(op, x, weight, stride, padding, dilation, groups)
    _bias(op, bias, weight.shape[0], weight)
    out = _out(op, be, out, y_shape, x.dtype, reads={"x": x, "weight": weight, "bias": bias})
    return be.conv2d(x, weight, bias, s, p, d, g, out=out)


def conv2d_backward(dy, x, weight, stride=1, padding=0, dilation=1, need_dx=True, groups=1, *,
                    backend=None, out=None):
    """Gradients of conv2d: (dx or None, dweight, dbias). (groups comes after need_dx, which
    callers pass by position.)"""
    op = "conv2d_backward"
    be = _backend(op, backend, {"dy": dy, "x": x, "weight": weight})
    dy, x, weight = _floats(op, be, dy=dy, x=x, weight=weight)
    s, p, d, g, y_shape = _conv_args(op, x, weight, stride, padding, dilation, groups)
    _dy(op, dy, y_shape, x, weight)
    need_dx = _args.flag(op, "need_dx", need_dx)
    out = _outs(op, be, out, [(x.shape, x.dtype) if need_dx else None,
                              (weight.shape, x.dtype), ((weight.shape[0],), x.dtype)],
                reads={"dy": dy, "x": x, "weight": weight})
    return be.conv2d_backward(dy, x, weight, s, p, d, g, need_dx, out=out)


def _transposed_args(op, x, weight, stride, padding, output_padding, groups, dilation):
    """Checked arguments of a transposed convolution and its output's shape."""
    _ndim(op, "x", x, 4, "(N, C, H, W)")
    _ndim(op, "weight", weight, 4, "(in_channels, out_channels/groups, kh, kw)")
    _nonempty_batch(op, "x", x)
    groups = _groups(op, x, weight, groups, transposed=True)
    s, p, op_, d = _args.transposed_window(op, stride, padding, output_padding, dilation)
    hw = tuple(backends.transposed_output_size(x.shape[2 + a], weight.shape[2 + a], s[a],
                                               p[2 * a: 2 * a + 2], d[a], op_[a])
               for a in range(2))
    if min(hw) < 1:
        raise ValueError(f"{op}: the output would be {hw[0]}x{hw[1]}: padding {p} (top, "
                         f"bottom, left, right) crops more than the transposed convolution "
                         f"makes (x.shape={tuple(x.shape)}, weight.shape="
                         f"{tuple(weight.shape)}, stride={s}, dilation={d})")
    full = [(x.shape[2 + a] - 1) * s[a] + d[a] * (weight.shape[2 + a] - 1) + 1 + op_[a]
            for a in range(2)]   # before padding crops it
    if max(full) > _args.INT_MAX:
        raise ValueError(f"{op}: the uncropped output would be {full[0]:,}x{full[1]:,}: more "
                         f"than the kernels' C int ({_args.INT_MAX:,}) along an axis (x.shape="
                         f"{tuple(x.shape)}, weight.shape={tuple(weight.shape)}, stride={s}, "
                         f"dilation={d})")
    return s, p, d, groups, (x.shape[0], weight.shape[1] * groups) + hw


def conv_transpose2d(x, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1, *, backend=None, out=None):
    """Transposed convolution (PyTorch's ConvTranspose2d, ONNX's ConvTranspose): the adjoint
    of conv2d in x. (N, C, H, W) -> (N, K, OH, OW), weight (C, K/groups, kh, kw) (input
    channels first), OH = (H-1)*stride - top - bottom + dilation*(kh-1) + output_padding + 1.
    padding crops the output; output_padding extends it at the bottom and right."""
    op = "conv_transpose2d"
    be = _backend(op, backend, {"x": x, "weight": weight, "bias": bias})
    x, weight, bias = _floats(op, be, ("bias",), x=x, weight=weight, bias=bias)
    s, p, d, g, y_shape = _transposed_args(op, x, weight, stride, padding, output_padding,
                                           groups, dilation)
    _bias(op, bias, y_shape[1], weight)
    out = _out(op, be, out, y_shape, x.dtype, reads={"x": x, "weight": weight, "bias": bias})
    return be.conv_transpose2d(x, weight, bias, s, p, g, d, out=out)


def conv_transpose2d_backward(dy, x, weight, stride=1, padding=0, output_padding=0, groups=1,
                              dilation=1, need_dx=True, *, backend=None, out=None):
    """Gradients of conv_transpose2d: (dx or None, dweight, dbias)."""
    op = "conv_transpose2d_backward"
    be = _backend(op, backend, {"dy": dy, "x": x, "weight": weight})
    dy, x, weight = _floats(op, be, dy=dy, x=x, weight=weight)
    s, p, d, g, y_shape = _transposed_args(op, x, weight, stride, padding, output_padding,
                                           groups, dilation)
    _dy(op, dy, y_shape, x, weight)
    need_dx = _args.flag(op, "need_dx", need_dx)
    out = _outs(op, be, out, [(x.shape, x.dtype) if need_dx else None,
                              (weight.shape, x.dtype), ((y_shape[1],), x.dtype)],
                reads={"dy": dy, "x": x, "weight": weight})
    return be.conv_transpose2d_backward(dy, x, weight, s, p, g, d, need_dx, out=out)


def _conv1d_args(op, x, weight, stride, padding, dilation, groups):
    """conv1d's arguments checked in 1-D terms, then as the 2-D convolution that computes
    it: (N, C, L) viewed as (N, C, 1, L). Returns the 2-D stride, padding, dilation, groups
    and the 1-D output shape."""
    _ndim(op, "x", x, 3, "(N, C, L)")
    _ndim(op, "weight", weight, 3, "(out_channels, in_channels/groups, k)")
    _nonempty_batch(op, "x", x)
    groups = _groups(op, x, weight, groups)
    s, d = _args.single(op, "stride", stride, 1), _args.single(op, "dilation", dilation, 1)
    k, length = weight.shape[2], x.shape[2]
    pads = _args.line_padding(op, padding)
    if isinstance(pads, str):
        pads = _padding(_args.padding(op, pads, (1, s)), (1, length), (1, k), (1, s),
                        (1, d))[2:]
    extent = d * (k - 1) + 1
    if max(extent, length + sum(pads)) > _args.INT_MAX:
        raise ValueError(f"{op}: the padded input ({length + sum(pads):,}) or the dilated "
                         f"kernel ({extent:,}) exceeds {_args.INT_MAX:,}, the kernels' C int "
                         f"(x.shape={tuple(x.shape)}, weight.shape={tuple(weight.shape)})")
    if extent > length + sum(pads):
        raise ValueError(f"{op}: the kernel (size {k}, extent {extent}) is larger than the "
                         f"padded input (length {length} padded by {pads}); x.shape="
                         f"{tuple(x.shape)}, weight.shape={tuple(weight.shape)}")
    ol = backends.output_size(length, k, s, pads, d)
    return (1, s), (0, 0) + pads, (1, d), groups, (x.shape[0], weight.shape[0], ol)


def _as_2d(be, a):
    """(N, C, L) as the view (N, C, 1, L), where be computes (None stays None; out= arrays
    of other libraries become the backend's views of them)."""
    if a is None:
        return None
    a = be.asarray(a)
    return a.reshape(tuple(a.shape[:2]) + (1,) + tuple(a.shape[2:]))


def conv1d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *, backend=None,
           out=None):
    """1-D convolution: (N, C, L) -> (N, K, OL), weight (K, C/groups, k); padding an int, a
    (left, right) pair or a mode as for conv2d. The 2-D kernels compute it, on views."""
    op = "conv1d"
    be = _backend(op, backend, {"x": x, "weight": weight, "bias": bias})
    x, weight, bias = _floats(op, be, ("bias",), x=x, weight=weight, bias=bias)
    s, p, d, g, y_shape = _conv1d_args(op, x, weight, stride, padding, dilation, groups)
    _bias(op, bias, weight.shape[0], weight)
    out = _out(op, be, out, y_shape, x.dtype, reads={"x": x, "weight": weight, "bias": bias})
    be.conv2d(_as_2d(be, x), _as_2d(be, weight), bias, s, p, d, g, out=_as_2d(be, out))
    return out


def conv1d_backward(dy, x, weight, stride=1, padding=0, dilation=1, need_dx=True, groups=1, *,
                    backend=None, out=None):
    """Gradients of conv1d: (dx or None, dweight, dbias) (arguments in conv2d_backward's
    order)."""
    op = "conv1d_backward"
    be = _backend(op, backend, {"dy": dy, "x": x, "weight": weight})
    dy, x, weight = _floats(op, be, dy=dy, x=x, weight=weight)
    s, p, d, g, y_shape = _conv1d_args(op, x, weight, stride, padding, dilation, groups)
    _dy(op, dy, y_shape, x, weight)
    need_dx = _args.flag(op, "need_dx", need_dx)
    out = _outs(op, be, out, [(x.shape, x.dtype) if need_dx else None,
                              (weight.shape, x.dtype), ((weight.shape[0],), x.dtype)],
                reads={"dy": dy, "x": x, "weight": weight})
    be.conv2d_backward(_as_2d(be, dy), _as_2d(be, x), _as_2d(be, weight), s, p, d, g,
                       need_dx, out=(_as_2d(be, out[0]), _as_2d(be, out[1]), out[2]))
    return out


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
    return tuple(o.reshape(shape) for o in out) if isinstance(out, tuple) else out.reshape(shape)


def _shown(shape, line):
    """A shape as the caller sees it: a 1-D op's (N, C, 1, L) as (N, C, L)."""
    shape = tuple(shape)
    return shape[:2] + shape[3:] if line else shape


def _shape3(op, name, shape):
    try:
        shape = tuple(_int(op, name, s, 1) for s in shape)
    except TypeError:
        raise TypeError(f"{op}: {name} must be a tuple of 3 ints, got {shape!r}") from None
    if len(shape) != 3:
        raise ValueError(f"{op}: {name} must be (N, C, L), got {shape!r}")
    return shape[:2] + (1,) + shape[2:]


def max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, *,
               backend=None, out=None):
    """Max over each window -> (y, indices); indices are int32 arg-max positions h * W + w
    within each input plane (stride defaults to kernel_size; padding never wins; ceil_mode
    rounds the output size up, as PyTorch)."""
    return _max_pool("max_pool2d", backend, out, x, kernel_size, stride, padding, dilation,
                     ceil_mode)


def max_pool1d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, *,
               backend=None, out=None):
    """max_pool2d along L of (N, C, L) -> (y, indices in L)."""
    return _max_pool("max_pool1d", backend, out, x, kernel_size, stride, padding, dilation,
                     ceil_mode)


def _max_pool(op, backend, out, x, kernel_size, stride, padding, dilation, ceil_mode):
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
    out = _outs(op, be, out, [(shown, x.dtype), (shown, np.dtype(np.int32))], reads=reads)
    be.max_pool2d(x, k, s, p, d, out=_viewed(out, y_shape, line))
    return out


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


# ---------------------------------------------------------------- upsampling
# PyTorch's F.interpolate(mode="nearest" | "bilinear") on (N, C, H, W). The output's
# (h, w) comes from exactly one of scale_factor (floor(H * factor), as PyTorch) and size;
# each backend gets PyTorch's scale per axis, and the coordinate rules that use it are
# in backends/coordinates.py.


def _resized(op, shape, scale_factor, size):
    """(output (h, w), the scale factors or None) for an input of shape (N, C, H, W), from
    exactly one of scale_factor and size; an output without pixels, or larger than the
    kernels can index, is refused before anything is allocated."""
    factors, hw = _args.resize(op, scale_factor, size)
    if min(shape[2:]) < 1:
        raise ValueError(f"{op}: the input has no pixels to resample (shape {tuple(shape)})")
    if hw is None:
        hw = tuple(math.floor(min(n * f, 2.0**62)) for n, f in zip(shape[2:], factors))
        if min(hw) < 1:
            raise ValueError(f"{op}: scale_factor={scale_factor!r} leaves no pixels of an "
                             f"input of {shape[2]}x{shape[3]} (output {hw[0]}x{hw[1]})")
    elements = shape[0] * shape[1] * hw[0] * hw[1]
    if max(hw) > _args.INT_MAX or elements > _args.INT_MAX:
        raise ValueError(f"{op}: the output of {shape[0]}x{shape[1]}x{hw[0]}x{hw[1]} "
                         f"({elements:,} values, from scale_factor={scale_factor!r}, "
                         f"size={size!r}) is more than the kernels index ({_args.INT_MAX:,})")
    return hw, factors


def _scales(shape, hw, factors, align_corners, dtype):
    """PyTorch's scale per axis (align_corners None: nearest's rule)."""
    return tuple(coordinates.upsample_scale(shape[2 + a], hw[a], factors and factors[a],
                                            align_corners, dtype) for a in range(2))


def _resample_args(op, be, x, scale_factor, size):
    (x,) = _floats(op, be, x=x)
    _ndim(op, "x", x, 4, "(N, C, H, W)")
    _nonempty_batch(op, "x", x)
    hw, factors = _resized(op, x.shape, scale_factor, size)
    return x, hw, factors


def _resample_backward_args(op, be, dy, input_shape, scale_factor, size):
    (dy,) = _floats(op, be, dy=dy)
    _ndim(op, "dy", dy, 4, "(N, C, OH, OW)")
    shape = _shape4(op, "input_shape", input_shape)
    hw, factors = _resized(op, shape, scale_factor, size)
    if tuple(dy.shape) != shape[:2] + hw:
        raise ValueError(f"{op}: dy must have the output's shape {shape[:2] + hw} for "
                         f"input_shape={shape}, scale_factor={scale_factor!r}, size={size!r}; "
                         f"got {tuple(dy.shape)}")
    return dy, shape, hw, factors


def upsample_nearest2d(x, scale_factor=None, size=None, *, backend=None, out=None):
    """Nearest-neighbour resampling, PyTorch's F.interpolate(mode="nearest"):
    (N, C, H, W) -> (N, C, OH, OW), OH = floor(H * scale_factor) or size[0].

    Output pixel (i, j) copies input pixel (min(floor(i * s_h), H - 1), likewise j), with
    s = 1 / scale_factor if given, else H / OH, in float32 as PyTorch computes it, so
    non-integer factors and downsampling (factors below 1) pick PyTorch's pixels. An
    integer factor repeats each pixel into a block. scale_factor and size: a number or
    an (h, w) pair. ONNX Resize with mode="nearest", coordinate_transformation_mode=
    "asymmetric" and nearest_mode="floor" is this op (its scales are scale_factor, its
    sizes size); its other nearest modes are not covered.
    """
    op = "upsample_nearest2d"
    be = _backend(op, backend, {"x": x})
    x, hw, factors = _resample_args(op, be, x, scale_factor, size)
    out = _out(op, be, out, x.shape[:2] + hw, x.dtype, reads={"x": x})
    return be.upsample_nearest2d(x, _scales(x.shape, hw, factors, None, x.dtype), out=out)


def _legacy_factor(value):
    """True for an int or an (h, w) pair: the scale_factor of the backward's earlier form."""
    return (isinstance(value, numbers.Integral) and not isinstance(value, bool)) or (
        isinstance(value, (tuple, list)) and len(value) == 2)


def upsample_nearest2d_backward(dy, input_shape, scale_factor=None, size=None, *,
                                backend=None, out=None):
    """The gradient of upsample_nearest2d(x, scale_factor, size) for x of input_shape:
    each input pixel collects the error of the output pixels that copied it.

    The earlier form upsample_nearest2d_backward(dy, scale_factor) for integer factors
    still works: an int or an (h, w) pair in input_shape's place is that scale_factor,
    and the input's shape is dy's divided by it.
    """
    op = "upsample_nearest2d_backward"
    be = _backend(op, backend, {"dy": dy})
    if _legacy_factor(input_shape) and scale_factor is None and size is None:
        (dy,) = _floats(op, be, dy=dy)
        _ndim(op, "dy", dy, 4, "(N, C, H, W)")
        _nonempty_batch(op, "dy", dy)
        scale_factor = _args.pair(op, "scale_factor", input_shape, 1)
        n, c, h, w = dy.shape
        if h % scale_factor[0] or w % scale_factor[1]:
            raise ValueError(f"{op}: dy's height and width ({h}, {w}) must be multiples of "
                             f"scale_factor {scale_factor}")
        input_shape = (n, c, h // scale_factor[0], w // scale_factor[1])
    dy, shape, hw, factors = _resample_backward_args(op, be, dy, input_shape, scale_factor,
                                                     size)
    out = _out(op, be, out, shape, dy.dtype, reads={"dy": dy})
    return be.upsample_nearest2d_backward(dy, _scales(shape, hw, factors, None, dy.dtype),
                                          out=out)


def upsample_bilinear2d(x, scale_factor=None, size=None, align_corners=False, *,
                        backend=None, out=None):
    """Bilinear resampling, PyTorch's F.interpolate(mode="bilinear", align_corners=...):
    (N, C, H, W) -> (N, C, OH, OW), OH = floor(H * scale_factor) or size[0].

    Along each axis, output pixel d reads the input at src = s * (d + 0.5) - 0.5, clamped
    at 0 (align_corners=False: the half-pixel rule, s = 1 / scale_factor if given, else
    H / OH), or at src = d * (H - 1) / (OH - 1) (align_corners=True: the corner pixels
    meet), and mixes the two pixels around src linearly (in the data's precision, as
    PyTorch). Downsampling (factors below 1) reads two pixels per output pixel, without
    antialiasing, as PyTorch. ONNX Resize with mode="linear" maps onto it:
    coordinate_transformation_mode="half_pixel" is align_corners=False (so is
    "pytorch_half_pixel" wherever the output is longer than 1), "align_corners" is
    align_corners=True; "asymmetric" and the other modes are not covered.
    """
    op = "upsample_bilinear2d"
    be = _backend(op, backend, {"x": x})
    align_corners = _args.flag(op, "align_corners", align_corners)
    x, hw, factors = _resample_args(op, be, x, scale_factor, size)
    out = _out(op, be, out, x.shape[:2] + hw, x.dtype, reads={"x": x})
    scales = _scales(x.shape, hw, factors, align_corners, x.dtype)
    return be.upsample_bilinear2d(x, scales, align_corners, out=out)


def upsample_bilinear2d_backward(dy, input_shape, scale_factor=None, size=None,
                                 align_corners=False, *, backend=None, out=None):
    """The gradient of upsample_bilinear2d(x, scale_factor, size, align_corners) for x of
    input_shape: each input pixel gathers the error of the output pixels that read it,
    times the weights they read it with."""
    op = "upsample_bilinear2d_backward"
    be = _backend(op, backend, {"dy": dy})
    align_corners = _args.flag(op, "align_corners", align_corners)
    dy, shape, hw, factors = _resample_backward_args(op, be, dy, input_shape, scale_factor,
                                                     size)
    out = _out(op, be, out, shape, dy.dtype, reads={"dy": dy})
    scales = _scales(shape, hw, factors, align_corners, dy.dtype)
    return be.upsample_bilinear2d_backward(dy, scales, align_corners, out=out)


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


def linear_backward(dy, x, weight, need_dx=True, *, backend=None, out=None):
    """Gradients of linear: (dx or None, dweight, dbias)."""
    op = "linear_backward"
    be = _backend(op, backend, {"dy": dy, "x": x, "weight": weight})
    dy, x, weight = _floats(op, be, dy=dy, x=x, weight=weight)
    _linear_args(op, x, weight)
    if tuple(dy.shape) != (x.shape[0], weight.shape[0]):
        raise ValueError(f"{op}: dy must have shape {(x.shape[0], weight.shape[0])} "
                         f"(x.shape={tuple(x.shape)}, weight.shape={tuple(weight.shape)}), "
                         f"got {tuple(dy.shape)}")
    need_dx = _args.flag(op, "need_dx", need_dx)
    out = _outs(op, be, out, [(x.shape, x.dtype) if need_dx else None, (weight.shape, x.dtype),
                              ((weight.shape[0],), x.dtype)],
                reads={"dy": dy, "x": x, "weight": weight})
    return be.linear_backward(dy, x, weight, need_dx, out=out)


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


# ---------------------------------------------------------------- batch normalisation


def _channels(op, name, a, x):
    """a must hold one value per channel of x (axis 1)."""
    if tuple(a.shape) != (x.shape[1],):
        raise ValueError(f"{op}: {name} must have shape ({x.shape[1]},) for x.shape="
                         f"{tuple(x.shape)}, got {tuple(a.shape)}")
    return a


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
    for name, a in (("gamma", gamma), ("beta", beta)):
        _channels(op, name, a, x)
    if (running_mean is None) != (running_var is None):
        raise ValueError(f"{op}: give both running_mean and running_var, or neither")
    training = _args.flag(op, "training", training)
    if not training and running_mean is None:
        raise ValueError(f"{op}: evaluation (training=False) needs running_mean and running_var")
    reads = {"x": x, "gamma": gamma, "beta": beta}
    stats = {"running_mean": running_mean, "running_var": running_var}
    if training and running_mean is not None:   # updated in place: checked like out=
        for name, a in stats.items():
            reads[name] = _checked_out(op, be, a, (c,), x.dtype, name)
        _no_clash(op, stats, {"x": x, "gamma": gamma, "beta": beta})
    elif running_mean is not None:              # only read
        _, *stats = _floats(op, be, x=x, **stats)
        for name, a in zip(("running_mean", "running_var"), stats):
            reads[name] = _channels(op, name, a, x)
    running_mean, running_var = reads.get("running_mean"), reads.get("running_var")
    if training and x.size // max(c, 1) < 2:
        raise ValueError(f"{op}: training needs more than one value per channel "
                         f"(x.shape={tuple(x.shape)})")
    momentum, eps = _arg(op, "momentum", momentum), _arg(op, "eps", eps)
    out = _outs(op, be, out, [(x.shape, x.dtype), ((c,), x.dtype), ((c,), x.dtype)], reads)
    return be.batch_norm(x, gamma, beta, running_mean, running_var, momentum, eps, training,
                         out=out)


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
        _channels(op, name, a, x)
    out = _outs(op, be, out, [(x.shape, x.dtype), ((c,), x.dtype), ((c,), x.dtype)],
                reads={"dy": dy, "x": x, "gamma": gamma, "mean": mean, "invstd": invstd})
    return be.batch_norm_backward(dy, x, gamma, mean, invstd,
                                  _args.flag(op, "training", training), out=out)


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
    out = _out(op, be, out, logits.shape, logits.dtype,
               reads={"logits": logits, "labels": labels})
    return be.softmax_cross_entropy(logits, labels, out=out)


def softmax_cross_entropy_backward(probs, labels, *, backend=None, out=None):
    """d(mean loss)/d(logits) = (probs - onehot(labels)) / N. On the GPU a label outside
    [0, C) gives a row of NaN instead of an error (the forward op reports it)."""
    op = "softmax_cross_entropy_backward"
    be = _backend(op, backend, {"probs": probs, "labels": labels})
    (probs,) = _floats(op, be, probs=probs)
    labels = _labels(op, be, probs, labels)
    out = _out(op, be, out, probs.shape, probs.dtype, reads={"probs": probs, "labels": labels})
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


def _pred_target_backward(op, backend, out, pred, target, names):
    """The gradient of an elementwise loss with respect to its predictions."""
    be, pred, target = _pred_target(op, backend, pred, target, names)
    out = _out(op, be, out, pred.shape, pred.dtype, reads=dict(zip(names, (pred, target))))
    return getattr(be, op)(pred, target, out=out)


def bce_with_logits_backward(logits, targets, *, backend=None, out=None):
    return _pred_target_backward("bce_with_logits_backward", backend, out, logits, targets,
                                 ("logits", "targets"))


def bce(probs, targets, *, backend=None):
    """Mean binary cross-entropy of probabilities against targets (logs clamped at -100)."""
    op = "bce"
    be, probs, targets = _pred_target(op, backend, probs, targets, ("probs", "targets"))
    return be.bce(probs, targets)


def bce_backward(probs, targets, *, backend=None, out=None):
    return _pred_target_backward("bce_backward", backend, out, probs, targets,
                                 ("probs", "targets"))


def mse(pred, target, *, backend=None):
    """Mean squared error over all elements."""
    be, pred, target = _pred_target("mse", backend, pred, target, ("pred", "target"))
    return be.mse(pred, target)


def mse_backward(pred, target, *, backend=None, out=None):
    return _pred_target_backward("mse_backward", backend, out, pred, target, ("pred", "target"))


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
        into = _checked_out(op, be, into, (1,), np.dtype(np.int64), "into",
                            reads={"scores": scores, "labels": labels})
    return be.count_correct(scores, labels, into=into)


# ---------------------------------------------------------------- optimizer steps
# In-place updates of a parameter and its state arrays (PyTorch's formulas).


def _step_arrays(op, backend, param, grad, optional=(), **state):
    """param and the state arrays are updated in place, so each is checked like an out=
    array of param's shape and float dtype, sharing memory with no other; grad is read.
    Only the state arrays named in optional may be None."""
    be = _backend(op, backend, {"param": param, "grad": grad, **state})
    if not be.is_array(param) or _dtype(param) not in FLOAT_DTYPES:
        got = getattr(param, "dtype", type(param).__name__)
        raise TypeError(f"{op}: param is updated in place, so it must be a float32 or float64 "
                        f"array on {be.DEVICE}, got {got}")
    shape, dtype = tuple(param.shape), _dtype(param)
    (grad,) = _floats(op, be, grad=grad)
    if tuple(grad.shape) != shape or grad.dtype != dtype:
        raise ValueError(f"{op}: grad must have param's shape {shape} and dtype {dtype}, got "
                         f"shape {tuple(grad.shape)} and dtype {grad.dtype}")
    written = {"param": param, **state}
    for name, a in written.items():
        if a is None and name not in optional:
            raise TypeError(f"{op}: {name} is updated in place, so it must be an array, got None")
        if a is not None:
            _checked_out(op, be, a, shape, dtype, name)
    _no_clash(op, written, {"grad": grad})
    return be, grad


def _hyper(op, name, value):
    return _args.hyperparameter(op, name, value)


def sgd_step(param, grad, velocity=None, lr=0.01, momentum=0.0, nesterov=False,
             weight_decay=0.0, *, backend=None):
    op = "sgd_step"
    momentum = _hyper(op, "momentum", momentum)
    if momentum and velocity is None:
        raise ValueError(f"{op}: momentum={momentum} needs a velocity array")
    nesterov = _args.nesterov(op, nesterov, momentum)
    be, grad = _step_arrays(op, backend, param, grad, ("velocity",), velocity=velocity)
    be.sgd_step(param, grad, velocity, _hyper(op, "lr", lr), momentum, nesterov,
                _hyper(op, "weight_decay", weight_decay))


def adam_step(param, grad, m, v, step, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8,
              weight_decay=0.0, *, backend=None):
    op = "adam_step"
    be, grad = _step_arrays(op, backend, param, grad, m=m, v=v)
    be.adam_step(param, grad, m, v, _int(op, "step", step, 1), _hyper(op, "lr", lr),
                 _hyper(op, "beta1", beta1), _hyper(op, "beta2", beta2), _hyper(op, "eps", eps),
                 _hyper(op, "weight_decay", weight_decay))


def adagrad_step(param, grad, sum_sq, step, lr=1e-2, lr_decay=0.0, eps=1e-10,
                 weight_decay=0.0, *, backend=None):
    op = "adagrad_step"
    be, grad = _step_arrays(op, backend, param, grad, sum_sq=sum_sq)
    be.adagrad_step(param, grad, sum_sq, _int(op, "step", step, 1), _hyper(op, "lr", lr),
                    _hyper(op, "lr_decay", lr_decay), _hyper(op, "eps", eps),
                    _hyper(op, "weight_decay", weight_decay))


def rmsprop_step(param, grad, square_avg, buf=None, lr=1e-2, alpha=0.99, eps=1e-8,
                 weight_decay=0.0, momentum=0.0, *, backend=None):
    op = "rmsprop_step"
    momentum = _hyper(op, "momentum", momentum)
    if momentum and buf is None:
        raise ValueError(f"{op}: momentum={momentum} needs a buf array")
    be, grad = _step_arrays(op, backend, param, grad, ("buf",), square_avg=square_avg, buf=buf)
    be.rmsprop_step(param, grad, square_avg, buf, _hyper(op, "lr", lr), _hyper(op, "alpha", alpha),
                    _hyper(op, "eps", eps), _hyper(op, "weight_decay", weight_decay), momentum)


def adadelta_step(param, grad, square_avg, acc_delta, lr=1.0, rho=0.9, eps=1e-6,
                  weight_decay=0.0, *, backend=None):
    op = "adadelta_step"
    be, grad = _step_arrays(op, backend, param, grad, square_avg=square_avg,
                            acc_delta=acc_delta)
    be.adadelta_step(param, grad, square_avg, acc_delta, _hyper(op, "lr", lr),
                     _hyper(op, "rho", rho), _hyper(op, "eps", eps),
                     _hyper(op, "weight_decay", weight_decay))
