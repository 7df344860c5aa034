"""Helpers of the reference ops: one kernel tap's view of a padded input, and writing
results into the out= arrays that fastcnn.functional hands every op."""

import numpy as np


def _tap(xpad, i, j, out_hw, stride, dilation):
    """The input values tap (i, j) of the kernel sees at every output position."""
    (oh, ow), (sh, sw), (dh, dw) = out_hw, stride, dilation
    return xpad[..., i * dh: i * dh + sh * (oh - 1) + 1: sh,
                j * dw: j * dw + sw * (ow - 1) + 1: sw]


def _pad(x, padding, value=0.0):
    """x padded by padding = (top, bottom, left, right) with value."""
    top, bottom, left, right = padding
    return np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)), constant_values=value)


def _unpad(xpad, padding):
    top, bottom, left, right = padding
    return xpad[:, :, top: xpad.shape[2] - bottom, left: xpad.shape[3] - right]


def _into(out, value):
    """value written into out (the array functional allocated, or the caller's), and out
    returned; a None out stays None (a gradient that was not asked for)."""
    if out is None:
        return None
    out[...] = value
    return out


def _into_all(out, values):
    return tuple(_into(o, v) for o, v in zip(out, values))
