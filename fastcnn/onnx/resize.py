"""Resize (opset 10 on) and Upsample (opsets 7 to 9) as fastcnn's Upsample.

fastcnn upsamples by integer factors, nearest neighbour: y[i] = x[floor(i / s)]. ONNX
describes a resize by the source coordinate of each output pixel and a rounding rule;
for an integer factor s, output pixel i = q s + r (0 <= r < s) maps to

- asymmetric: i / s = q + r/s, which rounds down ("floor") to q;
- half_pixel, pytorch_half_pixel: (i + 0.5) / s - 0.5 = q + (r + 0.5)/s - 0.5, less
  than 0.5 away from q (never exactly), which rounds to nearest (round_prefer_floor,
  round_prefer_ceil) as q; floor and ceil can miss it by one;
- tf_half_pixel_for_nn: (i + 0.5) / s = q + (r + 0.5)/s, which rounds down to q;

and those are the ones read here; the others (align_corners, asymmetric with a
rounding other than floor, ...) pick other pixels and are refused.
"""

import numpy as np

from ..nn import layers as L
from . import OnnxImportError
from .constants import op
from .ops import _image

NEAREST = {("asymmetric", "floor"), ("tf_half_pixel_for_nn", "floor")} | {
    (mode, rounding) for mode in ("half_pixel", "pytorch_half_pixel")
    for rounding in ("round_prefer_floor", "round_prefer_ceil")}


def _factors(ctx, image, scales, sizes, axes):
    """The integer (sh, sw) that scales or sizes (per axis of (N, C, H, W), or of axes)
    ask for, or an error. A size for the batch axis must be the batch size: None (from
    a Shape) or the one the file was exported with."""
    rank = 4
    axes = list(range(rank)) if axes is None else [int(a) % rank for a in axes]
    by_scale = scales is not None and scales.size
    given = scales if by_scale else sizes
    if given is None or not given.size:
        raise OnnxImportError(f"{ctx.where}: neither scales nor sizes is given")
    given = list(given.reshape(-1))
    if len(given) != len(axes):
        raise OnnxImportError(f"{ctx.where}: {len(given)} scales or sizes for axes {axes}")
    full = dict(zip(axes, given))
    have = (None,) + tuple(image)
    if by_scale:
        factors = {a: float(full.get(a, 1.0)) for a in range(rank)}
    else:
        batch = full.get(0)
        factors = {a: float(full[a]) / have[a] if a in full else 1.0 for a in range(1, rank)}
        factors[0] = 1.0 if batch is None or batch == ctx.static_batch else float("nan")
    if factors[0] != 1 or factors[1] != 1 or not all(
            factors[a] >= 1 and float(factors[a]).is_integer() for a in (2, 3)):
        shown = [None if full.get(a) is None else float(full[a]) for a in range(rank)]
        shown = [int(v) if v is not None and v.is_integer() else v for v in shown]
        raise OnnxImportError(f"{ctx.where}: resizes (N, {', '.join(map(str, image))}) to "
                              f"{'scales' if by_scale else 'sizes'} {shown}; fastcnn's "
                              f"Upsample scales the height and width by integers")
    return int(factors[2]), int(factors[3])


def _upsample(ctx, attrs, x, image, mode, factors, coordinates, rounding):
    if mode != "nearest":
        raise attrs.unsupported("mode", mode, "fastcnn's Upsample is nearest-neighbour")
    if factors != (1, 1) and (coordinates, rounding) not in NEAREST:
        readable = {mode for mode, _ in NEAREST}       # with another rounding
        name, value = ("nearest_mode", rounding) if coordinates in readable else \
            ("coordinate_transformation_mode", coordinates)
        raise attrs.unsupported(name, value, f"with coordinate_transformation_mode="
                                f"{coordinates!r} and nearest_mode={rounding!r} the pixels "
                                f"picked are not fastcnn's, x[floor(i / scale)]")
    if factors == (1, 1):
        return x
    c, h, w = image
    scale = factors[0] if factors[0] == factors[1] else factors
    return ctx.call(L.Upsample(scale_factor=scale), [x], (c, h * factors[0], w * factors[1]))


@op("Resize")
def resize(ctx, node, attrs):
    x = ctx.tensor(0)
    image = _image(ctx, x)
    mode = attrs.take("mode", "nearest")
    if ctx.opset < 11:
        scales, sizes = ctx.const(1, "scales"), None
        coordinates = "asymmetric"
    else:
        scales = None if ctx.input(2) is None else ctx.const(2, "scales")
        sizes = None if ctx.input(3) is None else ctx.const(3, "sizes", numeric=False)
        coordinates = attrs.take("coordinate_transformation_mode", "half_pixel")
        if coordinates == "tf_crop_and_resize":
            raise attrs.unsupported("coordinate_transformation_mode", coordinates,
                                    "fastcnn does not crop")
        attrs.take("cubic_coeff_a")
        attrs.take("extrapolation_value")
        attrs.expect("exclude_outside", 0)
    # Resize-10 is Upsample-9 renamed: x[floor(i / scale)]
    rounding = attrs.take("nearest_mode", "round_prefer_floor" if ctx.opset >= 11 else "floor")
    attrs.expect("antialias", 0)
    attrs.expect("keep_aspect_ratio_policy", "stretch")
    axes = attrs.take("axes")
    factors = _factors(ctx, image, scales, sizes, axes)
    return _upsample(ctx, attrs, x, image, mode, factors, coordinates, rounding)


@op("Upsample")
def upsample(ctx, node, attrs):
    x = ctx.tensor(0)
    image = _image(ctx, x)
    mode = attrs.take("mode", "nearest")
    scales = np.asarray(attrs.take("scales", [])) if ctx.opset < 9 else ctx.const(1, "scales")
    factors = _factors(ctx, image, scales, None, None)
    return _upsample(ctx, attrs, x, image, mode, factors, "asymmetric", "floor")
