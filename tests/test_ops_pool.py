"""Pooling's attributes (issue 13): ceil_mode, max-pool dilation, count_include_pad,
divisor_override and the padding forms; adaptive and global pooling; the 1-D pools.
Every backend against the reference, which is checked against the definition; float64
gradients by finite differences; algebraic identities; PyTorch's answers; bad input."""

import hashlib
import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cases_pool import (adaptive_case, avg_pool_case, max_pool_case, pool1d_case, sides_of,
                        upstream, window)
from conftest import SIMULATOR
from helpers import assert_matches, call, check_gradient, reference, run

# ---------------------------------------------------------------- against the reference


@given(case=max_pool_case(), data=st.data())
def test_max_pool2d(backend, case, data):
    x = case.pop("x")
    y, idx = run(backend, "max_pool2d", x, **case)
    want_y, want_idx = reference("max_pool2d", x, **case)
    np.testing.assert_array_equal(y, want_y.astype(x.dtype))   # a max is exact
    np.testing.assert_array_equal(idx, want_idx)
    dy = upstream(data.draw, y, x.dtype)
    dx = run(backend, "max_pool2d_backward", dy, idx, x.shape)
    assert_matches(dx, reference("max_pool2d_backward", dy, idx, x.shape),
                   reference("max_pool2d_backward", np.abs(dy), idx, x.shape), x.dtype)


@given(case=max_pool_case())
def test_max_pool2d_without_indices_gives_the_same_maxima(backend, case):
    """indices=False (what an eval-mode forward asks): y alone, the very values."""
    x = case.pop("x")
    y = run(backend, "max_pool2d", x, indices=False, **case)
    np.testing.assert_array_equal(y, run(backend, "max_pool2d", x, **case)[0])


def test_max_pool1d_without_indices_gives_the_same_maxima(backend):
    x = np.random.default_rng(3).standard_normal((2, 3, 11)).astype(np.float32)
    for geometry in (dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1, dilation=2)):
        np.testing.assert_array_equal(run(backend, "max_pool1d", x, indices=False, **geometry),
                                      run(backend, "max_pool1d", x, **geometry)[0])


@given(case=avg_pool_case(), data=st.data())
def test_avg_pool2d(backend, case, data):
    x = case.pop("x")
    y = run(backend, "avg_pool2d", x, **case)
    assert_matches(y, reference("avg_pool2d", x, **case),
                   reference("avg_pool2d", np.abs(x), **case), x.dtype)
    dy = upstream(data.draw, y, x.dtype)
    dx = run(backend, "avg_pool2d_backward", dy, x.shape, **case)
    assert_matches(dx, reference("avg_pool2d_backward", dy, x.shape, **case),
                   reference("avg_pool2d_backward", np.abs(dy), x.shape, **case), x.dtype)


@given(case=adaptive_case(), data=st.data())
def test_adaptive_avg_pool2d(backend, case, data):
    x = case.pop("x")
    y = run(backend, "adaptive_avg_pool2d", x, **case)
    assert_matches(y, reference("adaptive_avg_pool2d", x, **case),
                   reference("adaptive_avg_pool2d", np.abs(x), **case), x.dtype)
    dy = upstream(data.draw, y, x.dtype)
    dx = run(backend, "adaptive_avg_pool2d_backward", dy, x.shape)
    assert_matches(dx, reference("adaptive_avg_pool2d_backward", dy, x.shape),
                   reference("adaptive_avg_pool2d_backward", np.abs(dy), x.shape), x.dtype)


@given(case=adaptive_case(), data=st.data())
def test_adaptive_max_pool2d(backend, case, data):
    x = case.pop("x")
    y, idx = run(backend, "adaptive_max_pool2d", x, **case)
    want_y, want_idx = reference("adaptive_max_pool2d", x, **case)
    np.testing.assert_array_equal(y, want_y.astype(x.dtype))
    np.testing.assert_array_equal(idx, want_idx)
    dy = upstream(data.draw, y, x.dtype)
    dx = run(backend, "adaptive_max_pool2d_backward", dy, idx, x.shape)
    assert_matches(dx, reference("max_pool2d_backward", dy, idx, x.shape),
                   reference("max_pool2d_backward", np.abs(dy), idx, x.shape), x.dtype)


@pytest.mark.parametrize("kind", ["max", "avg", "adaptive_max", "adaptive_avg"])
@given(data=st.data())
def test_pool1d_is_the_2d_pool_of_a_row(backend, kind, data):
    """Each 1-D op, forward and backward, equals its 2-D op on the (N, C, 1, L) image, with
    kernel (1, k), stride (1, s), padding (0, 0, left, right), dilation (1, d)."""
    case = data.draw(pool1d_case(kind))
    x = case.pop("x")
    if "output_size" in case:
        two_d = {"output_size": (1, case["output_size"])}
    else:
        p = case["padding"]
        two_d = dict(case, kernel_size=(1, case["kernel_size"]), stride=(1, case["stride"]),
                     padding=(0, 0) + ((p, p) if isinstance(p, int) else p))
        if "dilation" in case:
            two_d["dilation"] = (1, case["dilation"])
    row, op = x[:, :, None, :], f"{kind}_pool2d"
    got = run(backend, f"{kind}_pool1d", x, **case)
    want = reference(op, row, **two_d)
    if kind.endswith("max"):
        np.testing.assert_array_equal(got[0], want[0][:, :, 0].astype(x.dtype))
        np.testing.assert_array_equal(got[1], want[1][:, :, 0])
        dy = upstream(data.draw, got[0], x.dtype)
        dx = run(backend, f"{kind}_pool1d_backward", dy, got[1], x.shape)
        want_dx, bound = (reference("max_pool2d_backward", g[:, :, None], got[1][:, :, None],
                                    row.shape) for g in (dy, np.abs(dy)))
    else:
        assert_matches(got, want[:, :, 0], reference(op, np.abs(row), **two_d)[:, :, 0], x.dtype)
        dy = upstream(data.draw, got, x.dtype)
        fixed = {k: v for k, v in case.items() if k != "output_size"}
        fixed_2d = {k: v for k, v in two_d.items() if k != "output_size"}
        dx = run(backend, f"{op[:-2]}1d_backward", dy, x.shape, **fixed)
        want_dx, bound = (reference(f"{op}_backward", g[:, :, None], row.shape, **fixed_2d)
                          for g in (dy, np.abs(dy)))
    assert_matches(dx, want_dx[:, :, 0], bound[:, :, 0], x.dtype)


# ---------------------------------------------------------------- the reference's own rules


def _definition(x, dy, k, s, p, d, ceil_mode, include, divisor, mode):
    """Pooling written as PyTorch's CPU loops, one window at a time, padding as (top,
    bottom, left, right): the max with its index, or the average with the divisor rule
    (window clipped to the padded input, then to the input unless include), and the
    backward sums of each."""
    from fastcnn.backends import output_size
    n, c, h, w = x.shape
    oh = output_size(h, k[0], s[0], p[:2], d[0], ceil_mode)
    ow = output_size(w, k[1], s[1], p[2:], d[1], ceil_mode)
    y, dx = np.zeros((n, c, oh, ow)), np.zeros(x.shape)
    for o, q in itertools.product(range(oh), range(ow)):
        h0, w0 = o * s[0] - p[0], q * s[1] - p[2]
        if mode == "max":
            taps = [(h0 + i * d[0], w0 + j * d[1]) for i in range(k[0]) for j in range(k[1])]
            taps = [(r, t) for r, t in taps if 0 <= r < h and 0 <= t < w]
            for a, b in itertools.product(range(n), range(c)):
                r, t = max(taps, key=lambda rt: (x[a, b, rt[0], rt[1]], -taps.index(rt)))
                y[a, b, o, q] = x[a, b, r, t]
                dx[a, b, r, t] += dy[a, b, o, q]
            continue
        h1, w1 = min(h0 + k[0], h + p[1]), min(w0 + k[1], w + p[3])
        size = (h1 - h0) * (w1 - w0)
        h0, w0, h1, w1 = max(h0, 0), max(w0, 0), min(h1, h), min(w1, w)
        count = divisor or (size if include else (h1 - h0) * (w1 - w0))
        y[:, :, o, q] = x[:, :, h0:h1, w0:w1].sum(axis=(2, 3)) / count
        dx[:, :, h0:h1, w0:w1] += dy[:, :, o, q, None, None] / count
    return y, dx


@given(data=st.data(), mode=st.sampled_from(["max", "avg"]))
def test_the_reference_is_pytorchs_definition(data, mode):
    """ceil_mode, dilation, every padding form (uneven ones by the natural extension of
    PyTorch's rule: a window's divisor counts what lies inside the padded input) and both
    divisor rules, forward and backward, in float64."""
    k, s, padding, d, ceil_mode, hw = data.draw(window(dilation=mode == "max"))
    x = np.random.default_rng(data.draw(st.integers(0, 99))).permutation(2 * 2 * hw[0] * hw[1])
    x = x.reshape((2, 2) + hw) * 0.25
    include = data.draw(st.booleans())
    divisor = data.draw(st.one_of(st.none(), st.integers(1, 4)))
    args = dict(kernel_size=k, stride=s, padding=padding, ceil_mode=ceil_mode)
    if mode == "max":
        y, idx = call("reference", "max_pool2d", x, dilation=d, **args)
        dy = np.random.default_rng(1).standard_normal(y.shape)
        dx = call("reference", "max_pool2d_backward", dy, idx, x.shape)
    else:
        args.update(count_include_pad=include, divisor_override=divisor)
        y = call("reference", "avg_pool2d", x, **args)
        dy = np.random.default_rng(1).standard_normal(y.shape)
        dx = call("reference", "avg_pool2d_backward", dy, x.shape, **args)
    want_y, want_dx = _definition(x, dy, k, s, sides_of(padding), d, ceil_mode, include,
                                  divisor, mode)
    np.testing.assert_allclose(y, want_y, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dx, want_dx, rtol=1e-12, atol=1e-12)


def test_the_last_ceil_window_never_starts_in_the_right_padding():
    """PyTorch's rule: 5 pixels, kernel 2, stride 2, padding 1 round up to 4 windows, but the
    4th would start at padded position 6, in the right padding, so there are 3."""
    from fastcnn.backends import output_size
    assert output_size(5, 2, 2, (1, 1), ceil_mode=True) == 3
    assert output_size(5, 2, 2, (0, 0), ceil_mode=True) == 3   # the 3rd starts inside
    assert output_size(6, 3, 2, (1, 1), ceil_mode=True) == 4   # ...or at its last pixel
    assert output_size(6, 3, 2, (1, 1), ceil_mode=False) == 3


# ---------------------------------------------------------------- algebra


def _values(shape, dtype, ties):
    """Inputs the same on every machine and numpy version: integer arithmetic, then one
    correctly rounded division."""
    i = np.arange(int(np.prod(shape)), dtype=np.int64)
    v = ((i * 7919) % 11 - 5).astype(np.float64) if ties else \
        ((i * 2654435761) % 1048573 - 524288) / 123457.0
    return v.reshape(shape).astype(dtype)


TODAY = [  # (shape, kernel_size, stride, padding) of the pools before ceil_mode and the rest
    ((2, 3, 7, 9), 2, None, 0), ((2, 3, 7, 9), 3, 2, 1), ((1, 2, 8, 6), (3, 2), (1, 2), (1, 0)),
    ((1, 2, 9, 8), (4, 3), (3, 1), (2, 0, 1, 1)), ((2, 2, 5, 5), 3, 1, "same")]
# sha256 of main's results (before this change) on TODAY, per backend: y, indices and dx of
# max pooling (the same bits everywhere), y and dx of average pooling.
TODAYS_DIGESTS = {"max": {"reference": "d1d6efe9ec60f33f", "cpu": "d1d6efe9ec60f33f",
                          "cuda": "d1d6efe9ec60f33f"},
                  "avg": {"reference": "c0a57688ea1c13ff", "cpu": "73c2f044f552f51b",
                          "cuda": "92a07d3f36cd1181"}}


def _digest(arrays):
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(str(a.dtype).encode() + str(a.shape).encode() + a.tobytes())
    return h.hexdigest()[:16]


def test_ceil_mode_false_is_todays_pooling_bit_for_bit(any_backend):
    """The defaults (ceil_mode=False, dilation 1, count_include_pad=True, no divisor_override)
    give exactly main's results before these attributes existed, on every backend (the cuda
    digests are the simulator's: a GPU may round its divisions alike, but is not held to it)."""
    if any_backend == "cuda" and not SIMULATOR:
        pytest.skip("the digests were taken on the simulator")
    digests = {"max": [], "avg": []}
    for shape, k, s, p in TODAY:
        for dtype, ties in itertools.product((np.float32, np.float64), (False, True)):
            x = _values(shape, dtype, ties)
            y, idx = call(any_backend, "max_pool2d", x, k, s, p, 1, False)
            dy = _values(y.shape, dtype, False)[::-1].copy()
            dx = call(any_backend, "max_pool2d_backward", dy, idx, x.shape)
            digests["max"].append(_digest([y, idx, dx]))
            args = (k, s, p, False, True, None)
            y = call(any_backend, "avg_pool2d", x, *args)
            dx = call(any_backend, "avg_pool2d_backward", dy, x.shape, *args)
            digests["avg"].append(_digest([y, dx]))
    for op, parts in digests.items():
        got = hashlib.sha256("".join(parts).encode()).hexdigest()[:16]
        assert got == TODAYS_DIGESTS[op][any_backend], op


@given(case=st.one_of(max_pool_case(), avg_pool_case()))
def test_ceil_mode_only_adds_windows(backend, case):
    """With ceil_mode the first windows are the floor's, to the bit; only the extra last
    row and column of windows are new."""
    x = case.pop("x")
    op = "max_pool2d" if "dilation" in case else "avg_pool2d"
    case["ceil_mode"] = True
    ceil = run(backend, op, x, **case)
    case["ceil_mode"] = False
    try:
        floor = run(backend, op, x, **case)
    except ValueError as e:   # a window larger than the padded input: ceil_mode's only
        assert "larger than the padded input" in str(e)
        return
    for c, f in zip(*((ceil, floor) if op == "max_pool2d" else ((ceil,), (floor,)))):
        assert c.shape[2] - f.shape[2] in (0, 1) and c.shape[3] - f.shape[3] in (0, 1)
        np.testing.assert_array_equal(c[:, :, :f.shape[2], :f.shape[3]], f)


def test_adaptive_pooling_to_the_input_size_is_the_identity(backend):
    x = np.random.default_rng(0).standard_normal((2, 3, 5, 7)).astype(np.float32)
    for size in ((5, 7), (None, 7), (None, None)):
        np.testing.assert_array_equal(run(backend, "adaptive_avg_pool2d", x, size), x)
        y, idx = run(backend, "adaptive_max_pool2d", x, size)
        np.testing.assert_array_equal(y, x)
        np.testing.assert_array_equal(idx, np.broadcast_to(np.arange(35).reshape(5, 7), x.shape))
    dy = np.random.default_rng(1).standard_normal(x.shape).astype(np.float32)
    np.testing.assert_array_equal(run(backend, "adaptive_avg_pool2d_backward", dy, x.shape), dy)
    np.testing.assert_array_equal(run(backend, "adaptive_avg_pool1d", x[:, :, 0], 7), x[:, :, 0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_adaptive_pooling_to_a_divisor_is_the_fixed_window_pool(backend, dtype):
    """Output sizes dividing the input give windows of H / OH x W / OW, stride the same."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 3, 6, 8)).astype(dtype)
    for out in ((3, 2), (6, 1), (1, 8), (2, 4)):
        k = (6 // out[0], 8 // out[1])
        y = run(backend, "adaptive_avg_pool2d", x, out)
        assert_matches(y, reference("avg_pool2d", x, k), reference("avg_pool2d", np.abs(x), k),
                       dtype)
        dy = rng.standard_normal(y.shape).astype(dtype)
        assert_matches(run(backend, "adaptive_avg_pool2d_backward", dy, x.shape),
                       reference("avg_pool2d_backward", dy, x.shape, k),
                       reference("avg_pool2d_backward", np.abs(dy), x.shape, k), dtype)
        got, want = run(backend, "adaptive_max_pool2d", x, out), run(backend, "max_pool2d", x, k)
        for g, w in zip(got, want):
            np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize("shape", [(2, 3, 7, 7), (1, 2, 1, 1), (1, 1, 3, 40)])
def test_global_pooling_is_a_reduction_over_each_plane(backend, shape):
    x = np.random.default_rng(3).standard_normal(shape)
    y = run(backend, "adaptive_avg_pool2d", x, 1)
    assert_matches(y, x.mean(axis=(2, 3), keepdims=True),
                   np.abs(x).mean(axis=(2, 3), keepdims=True), x.dtype)
    dy = np.random.default_rng(4).standard_normal(y.shape)
    dx = run(backend, "adaptive_avg_pool2d_backward", dy, shape)
    np.testing.assert_allclose(dx, np.broadcast_to(dy / (shape[2] * shape[3]), shape),
                               rtol=1e-15)
    y, idx = run(backend, "adaptive_max_pool2d", x, (1, 1))
    flat = x.reshape(shape[:2] + (-1,))
    np.testing.assert_array_equal(y[..., 0, 0], flat.max(axis=2))
    np.testing.assert_array_equal(idx[..., 0, 0], flat.argmax(axis=2))


def test_nan_wins_every_window_it_is_in_as_in_the_reference(backend):
    """A NaN beats any number and the first NaN of a window stays (NaN propagates), in the
    windows ceil_mode adds, dilated ones and adaptive ones alike."""
    x = np.random.default_rng(11).standard_normal((1, 2, 7, 8)).astype(np.float32)
    x[0, 0, 6, 7] = x[0, 0, 2, 3] = x[0, 1, 3, 3] = x[0, 1, 3, 4] = np.nan
    for op, args in (("max_pool2d", (3, 2, 1, (2, 1), True)), ("adaptive_max_pool2d", ((3, 5),)),
                     ("adaptive_max_pool2d", (1,)), ("avg_pool2d", (2, 2, 0, True, False))):
        got, want = run(backend, op, x, *args), reference(op, x, *args)
        got, want = (got, want) if isinstance(got, tuple) else ((got,), (want,))
        assert np.isnan(want[0]).any()
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, rtol=1e-6)   # NaN where the reference has it


@pytest.mark.parametrize("shape", [(3, 4, 14, 14), (2, 3, 7, 9), (1, 2, 2, 2), (1, 1, 3, 2)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_2x2_pool_is_the_general_one(backend, shape, dtype):
    """2x2 windows at stride 2 (the cpu backend's own loop for them): the reference's maxima
    and arg-maxima with ties (the first wins), NaNs (the first stays) and an odd last row or
    column (dropped), with and without indices."""
    x = _values(shape, dtype, ties=True)
    x.reshape(-1)[::7] = np.nan
    y, idx = run(backend, "max_pool2d", x, 2)
    want_y, want_idx = reference("max_pool2d", x, 2)
    np.testing.assert_array_equal(y, want_y)
    np.testing.assert_array_equal(idx, want_idx)
    np.testing.assert_array_equal(run(backend, "max_pool2d", x, 2, indices=False), want_y)


def test_no_channels_give_empty_results(any_backend):
    x, line = np.ones((2, 0, 5, 5), np.float32), np.ones((2, 0, 6), np.float32)
    assert run(any_backend, "max_pool2d", x, 2, ceil_mode=True)[0].shape == (2, 0, 3, 3)
    assert run(any_backend, "avg_pool2d", x, 3, 2, 1, count_include_pad=False).shape == (
        2, 0, 3, 3)
    assert run(any_backend, "adaptive_avg_pool2d", x, 1).shape == (2, 0, 1, 1)
    assert run(any_backend, "adaptive_max_pool2d", x, (2, 3))[1].shape == (2, 0, 2, 3)
    assert run(any_backend, "max_pool1d", line, 2)[1].shape == (2, 0, 3)
    assert run(any_backend, "adaptive_avg_pool1d", line, 4).shape == (2, 0, 4)


# ---------------------------------------------------------------- gradients (float64)

MAX_GEOMETRIES = [  # kernel_size, stride, padding, dilation, ceil_mode on a 6 x 7 input
    (3, 2, 1, 1, True), (2, 1, (0, 1, 1, 0), 2, False), ((3, 2), (2, 3), (1, 1), (2, 1), True)]
AVG_GEOMETRIES = [  # kernel_size, stride, padding, ceil_mode: the last ceil windows reach past
    (3, 2, 1, True), ((2, 3), (2, 2), (1, 0, 0, 1), True), (3, 2, (1, 0), False)]


def _check(backend, forward, backward, x, seed=0):
    rng = np.random.default_rng(seed)
    r = rng.standard_normal(np.shape(forward(x)))
    check_gradient(lambda t: float(np.vdot(forward(t), r)), backward(r), x, rng)


@pytest.mark.parametrize("geometry", MAX_GEOMETRIES)
def test_max_pool2d_gradient(any_backend, geometry):
    x = np.random.default_rng(5).permutation(2 * 2 * 6 * 7).reshape(2, 2, 6, 7) * 0.1
    k, s, p, d, ceil_mode = geometry
    y, idx = call(any_backend, "max_pool2d", x, k, s, p, d, ceil_mode)
    _check(any_backend, lambda t: call(any_backend, "max_pool2d", t, k, s, p, d, ceil_mode)[0],
           lambda r: call(any_backend, "max_pool2d_backward", r, idx, x.shape), x)


@pytest.mark.parametrize("geometry", AVG_GEOMETRIES)
@pytest.mark.parametrize("include, divisor", [(True, None), (False, None), (False, 5)])
def test_avg_pool2d_gradient(any_backend, geometry, include, divisor):
    x = np.random.default_rng(6).standard_normal((2, 2, 6, 7))
    args = geometry + (include, divisor)
    _check(any_backend, lambda t: call(any_backend, "avg_pool2d", t, *args),
           lambda r: call(any_backend, "avg_pool2d_backward", r, x.shape, *args), x)


@pytest.mark.parametrize("shape, size", [((2, 2, 5, 7), (3, 4)), ((1, 2, 4, 4), (6, 5)),
                                         ((2, 1, 7, 7), 1), ((1, 2, 3, 9), (None, 4))])
def test_adaptive_pool2d_gradients(any_backend, shape, size):
    x = np.random.default_rng(7).permutation(int(np.prod(shape))).reshape(shape) * 0.1
    _check(any_backend, lambda t: call(any_backend, "adaptive_avg_pool2d", t, size),
           lambda r: call(any_backend, "adaptive_avg_pool2d_backward", r, shape), x)
    _, idx = call(any_backend, "adaptive_max_pool2d", x, size)
    _check(any_backend, lambda t: call(any_backend, "adaptive_max_pool2d", t, size)[0],
           lambda r: call(any_backend, "adaptive_max_pool2d_backward", r, idx, shape), x)


def test_pool1d_gradients(any_backend):
    x = np.random.default_rng(8).permutation(2 * 3 * 11).reshape(2, 3, 11) * 0.1
    geometry = (3, 2, (1, 0), 2, True)
    _, idx = call(any_backend, "max_pool1d", x, *geometry)
    _check(any_backend, lambda t: call(any_backend, "max_pool1d", t, *geometry)[0],
           lambda r: call(any_backend, "max_pool1d_backward", r, idx, x.shape), x)
    args = (4, 3, 2, True, False)
    _check(any_backend, lambda t: call(any_backend, "avg_pool1d", t, *args),
           lambda r: call(any_backend, "avg_pool1d_backward", r, x.shape, *args), x)
    _check(any_backend, lambda t: call(any_backend, "adaptive_avg_pool1d", t, 4),
           lambda r: call(any_backend, "adaptive_avg_pool1d_backward", r, x.shape), x)
    _, idx = call(any_backend, "adaptive_max_pool1d", x, 5)
    _check(any_backend, lambda t: call(any_backend, "adaptive_max_pool1d", t, 5)[0],
           lambda r: call(any_backend, "adaptive_max_pool1d_backward", r, idx, x.shape), x)


# ---------------------------------------------------------------- PyTorch

GRID = dict(shape=[(7, 9), (2, 4)], kernel=[2, 3, (3, 2)], stride=[1, 2, (3, 1)],
            padding=[0, 1, (1, 0)], ceil_mode=[False, True])


def _torch_grid():
    for values in itertools.product(*GRID.values()):
        yield dict(zip(GRID, values))


@pytest.fixture
def torch():
    torch = pytest.importorskip("torch")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)   # tiny tensors: more threads would only cost time
    yield torch
    torch.set_num_threads(threads)


def test_equal_to_pytorch_over_a_grid_of_attributes(backend, torch):
    """Every combination PyTorch accepts, on cpu (cuda: every 14th, on the simulator), max
    pooling with dilation 1 and 2, average pooling with both count_include_pad and a
    divisor_override, forward and backward; also adaptive pooling to a grid of sizes.
    (Uneven padding is not PyTorch's: test_the_reference_is_pytorchs_definition has it.)"""
    tf = torch.nn.functional
    rng = np.random.default_rng(9)
    compared, worst = 0, 0.0
    for i, g in enumerate(_torch_grid()):
        if backend == "cuda" and i % 14:
            continue
        x = rng.standard_normal((2, 2) + g["shape"])
        args = (g["kernel"], g["stride"], g["padding"])
        for dilation in (1, 2):
            try:
                t = torch.from_numpy(x).requires_grad_()
                ty, ti = tf.max_pool2d(t, *args, dilation, g["ceil_mode"], True)
            except RuntimeError:   # PyTorch refuses the geometry
                continue
            if (ty == -np.inf).any():   # windows of nothing but padding: refused here
                with pytest.raises(ValueError, match="sees only padding"):
                    call(backend, "max_pool2d", x, *args, dilation, g["ceil_mode"])
                continue
            dy = rng.standard_normal(ty.shape)
            ty.backward(torch.from_numpy(dy))
            y, idx = call(backend, "max_pool2d", x, *args, dilation, g["ceil_mode"])
            np.testing.assert_array_equal(y, ty.detach().numpy())
            np.testing.assert_array_equal(idx, ti.numpy())
            dx = call(backend, "max_pool2d_backward", dy, idx, x.shape)
            worst = max(worst, np.abs(dx - t.grad.numpy()).max())
            compared += 1
        for include, divisor in itertools.product((True, False), (None, 3)):
            try:
                t = torch.from_numpy(x).requires_grad_()
                ty = tf.avg_pool2d(t, *args, g["ceil_mode"], include, divisor)
            except RuntimeError:
                continue
            dy = rng.standard_normal(ty.shape)
            ty.backward(torch.from_numpy(dy))
            avg = args + (g["ceil_mode"], include, divisor)
            y = call(backend, "avg_pool2d", x, *avg)
            dx = call(backend, "avg_pool2d_backward", dy, x.shape, *avg)
            worst = max(worst, np.abs(y - ty.detach().numpy()).max(),
                        np.abs(dx - t.grad.numpy()).max())
            compared += 1
    for shape, size in itertools.product([(7, 7), (13, 13), (5, 3)],
                                         [1, (6, 6), (2, 5), (None, 2), (9, 4)]):
        x = rng.standard_normal((2, 2) + shape)
        t = torch.from_numpy(x).requires_grad_()
        ty = tf.adaptive_avg_pool2d(t, size)
        dy = rng.standard_normal(ty.shape)
        ty.backward(torch.from_numpy(dy))
        y = call(backend, "adaptive_avg_pool2d", x, size)
        dx = call(backend, "adaptive_avg_pool2d_backward", dy, x.shape)
        worst = max(worst, np.abs(y - ty.detach().numpy()).max(),
                    np.abs(dx - t.grad.numpy()).max())
        ty, ti = tf.adaptive_max_pool2d(torch.from_numpy(x), size, True)
        y, idx = call(backend, "adaptive_max_pool2d", x, size)
        np.testing.assert_array_equal(y, ty.numpy())
        np.testing.assert_array_equal(idx, ti.numpy())
        compared += 2
    print(f"pytorch grid on {backend}: {compared} comparisons, max |difference| {worst:.3g}")
    assert compared > (50 if backend == "cuda" else 500)
    assert worst < 1e-13, worst


def test_pool1d_equal_to_pytorch(backend, torch):
    tf = torch.nn.functional
    x = np.random.default_rng(10).standard_normal((2, 3, 11))
    for k, s, p, d, ceil_mode in [(3, 2, 1, 2, True), (2, 1, 0, 1, False), (4, 3, 2, 1, True)]:
        ty, ti = tf.max_pool1d(torch.from_numpy(x), k, s, p, d, ceil_mode, True)
        y, idx = call(backend, "max_pool1d", x, k, s, p, d, ceil_mode)
        np.testing.assert_array_equal(y, ty.numpy())
        np.testing.assert_array_equal(idx, ti.numpy())
        for include in (True, False):
            ty = tf.avg_pool1d(torch.from_numpy(x), k, s, p, ceil_mode, include)
            np.testing.assert_allclose(call(backend, "avg_pool1d", x, k, s, p, ceil_mode,
                                            include), ty.numpy(), rtol=1e-14)
    for size in (1, 4, 11, 15):
        np.testing.assert_allclose(call(backend, "adaptive_avg_pool1d", x, size),
                                   tf.adaptive_avg_pool1d(torch.from_numpy(x), size).numpy(),
                                   rtol=1e-14)
        ty, ti = tf.adaptive_max_pool1d(torch.from_numpy(x), size, True)
        np.testing.assert_array_equal(call(backend, "adaptive_max_pool1d", x, size)[1], ti)


# ---------------------------------------------------------------- bad input

X = np.zeros((2, 3, 6, 6), np.float32)
LINE = np.zeros((2, 3, 6), np.float32)

BAD = [  # (op, arguments, keyword arguments, error, what the message says)
    ("max_pool2d", (X, 2), dict(ceil_mode="yes"), TypeError, "ceil_mode must be True or"),
    ("max_pool2d", (X, 2), dict(dilation=0), ValueError, "dilation must be >= 1"),
    ("max_pool2d", (X, 2), dict(dilation=1.5), TypeError, "dilation must be an int"),
    ("max_pool2d", (np.zeros((1, 1, 1, 3), np.float32), 2),
     dict(stride=1, padding=(1, 0), dilation=(2, 1)), ValueError,
     "window 0 along H .* sees only padding"),
    ("max_pool2d", (X, 3), dict(padding=(2, 0, 0, 0)), ValueError, "at most half"),
    ("avg_pool2d", (X, 2), dict(count_include_pad=None), TypeError, "count_include_pad must"),
    ("avg_pool2d", (X, 2), dict(divisor_override=0), ValueError, "divisor_override must be >="),
    ("avg_pool2d", (X, 2), dict(divisor_override=-3), ValueError, "divisor_override must be >="),
    ("avg_pool2d", (X, 2), dict(divisor_override=2.0), TypeError, "divisor_override must be"),
    ("avg_pool2d", (X, 2), dict(divisor_override=True), TypeError, "divisor_override must be"),
    # 5 pixels, kernel 2, stride 2, padding 1, ceil_mode: 3 windows (a 4th would start in
    # the right padding)
    ("avg_pool2d_backward", (np.zeros((2, 3, 4, 4), np.float32), (2, 3, 5, 5), 2, 2, 1, True),
     {}, ValueError, r"dy must have shape \(2, 3, 3, 3\)"),
    ("avg_pool2d_backward", (np.zeros((2, 3, 3, 3), np.float32), X.shape, 3, 2), {},
     ValueError, r"dy must have shape \(2, 3, 2, 2\) .*ceil_mode=False"),
    ("adaptive_avg_pool2d", (X, 0), {}, ValueError, "output_size must be >= 1"),
    ("adaptive_avg_pool2d", (X, (3, -1)), {}, ValueError, "output_size must be >= 1"),
    ("adaptive_max_pool2d", (X, None), {}, TypeError, "output_size must be an int"),
    ("adaptive_max_pool2d", (X, 2.5), {}, TypeError, "output_size must be an int"),
    ("adaptive_avg_pool2d", (X, (2, 2, 2)), {}, ValueError, "output_size must be an int or a"),
    ("adaptive_avg_pool2d", (np.zeros((2, 3, 0, 4), np.float32), 2), {}, ValueError,
     "the input has no pixels"),
    ("adaptive_avg_pool2d", (LINE, 2), {}, ValueError, r"x must be 4-D \(N, C, H, W\)"),
    ("adaptive_avg_pool2d_backward", (np.zeros((2, 4, 3, 3), np.float32), X.shape), {},
     ValueError, "does not match input_shape"),
    ("adaptive_max_pool2d_backward", (np.zeros((2, 3, 3, 3), np.float32),
                                      np.full((2, 3, 3, 3), 36, np.int32), X.shape), {},
     ValueError, r"indices must lie in \[0, 36\)"),
    ("max_pool2d", (X, 2), dict(indices=0), TypeError, "indices must be True or False"),
    ("max_pool2d", (X, 2), dict(indices=False, out=(None, None)), TypeError,
     "with indices=False out must be one array"),
    ("max_pool2d", (X, 2), dict(indices=False, out=np.zeros((2, 3, 2, 2), np.float32)),
     ValueError, "out"),
    ("max_pool1d", (X, 2), {}, ValueError, r"x must be 3-D \(N, C, L\)"),
    ("max_pool1d", (LINE, (2, 2)), {}, ValueError, "kernel_size must be an int"),
    ("avg_pool1d", (LINE, 2), dict(padding=(1, 0, 0)), ValueError, "padding must be an int"),
    ("avg_pool1d", (LINE, 4), dict(padding=3), ValueError, "at most half"),
    ("avg_pool1d_backward", (np.zeros((2, 3, 4), np.float32), LINE.shape, 2), {}, ValueError,
     r"dy must have shape \(2, 3, 3\)"),
    ("adaptive_max_pool1d", (LINE, (2, 2)), {}, ValueError, "output_size must be an int or a"),
    ("adaptive_avg_pool1d_backward", (np.zeros((2, 3, 2), np.float32), (2, 3, 6, 1)), {},
     ValueError, r"input_shape must be \(N, C, L\)"),
]


@pytest.mark.parametrize("op, args, kwargs, error, message", BAD,
                         ids=[f"{b[0]}-{i}" for i, b in enumerate(BAD)])
def test_bad_input_is_refused_by_name(any_backend, op, args, kwargs, error, message):
    with pytest.raises(error, match=rf"^{op}: .*{message}"):
        run(any_backend, op, *args, **kwargs)
