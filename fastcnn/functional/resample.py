"""Resampling: nearest and bilinear upsampling by size or scale factor, PyTorch's
coordinate rules (backends/coordinates.py), forward and backward."""

import math
import numbers

from .. import _args
from ..backends import coordinates
from ._checks import _backend, _floats, _ndim, _nonempty_batch, _out, _shape4


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
