"""Every fast backend's kernels equal the reference, over random shapes, strides,
paddings, dilations and both dtypes."""

import contextlib

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cases import array, conv_case, linear_case, matmul_case, pool_case, upsample_case
from helpers import assert_matches, reference, run, winograd_wherever_it_applies


def absolute(*arrays):
    return [None if a is None else np.abs(a) for a in arrays]


@given(case=conv_case())
def test_im2col_col2im(backend, case):
    x, k = case["x"], case["weight"].shape[2:]
    geo = dict(stride=case["stride"], padding=case["padding"], dilation=case["dilation"])
    cols = run(backend, "im2col", x, k, **geo)
    want = reference("im2col", x, k, **geo)
    assert_matches(cols, want, np.abs(want), x.dtype)
    back = run(backend, "col2im", cols, x.shape, k, **geo)
    want = reference("col2im", cols, x.shape, k, **geo)
    assert_matches(back, want, reference("col2im", np.abs(cols), x.shape, k, **geo), x.dtype)


@given(case=conv_case())
def test_conv2d(backend, case):
    x, w, b = case["x"], case["weight"], case["bias"]
    geo = dict(stride=case["stride"], padding=case["padding"], dilation=case["dilation"])
    y = run(backend, "conv2d", x, w, b, **geo)
    assert_matches(y, reference("conv2d", x, w, b, **geo),
                   reference("conv2d", *absolute(x, w, b), **geo), x.dtype)


@given(case=conv_case(), need_dx=st.booleans(), data=st.data())
def test_conv2d_backward(backend, case, need_dx, data):
    x, w = case["x"], case["weight"]
    geo = dict(stride=case["stride"], padding=case["padding"], dilation=case["dilation"])
    dy = array(data.draw, reference("conv2d", x, w, None, **geo).shape, x.dtype)
    got = run(backend, "conv2d_backward", dy, x, w, need_dx=need_dx, **geo)
    want = reference("conv2d_backward", dy, x, w, need_dx=need_dx, **geo)
    bound = reference("conv2d_backward", *absolute(dy, x, w), need_dx=need_dx, **geo)
    if need_dx:
        assert_matches(got[0], want[0], bound[0], x.dtype)
    else:
        assert got[0] is None
    assert_matches(got[1], want[1], bound[1], x.dtype)
    assert_matches(got[2], want[2], bound[2], x.dtype)


@given(case=pool_case())
def test_max_pool2d(backend, case):
    x = case.pop("x")
    y, idx = run(backend, "max_pool2d", x, **case)
    want_y, want_idx = reference("max_pool2d", x, **case)
    assert_matches(y, want_y, np.abs(want_y), x.dtype)
    assert idx.dtype == np.int32
    np.testing.assert_array_equal(idx, want_idx)   # ties break the same way


@given(case=pool_case(), data=st.data())
def test_max_pool2d_backward(backend, case, data):
    x = case.pop("x")
    _, idx = reference("max_pool2d", x, **case)
    dy = array(data.draw, idx.shape, x.dtype)
    dx = run(backend, "max_pool2d_backward", dy, idx, x.shape)
    want = reference("max_pool2d_backward", dy, idx, x.shape)
    assert_matches(dx, want, reference("max_pool2d_backward", np.abs(dy), idx, x.shape),
                   x.dtype)


@given(case=pool_case())
def test_avg_pool2d(backend, case):
    x = case.pop("x")
    y = run(backend, "avg_pool2d", x, **case)
    assert_matches(y, reference("avg_pool2d", x, **case),
                   reference("avg_pool2d", np.abs(x), **case), x.dtype)


@given(case=pool_case(), data=st.data())
def test_avg_pool2d_backward(backend, case, data):
    x = case.pop("x")
    dy = array(data.draw, reference("avg_pool2d", x, **case).shape, x.dtype)
    dx = run(backend, "avg_pool2d_backward", dy, x.shape, **case)
    assert_matches(dx, reference("avg_pool2d_backward", dy, x.shape, **case),
                   reference("avg_pool2d_backward", np.abs(dy), x.shape, **case), x.dtype)


@given(case=upsample_case())
def test_upsample_nearest2d(backend, case):
    x, scale = case["x"], case["scale_factor"]
    y = run(backend, "upsample_nearest2d", x, scale)
    assert_matches(y, reference("upsample_nearest2d", x, scale), np.abs(y), x.dtype)
    dx = run(backend, "upsample_nearest2d_backward", y, scale)
    assert_matches(dx, reference("upsample_nearest2d_backward", y, scale),
                   reference("upsample_nearest2d_backward", np.abs(y), scale), x.dtype)


@given(case=matmul_case())
def test_matmul(backend, case):
    a, b = case["a"], case["b"]
    c = run(backend, "matmul", a, b)
    assert_matches(c, reference("matmul", a, b), reference("matmul", *absolute(a, b)), a.dtype)


def check_linear(backend, x, w, b, dy):
    """linear and linear_backward on backend equal the reference."""
    assert_matches(run(backend, "linear", x, w, b), reference("linear", x, w, b),
                   reference("linear", *absolute(x, w, b)), x.dtype)
    got = run(backend, "linear_backward", dy, x, w)
    want = reference("linear_backward", dy, x, w)
    bound = reference("linear_backward", *absolute(dy, x, w))
    for g, wnt, bnd in zip(got, want, bound):
        assert_matches(g, wnt, bnd, x.dtype)


@given(case=linear_case(), data=st.data())
def test_linear_and_backward(backend, case, data):
    x, w, b = case["x"], case["weight"], case["bias"]
    check_linear(backend, x, w, b, array(data.draw, (x.shape[0], w.shape[0]), x.dtype))


def test_pointwise_conv_fast_path(backend):
    """1x1 stride-1 convs skip im2col; with and without padding they still agree."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 5, 6, 7)).astype(np.float32)
    w = rng.standard_normal((4, 5, 1, 1)).astype(np.float32)
    for padding in (0, 1):
        y = run(backend, "conv2d", x, w, None, padding=padding)
        assert_matches(y, reference("conv2d", x, w, None, padding=padding),
                       reference("conv2d", np.abs(x), np.abs(w), None, padding=padding),
                       x.dtype)
        dy = rng.standard_normal(y.shape).astype(np.float32)
        got = run(backend, "conv2d_backward", dy, x, w, padding=padding)
        want = reference("conv2d_backward", dy, x, w, padding=padding)
        bound = reference("conv2d_backward", np.abs(dy), np.abs(x), np.abs(w), padding=padding)
        for g, wnt, bnd in zip(got, want, bound):
            assert_matches(g, wnt, bnd, x.dtype)


def test_seed_shapes(backend):
    """The MNIST CNN's own shapes, larger than hypothesis draws (many images per thread)."""
    rng = np.random.default_rng(1)
    images = 3 if backend == "cuda" else 17   # (the simulator: a Python thread per CUDA thread)
    x = rng.standard_normal((images, 8, 14, 14)).astype(np.float32)
    w = rng.standard_normal((16, 8, 3, 3)).astype(np.float32)
    b = rng.standard_normal(16).astype(np.float32)
    y = run(backend, "conv2d", x, w, b, padding=1)
    assert_matches(y, reference("conv2d", x, w, b, padding=1),
                   reference("conv2d", *absolute(x, w, b), padding=1), x.dtype)
    got = run(backend, "conv2d_backward", y, x, w, padding=1)
    want = reference("conv2d_backward", y, x, w, padding=1)
    bound = reference("conv2d_backward", *absolute(y, x, w), padding=1)
    for g, wnt, bnd in zip(got, want, bound):
        assert_matches(g, wnt, bnd, x.dtype)
    p, idx = run(backend, "max_pool2d", y, 2)
    want_p, want_idx = reference("max_pool2d", y, 2)
    np.testing.assert_array_equal(idx, want_idx)
    assert_matches(p, want_p, np.abs(want_p), x.dtype)


# The CUDA simulator computes in NumPy scalars, which warn on inf * 0 as a GPU does not.
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_nan_and_inf_propagate_as_in_the_reference(backend):
    x = np.arange(2 * 3 * 4 * 4, dtype=np.float32).reshape(2, 3, 4, 4)
    x[0, 0, 1, 1] = np.nan
    x[1, 2, 0, 0] = np.inf
    x[1, 1, 3, 3] = -np.inf
    y, idx = run(backend, "max_pool2d", x, 2)
    want_y, want_idx = reference("max_pool2d", x, 2)
    np.testing.assert_array_equal(y, want_y.astype(np.float32))
    np.testing.assert_array_equal(idx, want_idx)
    w = np.ones((1, 3, 2, 2), np.float32)
    got = run(backend, "conv2d", x, w, None)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(reference("conv2d", x, w, None)))
    np.testing.assert_array_equal(np.isinf(got), np.isinf(reference("conv2d", x, w, None)))


def test_non_contiguous_inputs(backend):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 4, 10, 12)).astype(np.float32)[:, :, ::2, ::-1]
    w = rng.standard_normal((4, 2, 4, 3)).astype(np.float32).transpose(1, 0, 3, 2)
    y = run(backend, "conv2d", x, w, None, padding=1)
    assert_matches(y, reference("conv2d", x, w, None, padding=1),
                   reference("conv2d", np.abs(x), np.abs(w), None, padding=1), x.dtype)
    a = rng.standard_normal((6, 5)).astype(np.float32)
    c = run(backend, "matmul", a.T, a)
    assert_matches(c, reference("matmul", a.T, a), reference("matmul", np.abs(a.T), np.abs(a)),
                   a.dtype)


def test_out_arrays_are_written(backend):
    """out= receives the result (layers use it to reuse their buffers)."""
    from helpers import to_backend
    import fastcnn.functional as F
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 6, 6)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    xd, wd, out = to_backend(backend, x, w, np.zeros((2, 4, 4, 4), np.float32))
    res = F.conv2d(xd, wd, out=out)
    assert res is out
    assert_matches(np.asarray(res) if backend != "cuda" else res.copy_to_host(),
                   reference("conv2d", x, w, None), reference("conv2d", np.abs(x), np.abs(w),
                                                              None), x.dtype)


@given(data=st.data())
def test_winograd_3x3_path(backend, data):
    """3x3 stride-1 convs with >= 16 channels, made to take the cpu backend's Winograd path
    (forward, dx and dweight; it picks it for more channels); odd sizes cut the last 2x2
    tiles, many images span chunks.

    Winograd's transforms mix neighbouring terms, so its rounding error is bounded
    by the largest term magnitude (normwise), not by each entry's own terms."""
    dtype = data.draw(st.sampled_from([np.float32, np.float64]))
    # (many images span the cpu's chunks; the simulator, a Python thread per CUDA thread,
    # takes minutes over them and its kernels have no chunks: a few images there)
    n = data.draw(st.sampled_from([1, 3] if backend == "cuda" else [1, 3, 40]))
    c, k = data.draw(st.integers(16, 19)), data.draw(st.integers(16, 19))
    p = (data.draw(st.integers(0, 2)), data.draw(st.integers(0, 2)))
    h, w = (data.draw(st.integers(3 - 2 * pad if pad < 1 else 1, 9)) for pad in p)
    x = array(data.draw, (n, c, h, w), dtype)
    wt = array(data.draw, (k, c, 3, 3), dtype)
    b = array(data.draw, (k,), dtype)

    def normwise(bound):
        return np.full_like(bound, np.abs(bound).max())

    # forced: Winograd for the forward and dx too; else the cpu's own choice, the direct
    # forward and dx beside Winograd's dweight
    forced = data.draw(st.booleans())
    with winograd_wherever_it_applies(backend) if forced else contextlib.nullcontext():
        y = run(backend, "conv2d", x, wt, b, padding=p)
        dy = array(data.draw, y.shape, dtype)
        got = run(backend, "conv2d_backward", dy, x, wt, padding=p)
    assert_matches(y, reference("conv2d", x, wt, b, padding=p),
                   normwise(reference("conv2d", *absolute(x, wt, b), padding=p)), dtype)
    want = reference("conv2d_backward", dy, x, wt, padding=p)
    bound = reference("conv2d_backward", *absolute(dy, x, wt), padding=p)
    for g, wnt, bnd in zip(got, want, bound):
        assert_matches(g, wnt, normwise(bnd), dtype)


@pytest.mark.parametrize("m, k, n", [(150, 7, 20), (9, 30, 130), (70, 1, 70), (64, 33, 65)])
def test_dense_ops_split_over_threads(backend, m, k, n):
    """Outputs large enough to be cut into per-thread blocks, along rows or columns."""
    rng = np.random.default_rng(4)
    a, b = rng.standard_normal((m, k)), rng.standard_normal((k, n))
    for dtype in (np.float32, np.float64):
        a_, b_ = a.astype(dtype), b.astype(dtype)
        assert_matches(run(backend, "matmul", a_, b_), reference("matmul", a_, b_),
                       reference("matmul", *absolute(a_, b_)), dtype)
        w_, bias = b_.T.copy(), rng.standard_normal(n).astype(dtype)
        check_linear(backend, a_, w_, bias, rng.standard_normal((m, n)).astype(dtype))
