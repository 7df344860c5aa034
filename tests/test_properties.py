"""Algebraic identities the ops must satisfy, checked on the fast backends."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from cases import array, conv_case, upsample_case
from helpers import TOLERANCE, run


def inner(a, b):
    return float(np.vdot(a.astype(np.float64), b.astype(np.float64)))


@given(case=conv_case(), data=st.data())
def test_col2im_is_the_adjoint_of_im2col(backend, case, data):
    """<im2col(x), c> = <x, col2im(c)> for every x and c."""
    x, k = case["x"], case["weight"].shape[2:]
    geo = dict(stride=case["stride"], padding=case["padding"], dilation=case["dilation"])
    cols = run(backend, "im2col", x, k, **geo)
    c = array(data.draw, cols.shape, x.dtype)
    back = run(backend, "col2im", c, x.shape, k, **geo)
    lhs, rhs = inner(cols, c), inner(x, back)
    scale = inner(np.abs(cols), np.abs(c)) + 1e-30
    assert abs(lhs - rhs) <= TOLERANCE[x.dtype] * scale


@given(case=conv_case())
def test_conv2d_is_im2col_then_matmul(backend, case):
    x, w, b = case["x"], case["weight"], case["bias"]
    geo = dict(stride=case["stride"], padding=case["padding"], dilation=case["dilation"])
    y = run(backend, "conv2d", x, w, b, **geo)
    cols = run(backend, "im2col", x, w.shape[2:], **geo)
    w2 = w.reshape(w.shape[0], -1)
    for n in range(x.shape[0]):
        yn = run(backend, "matmul", w2, cols[n])
        if b is not None:
            yn = yn + b[:, None]
        bound = np.abs(w2) @ np.abs(cols[n]) + (0 if b is None else np.abs(b)[:, None])
        assert np.all(np.abs(y[n].reshape(len(w), -1) - yn) <= 2 * TOLERANCE[x.dtype] * bound)


@given(case=upsample_case())
def test_upsample_backward_is_a_window_sum(backend, case):
    """Upsampling's backward sums each sh x sw block: avg-pool with that window, times its size."""
    x, (sh, sw) = case["x"], case["scale_factor"]
    dy = run(backend, "upsample_nearest2d", x, (sh, sw)) * 1.5 - 0.25
    dx = run(backend, "upsample_nearest2d_backward", dy, (sh, sw))
    pooled = run(backend, "avg_pool2d", dy, (sh, sw)) * (sh * sw)
    np.testing.assert_allclose(dx, pooled, rtol=TOLERANCE[x.dtype] * 10,
                               atol=TOLERANCE[x.dtype] * 10)


@given(case=conv_case())
def test_max_pool_indices_point_at_the_maximum(backend, case):
    x = case["x"]
    y, idx = run(backend, "max_pool2d", x, (2, 2), 1, 1)
    flat = x.reshape(x.shape[0], x.shape[1], -1)
    picked = np.take_along_axis(flat, idx.reshape(idx.shape[0], idx.shape[1], -1), axis=2)
    np.testing.assert_array_equal(picked.reshape(y.shape), y)
