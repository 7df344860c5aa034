"""The conv family's new ops and arguments (issue 13): groups and depthwise conv2d,
conv_transpose2d, conv1d. Each against the reference on the fast backends, in both
dtypes; float64 finite differences of every backward; the algebra that ties them
together; PyTorch's results over a grid of arguments (where torch is installed); and
the errors bad arguments get."""

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cases import array
from cases_conv import conv1d_case, depthwise_case, grouped_case, transposed_case
from helpers import TOLERANCE, assert_matches, call, check_gradient, reference, run
from test_errors import raises

GEOMETRY = ("stride", "padding", "dilation", "groups")
TRANSPOSED = ("stride", "padding", "output_padding", "groups", "dilation")


def _split(case, names):
    return {k: case[k] for k in names}


def check_op(backend, op, case, names):
    """op(x, weight, bias) and its backward on backend against the float64 reference, each
    result within the dtype's tolerance of the sum of its terms' magnitudes."""
    x, w, b, geo = case["x"], case["weight"], case["bias"], _split(case, names)
    y = run(backend, op, x, w, b, **geo)
    bias_abs = None if b is None else np.abs(b)
    assert_matches(y, reference(op, x, w, b, **geo),
                   reference(op, np.abs(x), np.abs(w), bias_abs, **geo), x.dtype)
    dy = np.random.default_rng(y.size).uniform(-1, 1, y.shape).astype(x.dtype)
    grads = run(backend, op + "_backward", dy, x, w, **geo)
    want = reference(op + "_backward", dy, x, w, **geo)
    bound = reference(op + "_backward", np.abs(dy), np.abs(x), np.abs(w), **geo)
    for got, wnt, bnd in zip(grads, want, bound):
        assert_matches(got, wnt, bnd, x.dtype)


# ---------------------------------------------------------------- against the reference


@settings(max_examples=24)
@given(case=grouped_case())
def test_grouped_conv2d(backend, case):
    check_op(backend, "conv2d", case, GEOMETRY)


@pytest.mark.parametrize("multiplier", [1, 2])
@settings(max_examples=20)
@given(data=st.data())
def test_depthwise_conv2d(backend, multiplier, data):
    check_op(backend, "conv2d", data.draw(depthwise_case(multiplier)), GEOMETRY)


@pytest.mark.parametrize("depthwise", [False, True])
@settings(max_examples=24)
@given(data=st.data())
def test_conv_transpose2d(backend, depthwise, data):
    check_op(backend, "conv_transpose2d", data.draw(transposed_case(depthwise=depthwise)),
             TRANSPOSED)


@settings(max_examples=25)
@given(case=conv1d_case())
def test_conv1d(backend, case):
    check_op(backend, "conv1d", case, GEOMETRY)


@pytest.mark.parametrize("groups", [2, 32])
def test_grouped_3x3_with_many_channels(groups):
    """3x3 stride-1 convs with 32 channels, where an ungrouped one takes the cpu's
    Winograd path: grouped ones must not (it has no groups)."""
    backend = "cpu"
    rng = np.random.default_rng(groups)
    x = rng.standard_normal((1, 32, 3, 4))
    w = rng.standard_normal((32, 32 // groups, 3, 3))
    case = dict(x=x, weight=w, bias=rng.standard_normal(32), stride=1, padding=1,
                dilation=1, groups=groups)
    check_op(backend, "conv2d", case, GEOMETRY)
    from fastcnn.backends.cpu import winograd
    assert winograd.applies(x.shape, w.shape, (1, 1), (1,) * 4, (1, 1), 1)
    assert not winograd.applies(x.shape, w.shape, (1, 1), (1,) * 4, (1, 1), groups)


# ---------------------------------------------------------------- finite differences


def _check_backward(backend, op, x, w, b, geo, rng):
    r = rng.standard_normal(call(backend, op, x, w, b, **geo).shape)
    dx, dw, db = call(backend, op + "_backward", r, x, w, **geo)

    def loss(x_, w_, b_):
        return float(np.vdot(call(backend, op, x_, w_, b_, **geo), r))

    ways = 1 if backend == "cuda" else 3   # random directions (the simulator is slow)
    check_gradient(lambda t: loss(t, w, b), dx, x, rng, ways)
    check_gradient(lambda t: loss(x, t, b), dw, w, rng, ways)
    check_gradient(lambda t: loss(x, w, t), db, b, rng, ways)


@pytest.mark.parametrize("x_shape, w_shape, geo", [
    ((1, 4, 5, 4), (4, 2, 3, 2), dict(stride=(2, 1), padding=(1, 0, 1, 1), groups=2)),
    ((1, 3, 5, 6), (6, 1, 3, 3), dict(stride=2, padding=1, dilation=(1, 2), groups=3)),
    ((1, 3, 4, 4), (3, 1, 3, 3), dict(padding=1, groups=3)),
])
def test_grouped_conv2d_backward(any_backend, x_shape, w_shape, geo):
    rng = np.random.default_rng(0)
    _check_backward(any_backend, "conv2d", rng.standard_normal(x_shape),
                    rng.standard_normal(w_shape), rng.standard_normal(w_shape[0]), geo, rng)


@pytest.mark.parametrize("x_shape, w_shape, geo", [
    ((1, 4, 3, 3), (4, 2, 4, 3), dict(stride=2, padding=1, output_padding=(1, 0), groups=2)),
    ((1, 3, 3, 2), (3, 2, 3, 2), dict(stride=(1, 3), padding=(0, 1, 2, 0), dilation=2,
                                      output_padding=(1, 2))),
    ((1, 3, 4, 4), (3, 1, 3, 3), dict(stride=2, padding=1, groups=3)),
])
def test_conv_transpose2d_backward(any_backend, x_shape, w_shape, geo):
    rng = np.random.default_rng(1)
    out_channels = w_shape[1] * geo.get("groups", 1)
    _check_backward(any_backend, "conv_transpose2d", rng.standard_normal(x_shape),
                    rng.standard_normal(w_shape), rng.standard_normal(out_channels), geo, rng)


def test_conv1d_backward(any_backend):
    rng = np.random.default_rng(2)
    geo = dict(stride=2, padding=(2, 1), dilation=2, groups=2)
    _check_backward(any_backend, "conv1d", rng.standard_normal((1, 4, 9)),
                    rng.standard_normal((6, 2, 3)), rng.standard_normal(6), geo, rng)


# ---------------------------------------------------------------- algebra


def inner(a, b):
    return float(np.vdot(a.astype(np.float64), b.astype(np.float64)))


@settings(max_examples=25)
@given(case=grouped_case(), data=st.data())
def test_conv_transpose2d_is_the_adjoint_of_conv2d(backend, case, data):
    """<conv2d(x, w), y> == <x, conv_transpose2d(y, w)>: the same weight, stride, padding,
    dilation and groups; output_padding restores x's size where the stride drops rows."""
    x, w = case["x"], case["weight"]
    geo = _split(case, GEOMETRY)
    y = run(backend, "conv2d", x, w, None, **geo)
    r = array(data.draw, y.shape, x.dtype)
    s, d = (np.broadcast_to(case[k], 2) for k in ("stride", "dilation"))
    p = case["padding"] if len(case["padding"]) == 4 else np.repeat(case["padding"], 2)
    op = tuple(int(x.shape[2 + a] + p[2 * a] + p[2 * a + 1] - d[a] * (w.shape[2 + a] - 1) - 1)
               % int(s[a]) for a in range(2))
    back = run(backend, "conv_transpose2d", r, w, None, output_padding=op,
               **_split(case, ("stride", "padding", "groups", "dilation")))
    assert back.shape == x.shape
    scale = inner(np.abs(y), np.abs(r)) + 1e-30
    assert abs(inner(y, r) - inner(x, back)) <= 10 * TOLERANCE[x.dtype] * scale


@settings(max_examples=15)
@given(case=grouped_case())
def test_grouped_conv2d_is_its_groups_concatenated(backend, case):
    x, w, b, g = case["x"], case["weight"], case["bias"], case["groups"]
    geo = _split(case, ("stride", "padding", "dilation"))
    y = run(backend, "conv2d", x, w, b, groups=g, **geo)
    xs, ws = np.split(x, g, axis=1), np.split(w, g, axis=0)
    bs = [None] * g if b is None else np.split(b, g)
    parts = [run(backend, "conv2d", np.ascontiguousarray(xi), np.ascontiguousarray(wi), bi,
                 **geo) for xi, wi, bi in zip(xs, ws, bs)]
    bound = reference("conv2d", np.abs(x), np.abs(w), None if b is None else np.abs(b),
                      groups=g, **geo)
    assert_matches(y, np.concatenate(parts, axis=1).astype(np.float64), 2 * bound, x.dtype)


@settings(max_examples=15)
@given(case=conv1d_case())
def test_conv1d_is_conv2d_of_one_row(backend, case):
    x, w, b = case["x"], case["weight"], case["bias"]
    p = case["padding"]
    y = run(backend, "conv1d", x, w, b, **_split(case, GEOMETRY))
    x2, w2 = (a[:, :, None].copy() for a in (x, w))   # canonical strides
    y2 = run(backend, "conv2d", x2, w2, b, stride=(1, case["stride"]),
             padding=(0, 0) + (p if isinstance(p, tuple) else (p, p)),
             dilation=(1, case["dilation"]), groups=case["groups"])
    np.testing.assert_array_equal(y, y2[:, :, 0])


# ---------------------------------------------------------------- PyTorch


def _torch_grid():
    conv = [("conv2d", dict(stride=s, padding=p, dilation=d, groups=g))
            for s, p, d, g in itertools.product((1, 2), (0, 1, (1, 2)), (1, 2), (1, 2, 4))]
    depthwise = [("depthwise", dict(stride=s, padding=1, dilation=d, groups=4, multiplier=m))
                 for s, d, m in itertools.product((1, 2), (1, 2), (1, 2))]
    transposed = [("conv_transpose2d", dict(stride=s, padding=p, output_padding=o,
                                            groups=g, dilation=d))
                  for s, p, o, g, d in itertools.product((1, 2, 3), (0, 1), (0, 1), (1, 2),
                                                         (1, 2)) if o < max(s, d)]
    conv1d = [("conv1d", dict(stride=s, padding=p, dilation=d, groups=g))
              for s, p, d, g in itertools.product((1, 2), (0, 2), (1, 2), (1, 2))]
    return conv + depthwise + transposed + conv1d


def torch_case(torch, op, args, rng):
    """The arrays, fastcnn's call, PyTorch's function and arguments for one grid point."""
    args = dict(args)
    g = args["groups"]
    if op == "conv1d":
        x, w = rng.standard_normal((2, 4, 11)), rng.standard_normal((6, 4 // g, 3))
        return x, w, rng.standard_normal(6), op, torch.nn.functional.conv1d, args
    if op == "conv_transpose2d":
        x, w = rng.standard_normal((2, 4, 5, 6)), rng.standard_normal((4, 6 // g, 3, 2))
        return x, w, rng.standard_normal(6), op, torch.nn.functional.conv_transpose2d, args
    m = args.pop("multiplier", None)
    shape = (4 * m, 1, 3, 3) if m else (4, 4 // g, 3, 2)
    x, w = rng.standard_normal((2, 4, 7, 8)), rng.standard_normal(shape)
    return x, w, rng.standard_normal(shape[0]), "conv2d", torch.nn.functional.conv2d, args


@pytest.fixture(scope="module")
def torch():
    """torch on one thread (its pool would spin against the kernels' OpenMP threads)."""
    torch = pytest.importorskip("torch")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield torch
    torch.set_num_threads(threads)


@pytest.mark.parametrize("op, args", _torch_grid())
def test_same_as_pytorch(torch, op, args):
    """float64 on the cpu backend: forward and every gradient as PyTorch's to 1e-10."""
    rng = np.random.default_rng(3)
    x, w, b, name, torch_op, args = torch_case(torch, op, args, rng)
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    yt = torch_op(xt, wt, bt, **args)
    dy = rng.standard_normal(tuple(yt.shape))
    yt.backward(torch.tensor(dy))
    y = call("cpu", name, x, w, b, **args)
    grads = call("cpu", name + "_backward", dy, x, w, **args)
    for got, want in zip((y, *grads), (yt, xt.grad, wt.grad, bt.grad)):
        want = want.detach().numpy()
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10 * np.abs(want).max())


# ---------------------------------------------------------------- bad input

X = np.zeros((2, 4, 8, 8), np.float32)
W = np.zeros((6, 2, 3, 3), np.float32)     # groups=2: 4 -> 6 channels
WT = np.zeros((4, 3, 3, 3), np.float32)    # transposed, groups=2: 4 -> 6 channels
X1, W1 = X[:, :, 0], W[:, :, 0]

GROUPS_ERRORS = [
    (ValueError, r"groups=3 does not divide x's 4 input channels", dict(groups=3)),
    (ValueError, "groups must be >= 1, got 0", dict(groups=0)),
    (TypeError, "groups must be an int, got True", dict(groups=True)),
    (TypeError, "groups must be an int, got 2.0", dict(groups=2.0)),
    (ValueError, r"weight expects 2 input channels but x has 4 .*groups=1\)", dict(groups=1)),
]


@pytest.mark.parametrize("error, match, kwargs", GROUPS_ERRORS)
def test_conv2d_groups_rejected(any_backend, error, match, kwargs):
    raises(any_backend, error, match, "conv2d", X, W, **kwargs)


def test_conv2d_groups_must_divide_the_outputs(any_backend):
    raises(any_backend, ValueError, "groups=4 does not divide weight's 6 output channels",
           "conv2d", X, np.zeros((6, 1, 3, 3), np.float32), groups=4)
    raises(any_backend, ValueError, r"bias must have shape \(6,\)", "conv2d", X, W,
           np.zeros(4, np.float32), groups=2)
    raises(any_backend, ValueError, r"dy must have the output's shape \(2, 6, 6, 6\)",
           "conv2d_backward", np.zeros((2, 4, 6, 6), np.float32), X, W, groups=2)


TRANSPOSED_ERRORS = [
    (ValueError, r"output_padding \(2, 2\) must be smaller than stride \(2, 2\) or dilation",
     dict(stride=2, output_padding=2)),
    (ValueError, r"output_padding \(1, 1\) must be smaller", dict(output_padding=1)),
    (ValueError, "output_padding must be >= 0", dict(output_padding=-1)),
    (ValueError, r"padding='same' is not supported for a transposed", dict(padding="same")),
    (ValueError, r"padding='same_upper' is not supported", dict(padding="same_upper")),
    (ValueError, r"the output would be 0x0: padding \(5, 5, 5, 5\)", dict(padding=5)),
    (ValueError, r"groups=3 does not divide x's 4 input channels", dict(groups=3)),
    (ValueError, r"must be an int, \(h, w\), \(top, bottom", dict(padding=(1, 1, 1))),
]


@pytest.mark.parametrize("error, match, kwargs", TRANSPOSED_ERRORS)
def test_conv_transpose2d_rejects(any_backend, error, match, kwargs):
    raises(any_backend, error, match, "conv_transpose2d", X, WT, **{"groups": 2, **kwargs})


def test_conv_transpose2d_weight_is_input_channels_first(any_backend):
    raises(any_backend, ValueError, r"weight expects 6 input channels but x has 4",
           "conv_transpose2d", X, np.zeros((6, 4, 3, 3), np.float32))


def test_conv_transpose2d_accepts_valid_and_four_pads(backend):
    y = run(backend, "conv_transpose2d", X, WT, None, padding="valid", groups=2)
    assert y.shape == (2, 6, 10, 10)
    y = run(backend, "conv_transpose2d", X, WT, None, padding=(0, 1, 2, 3), groups=2)
    assert y.shape == (2, 6, 9, 5)


def test_conv_transpose2d_backward_rejects(any_backend):
    dy = np.zeros((2, 6, 10, 10), np.float32)
    raises(any_backend, ValueError, r"dy must have the output's shape \(2, 6, 10, 10\)",
           "conv_transpose2d_backward", dy[:, :, 1:], X, WT, groups=2)
    raises(any_backend, ValueError, r"bias must have shape \(6,\)", "conv_transpose2d", X, WT,
           np.zeros(4, np.float32), groups=2)


CONV1D_ERRORS = [
    (ValueError, r"x must be 3-D \(N, C, L\)", (X, W1), {}),
    (ValueError, r"weight must be 3-D \(out_channels, in_channels/groups, k\)", (X1, W), {}),
    (ValueError, r"padding must be an int, a pair \(left, right\)", (X1, W1),
     dict(padding=(1, 1, 1, 1), groups=2)),
    (ValueError, "padding='same' needs stride 1", (X1, W1),
     dict(padding="same", stride=2, groups=2)),
    (ValueError, r"kernel \(size 3, extent 9\) is larger than the padded input", (X1, W1),
     dict(dilation=4, groups=2)),
    (ValueError, "stride must be an int", (X1, W1), dict(stride=(1, 2), groups=2)),
    (ValueError, "groups=3 does not divide", (X1, W1), dict(groups=3)),
]


@pytest.mark.parametrize("error, match, args, kwargs", CONV1D_ERRORS)
def test_conv1d_rejects(any_backend, error, match, args, kwargs):
    raises(any_backend, error, match, "conv1d", *args, **kwargs)


def test_conv1d_padding_modes(backend):
    assert run(backend, "conv1d", X1, W1, None, padding="same", groups=2).shape == (2, 6, 8)
    assert run(backend, "conv1d", X1, W1, None, padding="same_upper", stride=3,
               groups=2).shape == (2, 6, 3)
    assert run(backend, "conv1d", X1, W1, None, padding=(2, 0), groups=2).shape == (2, 6, 8)
