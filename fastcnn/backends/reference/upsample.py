"""Nearest and bilinear resampling and their backward, from the coordinate rules.

scales: PyTorch's step in input coordinates per output pixel, per axis (see
backends/coordinates.py); the output's extent is the out array's.
"""

import numpy as np

from ..coordinates import linear_source, nearest_source
from ._common import _into


def upsample_nearest2d(x, scales, *, out):
    """y[n, c, i, j] = x[n, c, rows[i], cols[j]]."""
    rows = nearest_source(out.shape[2], x.shape[2], scales[0])
    cols = nearest_source(out.shape[3], x.shape[3], scales[1])
    return _into(out, x[:, :, rows][:, :, :, cols])


def upsample_nearest2d_backward(dy, scales, *, out):
    """Each input pixel collects the error of every output pixel that copied it."""
    rows = nearest_source(dy.shape[2], out.shape[2], scales[0])
    cols = nearest_source(dy.shape[3], out.shape[3], scales[1])
    dx = np.zeros(out.shape, dy.dtype)
    np.add.at(dx, (slice(None), slice(None), rows[:, None], cols[None, :]), dy)
    return _into(out, dx)


def _taps(out_hw, in_hw, scales, align_corners, dtype):
    """The four (rows, cols, weight) taps of every output pixel: weight (OH, OW)."""
    i0, i1, u0, u1 = linear_source(out_hw[0], in_hw[0], scales[0], align_corners, dtype)
    j0, j1, v0, v1 = linear_source(out_hw[1], in_hw[1], scales[1], align_corners, dtype)
    return [(i, j, u[:, None] * v[None, :]) for i, u in ((i0, u0), (i1, u1))
            for j, v in ((j0, v0), (j1, v1))]


def upsample_bilinear2d(x, scales, align_corners, *, out):
    """y = the weighted sum of the four input pixels around each output pixel's source."""
    y = np.zeros(out.shape, x.dtype)
    for rows, cols, weight in _taps(out.shape[2:], x.shape[2:], scales, align_corners,
                                    x.dtype):
        y += weight * x[:, :, rows][:, :, :, cols]
    return _into(out, y)


def upsample_bilinear2d_backward(dy, scales, align_corners, *, out):
    """Each input pixel collects the error of the output pixels that read it, times the
    weights they read it with (the forward's transpose)."""
    dx = np.zeros(out.shape, dy.dtype)
    for rows, cols, weight in _taps(dy.shape[2:], out.shape[2:], scales, align_corners,
                                    dy.dtype):
        np.add.at(dx, (slice(None), slice(None), rows[:, None], cols[None, :]), weight * dy)
    return _into(out, dx)
