"""Resize (opset 10 on) and Upsample (opsets 7 to 9) as fastcnn's Upsample.

fastcnn's Upsample is PyTorch's, by a scale factor (a float: output floor(H * f)) or to
a size: nearest copies x[floor(i * s)], s = 1 / f or H / OH; bilinear reads the input at
s (i + 0.5) - 0.5 (half_pixel) or at i (H - 1) / (OH - 1) (align_corners). ONNX
describes a resize by the source coordinate of each output pixel and a rounding rule,
computed by ONNX Runtime in float32 from the scales (given, or OH / H for sizes). So:

- linear: half_pixel is bilinear with align_corners=False; pytorch_half_pixel too,
  where no output axis has one pixel (it reads pixel 0 there, PyTorch the middle);
  align_corners is align_corners=True; the others (asymmetric, ...) are refused;
- nearest: the pixels ONNX Runtime's rule picks along each axis are computed here and
  compared with fastcnn's; the resize is read where they are the same, else refused.
  asymmetric with floor (PyTorch's nearest) is the same for integer scales and for
  every size tried, but not for every non-integer scale (ONNX Runtime divides by 2.2,
  PyTorch multiplies by 1 / 2.2, and doubles 2 pixels to 4 as x[i // 2]); half_pixel
  with round_prefer_floor or round_prefer_ceil is the same for integer factors only;
- scales: the output size is ONNX Runtime's floor(H * scale) in float32, which for some
  scales (7/3 of 3) is one more than PyTorch's in double: those are refused.
"""

import math

import numpy as np

from ..backends import coordinates as grid
from ..nn import layers as L
from . import OnnxImportError
from .constants import op
from .importing import MAX_ACTIVATIONS
from .ops import _image

LINEAR = {"half_pixel": False, "pytorch_half_pixel": False, "align_corners": True}
_ASYMMETRIC = ("before opset 11 a linear resize reads the input at i / scale (asymmetric), "
               "which fastcnn's bilinear Upsample (PyTorch's) does not")


def _target(ctx, image, scales, sizes, axes):
    """(scales, sizes) of the height and width that scales or sizes (per axis of
    (N, C, H, W), or of axes) ask for: (sh, sw) or None, and the output (OH, OW). The
    batch and channels must keep their sizes: a size for the batch axis is None (from a
    Shape) or the batch size the file was exported with."""
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
        kept = all(float(full.get(a, 1.0)) == 1 for a in (0, 1))
        factors = [np.float32(full.get(a, 1.0)) for a in (2, 3)]
        fine = all(math.isfinite(f) and f > 0 for f in factors)
        # ONNX Runtime's output size: the float32 product, rounded down
        hw = tuple(int(np.float32(have[a]) * f) for a, f in zip((2, 3), factors)) if fine \
            else (0, 0)
    else:
        kept = full.get(0) in (None, ctx.static_batch) and full.get(1, have[1]) == have[1]
        hw = tuple(int(full.get(a, have[a])) for a in (2, 3))
        factors = None
    if min(hw) >= 1 and image[0] * hw[0] * hw[1] > MAX_ACTIVATIONS:   # before the pixels
        ctx.budget(image[0] * hw[0] * hw[1], ctx.where)         # are compared: refused
    if not kept or min(hw) < 1:
        shown = [None if full.get(a) is None else float(full[a]) for a in range(rank)]
        shown = [int(v) if v is not None and v.is_integer() else v for v in shown]
        raise OnnxImportError(f"{ctx.where}: resizes (N, {', '.join(map(str, image))}) by "
                              f"{'scales' if by_scale else 'sizes'} {shown}; fastcnn's "
                              f"Upsample resizes the height and width of images, to at "
                              f"least one pixel")
    return factors, hw


def _nearest_onnx(size, out, scale, coordinates, rounding):
    """The input pixel that ONNX Runtime's nearest resize copies to each output pixel
    along one axis of size pixels (float32, as it computes), or None for a rule not
    covered. rounding "simple" is Resize-10's and Upsample's: floor, or ceil where the
    axis shrinks."""
    f = np.float32
    i, s = np.arange(out, dtype=f), f(scale)
    if coordinates == "asymmetric":
        src = i / s
    elif coordinates == "half_pixel" or (coordinates == "pytorch_half_pixel" and out > 1):
        src = (i + f(0.5)) / s - f(0.5)
    elif coordinates == "pytorch_half_pixel":
        src = np.zeros(out, f)
    elif coordinates == "tf_half_pixel_for_nn":
        src = (i + f(0.5)) / s
    elif coordinates == "align_corners":
        src = i * f(size - 1) / f(out - 1) if out > 1 else np.zeros(out, f)
    else:
        return None
    src = src.astype(np.float64)            # the rounding itself is exact
    if rounding == "simple":
        rounding = "ceil" if s < 1 else "floor"
    pick = {"floor": np.floor, "ceil": np.ceil,
            "round_prefer_floor": lambda v: np.ceil(v - 0.5),
            "round_prefer_ceil": lambda v: np.floor(v + 0.5)}.get(rounding)
    return None if pick is None else np.clip(pick(src), 0, size - 1).astype(np.int64)


def _upsample(ctx, attrs, x, image, mode, target, coordinates, rounding):
    factors, hw = target
    if hw == image[1:]:
        if factors is None or all(f == 1 for f in factors):
            return x                # every rule copies each pixel where the size stays
        raise OnnxImportError(f"{ctx.where}: scales {[float(f) for f in factors]} keep the "
                              f"size {hw}, where ONNX Runtime resamples and fastcnn's "
                              f"Upsample (as PyTorch's) copies")
    if factors is not None:
        ours = tuple(math.floor(n * float(f)) for n, f in zip(image[1:], factors))
        if ours != hw:
            raise OnnxImportError(f"{ctx.where}: resizes (N, {', '.join(map(str, image))}) by "
                                  f"scales {[1, 1] + [float(f) for f in factors]} (ONNX "
                                  f"Runtime's output is {hw[0]}x{hw[1]} pixels, fastcnn's and "
                                  f"PyTorch's {ours[0]}x{ours[1]})")
    if factors is not None and all(float(f).is_integer() for f in factors):
        kwargs = dict(scale_factor=_short_scale(int(f) for f in factors))
    elif factors is not None:
        kwargs = dict(scale_factor=_short_scale(float(f) for f in factors))
    else:
        kwargs = dict(size=hw)
    if mode == "linear":
        if coordinates not in LINEAR or (coordinates == "pytorch_half_pixel" and min(hw) == 1):
            raise attrs.unsupported("coordinate_transformation_mode", coordinates,
                                    f"fastcnn's bilinear Upsample reads half_pixel (and "
                                    f"pytorch_half_pixel to more than one pixel) or "
                                    f"align_corners; the resize is to {hw}")
        kwargs.update(mode="bilinear", align_corners=LINEAR[coordinates])
    elif mode == "nearest":
        for a in range(2):
            size, out = image[1 + a], hw[a]
            scale = factors[a] if factors is not None else np.float32(out) / np.float32(size)
            want = _nearest_onnx(size, out, scale, coordinates, rounding)
            ours = grid.nearest_source(out, size, grid.upsample_scale(
                size, out, None if factors is None else float(factors[a]), None, np.float32)) \
                if want is not None else None
            if want is None or not np.array_equal(want, ours):
                raise attrs.unsupported(
                    "nearest_mode" if coordinates in ("asymmetric", "half_pixel") else
                    "coordinate_transformation_mode", rounding if coordinates in (
                        "asymmetric", "half_pixel") else coordinates,
                    f"with coordinate_transformation_mode={coordinates!r} and nearest_mode="
                    f"{rounding!r} the pixels picked along axis {a + 2} (from {size} to "
                    f"{out}) are not fastcnn's, x[floor(i * {size} / {out})]")
    else:
        raise attrs.unsupported("mode", mode, "fastcnn's Upsample is nearest or bilinear")
    layer = L.Upsample(**kwargs)
    return ctx.call(layer, [x], image[:1] + hw)


def _short_scale(factors):
    sh, sw = factors
    return sh if sh == sw else (sh, sw)


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
    # Resize-10 rounds as Upsample: floor, or ceil where an axis shrinks
    rounding = attrs.take("nearest_mode", "round_prefer_floor" if ctx.opset >= 11 else "simple")
    attrs.expect("antialias", 0)
    attrs.expect("keep_aspect_ratio_policy", "stretch")
    target = _target(ctx, image, scales, sizes, attrs.take("axes"))
    if ctx.opset < 11 and mode == "linear":
        raise attrs.unsupported("mode", mode, _ASYMMETRIC)
    return _upsample(ctx, attrs, x, image, mode, target, coordinates, rounding)


@op("Upsample")
def upsample(ctx, node, attrs):
    x = ctx.tensor(0)
    image = _image(ctx, x)
    mode = attrs.take("mode", "nearest")
    scales = np.asarray(attrs.take("scales", [])) if ctx.opset < 9 else ctx.const(1, "scales")
    target = _target(ctx, image, scales, None, None)
    if mode != "nearest":
        raise attrs.unsupported("mode", mode, _ASYMMETRIC)
    return _upsample(ctx, attrs, x, image, mode, target, "asymmetric", "simple")
