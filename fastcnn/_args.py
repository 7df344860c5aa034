"""Argument rules, in one place for everything that takes them.

``fastcnn.functional`` checks an op's arguments with these; a layer's constructor,
an optimizer's and the DataLoader's check theirs with the same functions, so that
``nn.MaxPool2d(2, stride=0)`` is refused at once, in the words
``F.max_pool2d(x, 2, stride=0)`` would use. ``where`` names the caller in every
message: an op (``"conv2d"``) or a class (``"MaxPool2d"``).

Sizes are bounded as well as checked: the compiled kernels index with C ``int``,
so no size argument and no array may exceed ``INT_MAX`` (elements), and no result
may need more memory than the machine has (it would be swapped to death rather
than refused).
"""

import math
import numbers
import os

import numpy as np

INT_MAX = 2**31 - 1   # the kernels' C int: sizes, strides, indices and element counts


def integer(where, name, value, minimum, maximum=INT_MAX):
    """An int (not a bool) in [minimum, maximum]; maximum=None for no bound."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{where}: {name} must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{where}: {name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{where}: {name} must be <= {maximum:,} (the kernels' C int), "
                         f"got {value:,}")
    return int(value)


def pair(where, name, value, minimum, maximum=INT_MAX):
    """An int or an (h, w) pair of ints, each in [minimum, maximum], as a tuple."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{where}: {name} must be an int or a pair (h, w), got {value!r}")
        return tuple(integer(where, name, v, minimum, maximum) for v in value)
    v = integer(where, name, value, minimum, maximum)
    return (v, v)


def single(where, name, value, minimum, maximum=INT_MAX):
    """An int, or a 1-tuple of one (PyTorch's form of a 1-D op's sizes)."""
    if isinstance(value, (tuple, list)):
        if len(value) != 1:
            raise ValueError(f"{where}: {name} must be an int, got {value!r}")
        (value,) = value
    return integer(where, name, value, minimum, maximum)


def number(where, name, value, low=-math.inf, high=math.inf, high_open=False):
    """A real number (not a bool, not NaN) in [low, high] ([low, high) with high_open)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{where}: {name} must be a number, got {value!r}")
    try:
        as_float, shown = float(value), value
    except OverflowError:   # an int past the float range (10**400)
        as_float = math.inf if value > 0 else -math.inf   # (copysign would overflow too)
        shown = f"an int of {len(str(abs(value)))} digits"
    if not (low <= as_float and (as_float < high if high_open else as_float <= high)):
        bound = f"[{low}, {high})" if high_open else f"[{low}, {high}]"
        raise ValueError(f"{where}: {name} must be in {bound}, got {shown}")
    return as_float


def flag(where, name, value):
    """True or False (a NumPy bool too); not 0, 1, None or a string, which hide mistakes."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{where}: {name} must be True or False, got {value!r}")
    return bool(value)


# ---------------------------------------------------------------- named rules
# The arguments that an op and the layer calling it both take: each name's rule once.

ARGS = {
    "kernel_size": (pair, 1), "stride": (pair, 1), "dilation": (pair, 1),
    "output_padding": (pair, 0), "groups": (integer, 1), "pool_size": (integer, 1),
    "dim": (integer, -INT_MAX),                     # an axis; the op checks it against x
    "p": (number, 0, 1, True),                      # dropout: p = 1 would drop everything
    "negative_slope": (number,), "alpha": (number, 0),
    "momentum": (number, 0, 1), "eps": (number, 0),  # batch norm's
}

# The optimizers' hyperparameters (the step ops' and the optimizer classes'), PyTorch's ranges.
HYPERPARAMETERS = {
    "lr": (0,), "momentum": (0,), "weight_decay": (0,), "eps": (0,), "lr_decay": (0,),
    "beta1": (0, 1, True), "beta2": (0, 1, True), "alpha": (0, 1), "rho": (0, 1),
}


def arg(where, name, value):
    """value checked and normalised by the rule for the op argument called name (ARGS)."""
    rule, *bounds = ARGS[name]
    return rule(where, name, value, *bounds)


def hyperparameter(where, name, value):
    """An optimizer hyperparameter checked against its range (HYPERPARAMETERS)."""
    return number(where, name, value, *HYPERPARAMETERS[name])


def nesterov(where, value, momentum):
    value = flag(where, "nesterov", value)
    if value and not momentum:
        raise ValueError(f"{where}: nesterov needs momentum > 0")
    return value


PADDING_MODES = ("valid", "same", "same_upper", "same_lower")


def padding(where, value, stride):
    """Padding as (top, bottom, left, right), from an int (every side), an (h, w) pair
    (both sides of each axis) or a (top, bottom, left, right) tuple; or a mode of
    PADDING_MODES (lower-cased), which functional resolves from the input's size:
    "valid" (none), "same" (PyTorch's, stride 1 only: the output keeps the input's
    size), "same_upper" / "same_lower" (ONNX's auto_pad)."""
    if isinstance(value, str):
        mode = value.lower()
        if mode not in PADDING_MODES:
            raise ValueError(f"{where}: padding must be an int, a pair, a 4-tuple or one of "
                             f"{PADDING_MODES}, got {value!r}")
        if mode == "same" and tuple(stride) != (1, 1):
            raise ValueError(f"{where}: padding='same' needs stride 1 (as in PyTorch), got "
                             f"stride={tuple(stride)}; 'same_upper' is ONNX's rule for strides")
        return mode
    if isinstance(value, (tuple, list)) and len(value) == 4:
        return tuple(integer(where, "padding", v, 0) for v in value)
    if isinstance(value, (tuple, list)) and len(value) != 2:
        raise ValueError(f"{where}: padding must be an int, (h, w), (top, bottom, left, right) "
                         f"or one of {PADDING_MODES}, got {value!r}")
    ph, pw = pair(where, "padding", value, 0)
    return (ph, ph, pw, pw)


def conv_window(where, stride, padding_, dilation):
    """(stride, padding, dilation) of a convolution: (h, w) pairs and padding()'s."""
    s = arg(where, "stride", stride)
    return s, padding(where, padding_, s), arg(where, "dilation", dilation)


def transposed_window(where, stride, padding_, output_padding, dilation):
    """(stride, padding, output_padding, dilation) of a transposed convolution. Its padding
    crops the output, so of the modes only "valid" (none) means something; output_padding
    (added at the bottom and right) is below stride or dilation on each axis (PyTorch's)."""
    s, d = arg(where, "stride", stride), arg(where, "dilation", dilation)
    if isinstance(padding_, str) and padding_.lower() != "valid":
        raise ValueError(f"{where}: padding={padding_!r} is not supported for a transposed "
                         f"convolution; give the padding as an int, (h, w) or "
                         f"(top, bottom, left, right) (ONNX's pads), or 'valid'")
    p = padding(where, padding_, s)
    p = (0, 0, 0, 0) if isinstance(p, str) else p
    extra = arg(where, "output_padding", output_padding)
    if any(extra[a] >= max(s[a], d[a]) for a in range(2)):
        raise ValueError(f"{where}: output_padding {extra} must be smaller than stride {s} or "
                         f"dilation {d} along each axis (as in PyTorch)")
    return s, p, extra, d


def line_padding(where, value):
    """A 1-D op's padding as (left, right), from an int, a 1-tuple or a (left, right) pair;
    a mode of PADDING_MODES is returned lower-cased (the caller checks it with its stride)."""
    if isinstance(value, str):
        if value.lower() not in PADDING_MODES:
            raise ValueError(f"{where}: padding must be an int, a pair (left, right) or one of "
                             f"{PADDING_MODES}, got {value!r}")
        return value.lower()
    if isinstance(value, (tuple, list)) and len(value) == 2:
        return tuple(integer(where, "padding", v, 0) for v in value)
    if isinstance(value, (tuple, list)) and len(value) != 1:
        raise ValueError(f"{where}: padding must be an int, a pair (left, right) or one of "
                         f"{PADDING_MODES}, got {value!r}")
    return (single(where, "padding", value, 0),) * 2


def pool_window(where, kernel_size, stride, padding_, dilation=1):
    """(kernel_size, stride, padding, dilation) of a pooling window; stride defaults to
    kernel_size."""
    k = arg(where, "kernel_size", kernel_size)
    s = k if stride is None else arg(where, "stride", stride)
    return k, s, pool_padding(where, padding(where, padding_, s), k), arg(where, "dilation",
                                                                          dilation)


def line_window(where, kernel_size, stride, padding_, dilation=1):
    """A 1-D pool's (kernel_size, stride, padding, dilation) as the 2-D arguments of the
    same pool of a (1, L) image (ints or 1-tuples; padding also (left, right) or a mode),
    which pool_window then checks."""
    k = (1, single(where, "kernel_size", kernel_size, 1))
    s = None if stride is None else (1, single(where, "stride", stride, 1))
    p = line_padding(where, padding_)
    return k, s, p if isinstance(p, str) else (0, 0) + p, (1, single(where, "dilation",
                                                                     dilation, 1))


def divisor(where, count_include_pad, divisor_override):
    """An average pool's (count_include_pad, divisor_override or None)."""
    include = flag(where, "count_include_pad", count_include_pad)
    if divisor_override is None:
        return include, None
    return include, integer(where, "divisor_override", divisor_override, 1)


def output_size(where, value, ndim):
    """An adaptive pool's output size: an int, or a tuple of ndim entries, each an int or
    None (the input's size there, which the op fills in)."""
    if not isinstance(value, (tuple, list)):
        return (integer(where, "output_size", value, 1),) * ndim
    if len(value) != ndim:
        raise ValueError(f"{where}: output_size must be an int or a tuple of {ndim}, got "
                         f"{value!r}")
    return tuple(None if v is None else integer(where, "output_size", v, 1) for v in value)


def scale_factors(where, value):
    """A resampling scale_factor as a pair of positive finite floats (from a number or a
    pair)."""
    values = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(values) != 2:
        raise ValueError(f"{where}: scale_factor must be a number or a pair (h, w), got "
                         f"{value!r}")
    for v in values:
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real):
            raise TypeError(f"{where}: scale_factor must be a number or a pair of numbers, "
                            f"got {value!r}")
        if not (math.isfinite(v) and v > 0):
            raise ValueError(f"{where}: scale_factor must be positive and finite, got "
                             f"{value!r}")
    return tuple(float(v) for v in values)


def resize(where, scale_factor, size):
    """Exactly one of a resampling's scale_factor and size: (the factors or None, the
    (h, w) size or None)."""
    if (scale_factor is None) == (size is None):
        raise ValueError(f"{where}: give exactly one of scale_factor and size, got "
                         f"scale_factor={scale_factor!r} and size={size!r}")
    if size is not None:
        return None, pair(where, "size", size, 1)
    return scale_factors(where, scale_factor), None


def pool_padding(where, pads, kernel):
    """A pooling window's pads (top, bottom, left, right), at most half the kernel each (a
    window of only padding has no value); a mode passes (functional checks what it
    resolves to)."""
    if not isinstance(pads, str) and (max(pads[:2]) > kernel[0] // 2
                                      or max(pads[2:]) > kernel[1] // 2):
        raise ValueError(f"{where}: padding {pads} (top, bottom, left, right) must be at most "
                         f"half of kernel_size {kernel}")
    return pads


# ---------------------------------------------------------------- sizes


def _physical_memory():
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):   # not a POSIX system: no bound known
        return None


HOST_MEMORY = _physical_memory()


def fits(where, name, shape, dtype, on_host=True):
    """A clear error, before anything is allocated, for an array of shape the kernels
    cannot index (more than INT_MAX elements) or, on the host, larger than memory (a
    ValueError in both cases, like every refused argument)."""
    elements = math.prod(shape)
    if elements > INT_MAX:
        raise ValueError(f"{where}: {name} has shape {tuple(shape)}, {elements:,} elements: "
                         f"more than the {INT_MAX:,} the kernels can index with C int")
    if not on_host or HOST_MEMORY is None or elements * 16 <= HOST_MEMORY:
        return   # (no dtype has more than 16 bytes: most calls end here, cheaply)
    size = elements * np.dtype(dtype).itemsize
    if size > HOST_MEMORY:
        raise ValueError(f"{where}: {name} of shape {tuple(shape)} would need "
                         f"{size / 2**30:,.1f} GiB, more than this machine's "
                         f"{HOST_MEMORY / 2**30:,.1f} GiB of memory")


# ---------------------------------------------------------------- arrays to write into


def c_contiguous(a):
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


def writeable(a):
    """False for a read-only array: flags.writeable (NumPy, np.memmap opened "r"), or the
    read-only bit of a CUDA array's interface."""
    interface = getattr(a, "__cuda_array_interface__", None)
    if interface is not None:
        return not interface["data"][1]
    flags = getattr(a, "flags", None)
    return bool(getattr(flags, "writeable", True))


def _span(a):
    """(first byte, one past the last) of the memory a spans, from its array interface
    (NumPy's, or a CUDA array's: device addresses)."""
    interface = getattr(a, "__cuda_array_interface__", None)
    if interface is None:
        interface = a.__array_interface__   # NumPy; the CUDA simulator's arrays too
    start, shape = interface["data"][0], interface["shape"]
    itemsize = np.dtype(interface["typestr"]).itemsize
    if 0 in shape:
        return start, start
    strides = interface.get("strides")
    if strides is None:
        return start, start + math.prod(shape) * itemsize
    low = sum((n - 1) * s for n, s in zip(shape, strides) if s < 0)
    high = sum((n - 1) * s for n, s in zip(shape, strides) if s > 0)
    return start + low, start + high + itemsize


def clash(written, read, in_place=False):
    """The first pair of names (w, other) with w an array of written and other one of
    written or read, that share memory; None if none do. in_place: a written array may
    be a read one itself (an elementwise op). Each array's extent is found once."""
    spans, earlier = {}, []
    for w, a in written.items():
        if a is None:
            continue
        for o, b in earlier:
            if _meet(a, b, spans):
                return w, o
        earlier.append((w, a))
        for o, b in read.items():
            if b is not None and _meet(a, b, spans) and not (
                    in_place and _extent(a, spans) == _extent(b, spans)):
                return w, o
    return None


def _meet(a, b, spans):
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        return np.may_share_memory(a, b)   # bounds only: exact for contiguous arrays
    (a0, a1), (b0, b1) = _extent(a, spans), _extent(b, spans)
    return a0 < a1 and b0 < b1 and a0 < b1 and b0 < a1


def _extent(a, spans):
    """_span(a), computed once per clash() (spans: by id; the arrays live meanwhile)."""
    if id(a) not in spans:
        spans[id(a)] = _span(a)
    return spans[id(a)]
