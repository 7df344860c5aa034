"""Helpers shared by the tests: moving arrays to a backend, comparing with the reference."""

import contextlib
import unittest.mock

import numpy as np

import fastcnn.functional as F
from fastcnn.backends import get

# Relative accuracy asked of a result, per dtype, measured against the sum of the
# magnitudes of the terms that made it (see assert_matches).
TOLERANCE = {np.dtype(np.float32): 1e-4, np.dtype(np.float64): 1e-11}


@contextlib.contextmanager
def winograd_wherever_it_applies(backend):
    """On the cpu backend, Winograd for every 3x3 stride-1 conv it can do, not only where it
    pays (many channels): its tests then run on small, quick shapes."""
    if backend != "cpu":
        yield
        return
    from fastcnn.backends.cpu import winograd
    with unittest.mock.patch.object(winograd, "pays", lambda *shapes: True):
        yield


def cuda_usable():
    """True when fastcnn's cuda backend imports (numba-cuda installed; on the simulator
    no GPU is needed)."""
    try:
        from fastcnn.backends import cuda  # noqa: F401
    except ImportError:
        return False
    return True


def to_backend(backend, *args):
    """The arguments as the backend takes them: NumPy arrays become device arrays for cuda."""
    if get(backend).DEVICE == "cuda":
        from fastcnn.backends.cuda import to_device
        return tuple(to_device(a) if isinstance(a, np.ndarray) else a for a in args)
    return args


def host(a):
    """A backend's result as a NumPy array (tuples and None pass through)."""
    if a is None or isinstance(a, (int, float)):
        return a
    if isinstance(a, tuple):
        return tuple(host(v) for v in a)
    return np.asarray(a) if isinstance(a, np.ndarray) else a.copy_to_host()


def run(backend, op, *arrays, **kwargs):
    """fastcnn.functional.op on the backend, with the array arguments moved there."""
    return host(getattr(F, op)(*to_backend(backend, *arrays), backend=backend, **kwargs))


def reference(op, *arrays, **kwargs):
    """The reference result, computed in float64 from the same values."""
    wide = [a.astype(np.float64) if isinstance(a, np.ndarray) and a.dtype.kind == "f" else a
            for a in arrays]
    return getattr(F, op)(*wide, backend="reference", **kwargs)


def assert_matches(got, want, magnitude, dtype):
    """|got - want| <= tol * magnitude, elementwise, where magnitude bounds the sum of
    |terms| behind each entry (the same op on absolute values), so the check is as
    tight for a sum of 500 terms as for a copy. Also the dtype must be kept."""
    got, want, magnitude = np.asarray(got), np.asarray(want), np.asarray(magnitude)
    assert got.dtype == dtype, f"result is {got.dtype}, input was {dtype}"
    assert got.shape == want.shape, f"shape {got.shape} != {want.shape}"
    bound = TOLERANCE[np.dtype(dtype)] * (np.abs(magnitude) + 1e-30)
    err = np.abs(got.astype(np.float64) - want)
    bad = ~(err <= bound) & ~(np.isnan(want) & np.isnan(got))
    assert not bad.any(), (f"{bad.sum()} of {bad.size} entries off; worst error "
                           f"{err[bad].max()} at bound {bound[bad].min()}")


# ---------------------------------------------------------------- finite differences

EPS = 1e-6


def call(backend, op, *args, **kwargs):
    """fastcnn.functional.op on the backend (array arguments moved there), results on the host."""
    return host(getattr(F, op)(*to_backend(backend, *args), backend=backend, **kwargs))


def directional(f, x, v):
    return (f(x + EPS * v) - f(x - EPS * v)) / (2 * EPS)


def check_gradient(forward, grad, x, rng, directions=3):
    """forward: float64 array -> float; grad: its gradient at x (an array like x). Central
    differences along random directions v must equal <grad, v>."""
    for _ in range(directions):
        v = rng.standard_normal(x.shape)
        numeric = directional(forward, x, v)
        analytic = float(np.vdot(grad, v))
        assert abs(numeric - analytic) <= 1e-6 * max(1.0, abs(numeric)), (numeric, analytic)
