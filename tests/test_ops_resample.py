"""The resample family: upsampling (nearest and bilinear, any scale factor or size),
softmax and log_softmax over any axis, batched matmul. Every fast backend equals the
reference, every backward equals finite differences, the algebra holds, PyTorch
agrees (where it is installed), and bad arguments are refused by name."""

import itertools

import numpy as np
import pytest
from hypothesis import given

import fastcnn.functional as F
from cases_resample import matmul_case, softmax_case, upsample_case
from helpers import TOLERANCE, assert_matches, check_gradient, reference, run, to_backend

MODES = ("nearest", "bilinear")


def _up(mode, case):
    """The op's name and its keyword arguments (nearest has no align_corners)."""
    kwargs = dict(scale_factor=case["scale_factor"], size=case["size"])
    if mode == "bilinear":
        kwargs["align_corners"] = case["align_corners"]
    return f"upsample_{mode}2d", kwargs


# ---------------------------------------------------------------- upsampling


@pytest.mark.parametrize("mode", MODES)
@given(case=upsample_case())
def test_upsample_matches_reference(backend, mode, case):
    """Forward and backward equal the reference, and the backward is the forward's
    transpose: <up(x), dy> == <x, up_backward(dy)>."""
    op, kwargs = _up(mode, case)
    x = case["x"]
    y = run(backend, op, x, **kwargs)
    assert_matches(y, reference(op, x, **kwargs), reference(op, np.abs(x), **kwargs), x.dtype)
    dy = np.random.default_rng(0).standard_normal(y.shape).astype(x.dtype)
    dx = run(backend, op + "_backward", dy, x.shape, **kwargs)
    bound = reference(op + "_backward", np.abs(dy), x.shape, **kwargs)
    assert_matches(dx, reference(op + "_backward", dy, x.shape, **kwargs), bound, x.dtype)
    adjoint = np.vdot(y.astype(np.float64), dy) - np.vdot(x.astype(np.float64), dx)
    assert abs(adjoint) <= 4 * TOLERANCE[x.dtype] * np.vdot(np.abs(x), bound)


@pytest.mark.parametrize("mode, kwargs", [
    ("nearest", dict(scale_factor=1.5)), ("nearest", dict(size=(3, 7))),
    ("bilinear", dict(scale_factor=(2, 0.6))), ("bilinear", dict(size=5, align_corners=True)),
    ("bilinear", dict(scale_factor=2.3, align_corners=True))])
def test_upsample_gradient(any_backend, mode, kwargs):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 2, 4, 5))
    op = f"upsample_{mode}2d"
    r = rng.standard_normal(run(any_backend, op, x, **kwargs).shape)
    dx = run(any_backend, op + "_backward", r, x.shape, **kwargs)
    check_gradient(lambda t: float(np.vdot(run(any_backend, op, t, **kwargs), r)), dx, x, rng)


@pytest.mark.parametrize("align_corners", [False, True])
def test_bilinear_by_one_is_the_identity(any_backend, align_corners):
    x = np.random.default_rng(3).standard_normal((2, 3, 5, 4)).astype(np.float32)
    for kwargs in (dict(scale_factor=1), dict(size=(5, 4)), dict(scale_factor=(1.0, 1.0))):
        y = run(any_backend, "upsample_bilinear2d", x, align_corners=align_corners, **kwargs)
        np.testing.assert_array_equal(y, x)
        dx = run(any_backend, "upsample_bilinear2d_backward", x, x.shape,
                 align_corners=align_corners, **kwargs)
        np.testing.assert_array_equal(dx, x)


def test_nearest_by_integers_is_todays_op(any_backend):
    """Integer factors repeat pixels into blocks, and the earlier backward call form
    upsample_nearest2d_backward(dy, scale_factor) still sums them."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 3, 5, 4)).astype(np.float32)
    for factor in (2, 3, (1, 4), (3, 2)):
        sh, sw = factor if isinstance(factor, tuple) else (factor, factor)
        y = run(any_backend, "upsample_nearest2d", x, factor)
        np.testing.assert_array_equal(y, x.repeat(sh, axis=2).repeat(sw, axis=3))
        dy = rng.standard_normal(y.shape).astype(np.float32)
        old = run(any_backend, "upsample_nearest2d_backward", dy, factor)
        new = run(any_backend, "upsample_nearest2d_backward", dy, x.shape, factor)
        np.testing.assert_array_equal(old, new)
        want = dy.reshape(2, 3, 5, sh, 4, sw).astype(np.float64).sum(axis=(3, 5))
        np.testing.assert_allclose(new, want, rtol=1e-6, atol=1e-6)


# ---------------------------------------------------------------- softmax


@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
@given(case=softmax_case())
def test_softmax_matches_reference(backend, op, case):
    x, dy, dim = case
    y = run(backend, op, x, dim)
    want = reference(op, x, dim)
    assert_matches(y, want, np.abs(want) + 1, x.dtype)
    dx = run(backend, op + "_backward", dy, y, dim)
    want = reference(op + "_backward", dy, y, dim)
    assert_matches(dx, want, np.abs(want) + np.abs(dy) * (x.shape[dim] + 1), x.dtype)


@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
@pytest.mark.parametrize("shape, dim", [((4, 6), 1), ((2, 3, 4), 0), ((2, 3, 4), -1),
                                        ((2, 70), -1)])
def test_softmax_gradient(any_backend, op, shape, dim):
    rng = np.random.default_rng(5)
    x, r = rng.standard_normal(shape) * 2, rng.standard_normal(shape)
    y = run(any_backend, op, x, dim)
    dx = run(any_backend, op + "_backward", r, y, dim)
    check_gradient(lambda t: float(np.vdot(run(any_backend, op, t, dim), r)), dx, x, rng)


def test_log_softmax_is_the_log_of_softmax(any_backend):
    rng = np.random.default_rng(6)
    x = rng.standard_normal((3, 4, 5)) * 400   # some softmax values underflow to 0
    for dim in range(3):
        log = run(any_backend, "log_softmax", x, dim)
        soft = run(any_backend, "softmax", x, dim)
        finite = soft > 1e-300
        assert (~finite).any() and np.isfinite(log).all()
        np.testing.assert_allclose(log[finite], np.log(soft[finite]), rtol=1e-12, atol=1e-12)


def test_softmax_keeps_todays_default_axis(any_backend):
    x = np.random.default_rng(7).standard_normal((5, 3)).astype(np.float32)
    np.testing.assert_array_equal(run(any_backend, "softmax", x), run(any_backend, "softmax",
                                                                      x, 1))
    e = np.exp(x - x.max(axis=1, keepdims=True))
    np.testing.assert_allclose(run(any_backend, "softmax", x), e / e.sum(1, keepdims=True),
                               rtol=1e-6)


# ---------------------------------------------------------------- matmul


@given(case=matmul_case())
def test_matmul_matches_reference(backend, case):
    a, b = case
    c = run(backend, "matmul", a, b)
    assert_matches(c, reference("matmul", a, b), reference("matmul", np.abs(a), np.abs(b)),
                   a.dtype)
    dc = np.asarray(np.random.default_rng(8).standard_normal(c.shape), a.dtype)
    da, db = run(backend, "matmul_backward", dc, a, b)
    want, bound = (reference("matmul_backward", dc, a, b),   # (np.abs of a 0-D dc: a scalar)
                   reference("matmul_backward", np.asarray(np.abs(dc)), np.abs(a), np.abs(b)))
    assert_matches(da, want[0], bound[0], a.dtype)
    assert_matches(db, want[1], bound[1], a.dtype)


def test_matmul_is_numpys(any_backend):
    rng = np.random.default_rng(9)
    for a_shape, b_shape in [((3, 4), (4, 5)), ((2, 1, 3, 4), (5, 4, 2)), ((4,), (2, 4, 3)),
                             ((2, 3, 4), (4,)), ((4,), (4,)), ((6, 2, 3), (3, 2))]:
        a, b = rng.standard_normal(a_shape), rng.standard_normal(b_shape)
        c = run(any_backend, "matmul", a, b)
        assert c.shape == np.matmul(a, b).shape
        np.testing.assert_allclose(c, np.matmul(a, b), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("a_shape, b_shape", [((3, 4), (4, 2)), ((2, 1, 3, 4), (3, 4, 2)),
                                              ((4,), (2, 4, 3)), ((5, 3, 4), (4, 2))])
def test_matmul_gradient(any_backend, a_shape, b_shape):
    rng = np.random.default_rng(10)
    a, b = rng.standard_normal(a_shape), rng.standard_normal(b_shape)
    r = rng.standard_normal(np.matmul(a, b).shape)
    da, db = run(any_backend, "matmul_backward", r, a, b)
    check_gradient(lambda t: float(np.vdot(run(any_backend, "matmul", t, b), r)), da, a, rng)
    check_gradient(lambda t: float(np.vdot(run(any_backend, "matmul", a, t), r)), db, b, rng)


# ---------------------------------------------------------------- PyTorch's answers


GRID_FACTORS = [1, 1.5, 2, 2.3, 3, 0.5, (1.7, 0.6), 1.01, 2.05]
GRID_SIZES = [(7, 5), 4, (12, 3), (1, 1)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_upsample_equals_pytorch(dtype):
    """Every scale factor (and size) of the grid, both modes, both align_corners, on
    inputs of several sizes: nearest picks PyTorch's very pixels, bilinear agrees to
    rounding, forward and backward."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(11)
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    for shape in [(2, 3, 5, 7), (1, 1, 1, 4)]:
        x = rng.standard_normal(shape).astype(dtype)
        for (kind, value), mode in itertools.product(
                [("scale_factor", f) for f in GRID_FACTORS] + [("size", s) for s in GRID_SIZES],
                MODES):
            for align in ([None] if mode == "nearest" else [False, True]):
                kwargs = {kind: value} if align is None else {kind: value, "align_corners": align}
                forward = getattr(F, f"upsample_{mode}2d")
                t = torch.from_numpy(x).requires_grad_()
                try:
                    want = torch.nn.functional.interpolate(t, mode=mode, align_corners=align,
                                                           **{kind: value})
                except RuntimeError:   # an empty output: refused here too
                    with pytest.raises(ValueError, match="leaves no pixels"):
                        forward(x, **kwargs)
                    continue
                dy = rng.standard_normal(tuple(want.shape)).astype(dtype)
                want.backward(torch.from_numpy(dy))
                for backend in ("reference", "cpu"):
                    y = forward(x, backend=backend, **kwargs)
                    back = getattr(F, f"upsample_{mode}2d_backward")
                    dx = back(dy, x.shape, backend=backend, **kwargs)
                    if mode == "nearest":
                        np.testing.assert_array_equal(y, want.detach().numpy())
                    np.testing.assert_allclose(y, want.detach().numpy(), **tol)
                    np.testing.assert_allclose(dx, t.grad.numpy(), **tol)


def test_softmax_and_matmul_equal_pytorch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(12)
    x = rng.standard_normal((2, 3, 4, 70)) * 3
    for op, dim in itertools.product(("softmax", "log_softmax"), range(-4, 4)):
        t = torch.from_numpy(x).requires_grad_()
        want = getattr(torch.nn.functional, op)(t, dim)
        dy = rng.standard_normal(x.shape)
        want.backward(torch.from_numpy(dy))
        y = getattr(F, op)(x, dim)
        np.testing.assert_allclose(y, want.detach().numpy(), rtol=1e-12, atol=1e-12)
        dx = getattr(F, op + "_backward")(dy, y, dim)
        np.testing.assert_allclose(dx, t.grad.numpy(), rtol=1e-12, atol=1e-12)
    for a_shape, b_shape in [((2, 1, 3, 4), (5, 4, 2)), ((4,), (2, 4, 3)), ((3, 4), (4,)),
                             ((6, 3, 4), (4, 2)), ((1, 3, 4), (2, 1, 4, 5))]:
        a, b = rng.standard_normal(a_shape), rng.standard_normal(b_shape)
        ta, tb = torch.from_numpy(a).requires_grad_(), torch.from_numpy(b).requires_grad_()
        want = ta @ tb
        dc = rng.standard_normal(tuple(want.shape))
        want.backward(torch.from_numpy(dc))
        np.testing.assert_allclose(F.matmul(a, b), want.detach().numpy(), rtol=1e-12)
        da, db = F.matmul_backward(dc, a, b)
        np.testing.assert_allclose(da, ta.grad.numpy(), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(db, tb.grad.numpy(), rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------- bad input

X = np.zeros((2, 3, 4, 4), np.float32)


def raises(backend, error, match, op, *args, **kwargs):
    with pytest.raises(error, match=match):
        getattr(F, op)(*to_backend(backend, *args), backend=backend, **kwargs)


@pytest.mark.parametrize("mode", MODES)
def test_upsample_rejects(any_backend, mode):
    op = f"upsample_{mode}2d"
    for kwargs in (dict(), dict(scale_factor=2, size=3)):
        raises(any_backend, ValueError, "exactly one of scale_factor and size", op, X, **kwargs)
    for bad in (0, -1.5, float("nan"), float("inf"), (2, 0)):
        raises(any_backend, ValueError, "scale_factor must be positive and finite", op, X,
               scale_factor=bad)
    for bad in (True, "2", (2, None)):
        raises(any_backend, TypeError, "scale_factor must be a number", op, X, scale_factor=bad)
    raises(any_backend, ValueError, "scale_factor must be a number or a pair", op, X,
           scale_factor=(1, 2, 3))
    raises(any_backend, ValueError, "leaves no pixels", op, X, scale_factor=0.2)
    raises(any_backend, ValueError, "size must be >= 1, got 0", op, X, size=(0, 3))
    raises(any_backend, ValueError, "size must be >= 1, got -2", op, X, size=-2)
    raises(any_backend, TypeError, "size must be an int", op, X, size=2.5)
    # absurd outputs are refused from their shape, before anything is allocated
    raises(any_backend, ValueError, "more than the kernels index", op, X, size=10**6)
    raises(any_backend, ValueError, "more than the kernels index", op, X, scale_factor=1e300)
    raises(any_backend, ValueError, r"x must be 4-D", op, X[0], scale_factor=2)
    raises(any_backend, ValueError, "no pixels to resample", op, X[:, :, :0], size=2)
    dy = np.zeros((2, 3, 8, 8), np.float32)
    raises(any_backend, ValueError, r"dy must have the output's shape \(2, 3, 6, 6\)",
           op + "_backward", dy, X.shape, scale_factor=1.5)
    raises(any_backend, ValueError, "input_shape must be", op + "_backward", dy, (2, 3, 4),
           scale_factor=2)
    raises(any_backend, ValueError, "exactly one of", op + "_backward", dy, X.shape)
    if mode == "bilinear":
        raises(any_backend, TypeError, "align_corners must be True or False", op, X,
               scale_factor=2, align_corners=1)


def test_softmax_rejects(any_backend):
    x = np.zeros((2, 3), np.float32)
    for op in ("softmax", "log_softmax"):
        raises(any_backend, ValueError, r"dim must be in \[-2, 2\)", op, x, 2)
        raises(any_backend, ValueError, "dim must be >= -2", op, x, -3)
        raises(any_backend, TypeError, "dim must be an int", op, x, 1.0)
        raises(any_backend, ValueError, r"dy and y must have the same shape",
               op + "_backward", x[:1], x, 1)
        if any_backend != "cuda":   # (to_device makes a 0-D array 1-D)
            raises(any_backend, ValueError, "x must have at least one axis", op,
                   np.array(1, np.float32), 0)


def test_matmul_rejects(any_backend):
    a = np.zeros((2, 3, 4), np.float32)
    raises(any_backend, ValueError, r"batch axes .* do not broadcast \(a.shape=\(2, 3, 4\), "
           r"b.shape=\(3, 4, 2\)\)", "matmul", a, np.zeros((3, 4, 2), np.float32))
    raises(any_backend, ValueError, "inner dimensions differ", "matmul", a, a)
    raises(any_backend, ValueError, r"dc must have the product's shape \(2, 3, 5\)",
           "matmul_backward", np.zeros((2, 3, 4), np.float32), a, np.zeros((4, 5), np.float32))
    raises(any_backend, TypeError, "b is float64 but a is float32", "matmul", a,
           np.zeros((4, 2)))
    if any_backend != "cuda":
        raises(any_backend, ValueError, "b must have at least one axis", "matmul", a,
               np.array(2, np.float32))
