"""PyTorch's coordinate rules for resampling: which input pixels each output pixel
reads along one axis, and with what weights.

A backend op gets, per axis, PyTorch's *scale*: the step in input coordinates per
output pixel (fastcnn.functional computes it from scale_factor or the sizes, see
``upsample_scale``), and the output's and input's lengths from its arrays. These
functions are the one place the rules are written in NumPy (the reference and cpu
backends use them); the cuda kernels evaluate the same formulas per thread, in the
same precision, and the tests hold them to these.
"""

import numpy as np


def upsample_scale(size, out, factor, align_corners, dtype):
    """PyTorch's scale along one axis, as a Python float exactly representable in dtype.

    nearest (align_corners None): 1/factor if a scale factor was given, else
    size/out, in float32 whatever the data (PyTorch's nearest kernels compute
    in float); linear: the same in dtype's precision, or (size-1)/(out-1) with
    align_corners (0 for an output of one pixel). Where out == size PyTorch
    copies (scale 1) and where nearest doubles it halves the index (0.5):
    these give exactly that.
    """
    t = np.float32 if align_corners is None else np.dtype(dtype).type
    if out == size:
        return 1.0
    if align_corners is None and out == 2 * size:
        return 0.5
    if align_corners:
        return float(t(size - 1) / t(out - 1)) if out > 1 else 0.0
    if factor is not None:
        return float(t(1.0 / factor))
    return float(t(size) / t(out))


def nearest_source(out, size, scale):
    """The input index each of out output pixels copies: min(floor(dst * scale), size - 1),
    computed in float32 as PyTorch's mode="nearest" (ONNX Resize: asymmetric, floor)."""
    dst = np.arange(out, dtype=np.float32)
    return np.minimum(np.floor(dst * np.float32(scale)).astype(np.int64), size - 1)


def nearest_ranges(out, size, scale):
    """start (size + 1,): the output pixels copying input pixel i are start[i]:start[i+1]
    (none for some i when downsampling), as the backward gathers them."""
    return np.searchsorted(nearest_source(out, size, scale), np.arange(size + 1))


def linear_source(out, size, scale, align_corners, dtype):
    """(i0, i1, w0, w1): output pixel d is w0[d] * x[i0[d]] + w1[d] * x[i1[d]].

    PyTorch's rule for mode="bilinear" in dtype's precision: the source coordinate is
    scale * d with align_corners, else scale * (d + 0.5) - 0.5 clamped at 0 (the
    half-pixel rule); i0 = min(floor(src), size - 1), i1 = i0 + 1 (i0 on the last
    pixel), w1 = clip(src - i0, 0, 1), w0 = 1 - w1.
    """
    t = np.dtype(dtype).type
    dst = np.arange(out).astype(t)
    if align_corners:
        src = t(scale) * dst
    else:
        src = np.maximum(t(scale) * (dst + t(0.5)) - t(0.5), t(0))
    i0 = np.minimum(np.floor(src).astype(np.int64), size - 1)
    w1 = np.clip(src - i0.astype(t), t(0), t(1))
    i1 = i0 + (i0 < size - 1)
    return i0, i1, t(1) - w1, w1
