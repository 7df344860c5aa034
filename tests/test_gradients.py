"""Finite-difference checks, in float64, of every backward op on every backend.

Each check compares the backward op's answer with central differences of the
forward op along random directions: for a random upstream gradient r, the
derivative of <forward(x), r> along v is <backward(r), v>.
"""

import numpy as np
import pytest

from helpers import call, check_gradient as check


def test_conv2d_backward(any_backend):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 7, 6))
    w = rng.standard_normal((4, 3, 3, 2))
    b = rng.standard_normal(4)
    geo = dict(stride=(2, 1), padding=(1, 2, 0, 1), dilation=(1, 2))
    r = rng.standard_normal(call(any_backend, "conv2d", x, w, b, **geo).shape)
    dx, dw, db = call(any_backend, "conv2d_backward", r, x, w, **geo)

    def loss(x_, w_, b_):
        return float(np.vdot(call(any_backend, "conv2d", x_, w_, b_, **geo), r))

    check(lambda t: loss(t, w, b), dx, x, rng)
    check(lambda t: loss(x, t, b), dw, w, rng)
    check(lambda t: loss(x, w, t), db, b, rng)


@pytest.mark.parametrize("kernel, stride, padding", [
    (2, None, 0), (3, 2, 1), ((3, 2), 1, (1, 0)), ((3, 3), 2, (0, 1, 1, 0))])
def test_pool_backward(any_backend, kernel, stride, padding):
    rng = np.random.default_rng(1)
    # Distinct values, far apart: the arg-max does not move under a step of EPS.
    x = rng.permutation(2 * 3 * 7 * 6).reshape(2, 3, 7, 6) * 0.01
    geo = dict(kernel_size=kernel, stride=stride, padding=padding)
    y, idx = call(any_backend, "max_pool2d", x, **geo)
    r = rng.standard_normal(y.shape)
    dx = call(any_backend, "max_pool2d_backward", r, idx, x.shape)
    check(lambda t: float(np.vdot(call(any_backend, "max_pool2d", t, **geo)[0], r)), dx, x, rng)
    dx = call(any_backend, "avg_pool2d_backward", r, x.shape, **geo)
    check(lambda t: float(np.vdot(call(any_backend, "avg_pool2d", t, **geo), r)), dx, x, rng)


def test_upsample_backward(any_backend):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 2, 3, 4))
    r = rng.standard_normal((2, 2, 6, 12))
    dx = call(any_backend, "upsample_nearest2d_backward", r, (2, 3))
    check(lambda t: float(np.vdot(call(any_backend, "upsample_nearest2d", t, (2, 3)), r)),
          dx, x, rng)


def test_linear_backward(any_backend):
    rng = np.random.default_rng(3)
    x, w, b = rng.standard_normal((5, 4)), rng.standard_normal((3, 4)), rng.standard_normal(3)
    r = rng.standard_normal((5, 3))
    dx, dw, db = call(any_backend, "linear_backward", r, x, w)

    def loss(x_, w_, b_):
        return float(np.vdot(call(any_backend, "linear", x_, w_, b_), r))

    check(lambda t: loss(t, w, b), dx, x, rng)
    check(lambda t: loss(x, t, b), dw, w, rng)
    check(lambda t: loss(x, w, t), db, b, rng)
