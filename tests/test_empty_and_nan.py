"""Edge cases every backend must answer like the reference (issue 11, item 3): inputs with
no pixels (one clear error everywhere), with no channels or features (an empty sum,
computed), and NaN or infinity, which must reach exactly the entries the definition
sends them to, no more (the Winograd convolutions used to spread them over whole
tiles)."""

import numpy as np
import pytest

import fastcnn.functional as F
from helpers import run, winograd_wherever_it_applies

# The simulator's NumPy arithmetic warns on inf - inf and 0 * inf, as the kernels compute.
# NumPy warns likewise on log(0) in the reference.
pytestmark = [pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning"),
              pytest.mark.filterwarnings("ignore:divide by zero encountered:RuntimeWarning")]
RNG = np.random.default_rng(11)


def normal(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def same_as_reference(backend, op, *arrays, **kwargs):
    """op's result on backend equals the reference's: NaN where NaN, the same
    infinities, the other entries close."""
    want = F.__dict__[op](*arrays, backend="reference", **kwargs)
    got = run(backend, op, *arrays, **kwargs)
    want, got = (want, got) if isinstance(want, tuple) else ((want,), (got,))
    for i, (w, g) in enumerate(zip(want, got)):
        if w is None:
            assert g is None
            continue
        w, g = np.asarray(w), np.asarray(g)
        assert g.shape == w.shape and g.dtype == w.dtype, f"result {i}"
        np.testing.assert_array_equal(np.isnan(g), np.isnan(w), err_msg=f"result {i}: NaN")
        finite = np.isfinite(w)
        np.testing.assert_array_equal(g[~finite & ~np.isnan(w)], w[~finite & ~np.isnan(w)])
        np.testing.assert_allclose(g[finite], w[finite], rtol=1e-4, atol=1e-4,
                                   err_msg=f"result {i}")


# ---------------------------------------------------------------- no pixels


NO_PIXELS = [  # (op, positional args, keyword args): each window would see only padding
    ("max_pool2d", (np.ones((2, 3, 0, 5), np.float32), 2), dict(padding=1)),
    ("avg_pool2d", (np.ones((2, 3, 5, 0), np.float32), 2), dict(padding=1)),
    ("im2col", (np.ones((2, 3, 0, 0), np.float32), 3), dict(padding=2)),
    ("conv2d", (np.ones((2, 3, 0, 5), np.float32), np.ones((4, 3, 3, 3), np.float32)),
     dict(padding=2)),
    # Winograd's shapes (16 channels, 3x3, stride 1): its backward divided by zero
    ("conv2d_backward", (np.ones((2, 16, 2, 7), np.float32), np.ones((2, 16, 0, 5), np.float32),
                         np.ones((16, 16, 3, 3), np.float32)), dict(padding=2)),
]


@pytest.mark.parametrize("op, args, kwargs", NO_PIXELS, ids=[c[0] for c in NO_PIXELS])
def test_an_input_without_pixels_is_refused_alike_everywhere(any_backend, op, args, kwargs):
    """max_pool2d of a 0-row image with padding returned uninitialised memory on cpu where
    the reference returned -inf; PyTorch refuses such input, and so does every backend."""
    with pytest.raises(ValueError, match=rf"{op}: the input has no pixels \(\dx\d\)"):
        run(any_backend, op, *args, **kwargs)


# ---------------------------------------------------------------- no channels


NO_CHANNELS = [   # empty sums: the bias, or zeros; empty outputs
    ("conv2d", (np.ones((2, 0, 5, 5), np.float32), np.ones((3, 0, 3, 3), np.float32),
                np.arange(3, dtype=np.float32)), dict(padding=1)),
    ("conv2d", (np.ones((2, 0, 5, 5), np.float32), np.ones((3, 0, 1, 1), np.float32)), {}),
    ("conv2d_backward", (np.ones((2, 3, 3, 3), np.float32), np.ones((2, 0, 5, 5), np.float32),
                         np.ones((3, 0, 3, 3), np.float32)), {}),
    ("im2col", (np.ones((2, 0, 5, 5), np.float32), 3), {}),
    ("max_pool2d", (np.ones((2, 0, 4, 4), np.float32), 2), {}),
    ("avg_pool2d", (np.ones((2, 0, 4, 4), np.float32), 2), {}),
    ("upsample_nearest2d", (np.ones((2, 0, 3, 3), np.float32), 2), {}),
    ("linear", (np.ones((2, 0), np.float32), np.ones((3, 0), np.float32),
                np.arange(3, dtype=np.float32)), {}),
    ("linear_backward", (np.ones((2, 3), np.float32), np.ones((2, 0), np.float32),
                         np.ones((3, 0), np.float32)), {}),
    ("matmul", (np.ones((2, 0), np.float32), np.ones((0, 3), np.float32)), {}),
    ("maxout", (np.ones((2, 0, 3), np.float32), 2), {}),
    # the cuda backend divided by the number of channels or groups in these
    ("maxout_backward", (np.ones((2, 0), np.float32), np.zeros((2, 0), np.int32), 2), {}),
    ("linear_backward", (np.ones((2, 0), np.float32), np.ones((2, 3), np.float32),
                         np.ones((0, 3), np.float32)), {}),
    ("batch_norm", (np.ones((2, 0, 3, 3), np.float32), np.ones(0, np.float32),
                    np.zeros(0, np.float32), np.zeros(0, np.float32), np.ones(0, np.float32)),
     dict(training=False)),
]


@pytest.mark.parametrize("op, args, kwargs", NO_CHANNELS, ids=[c[0] for c in NO_CHANNELS])
def test_no_channels_give_the_reference_answer(backend, op, args, kwargs):
    """The cuda conv divided by zero (its workspace per image was 0 bytes)."""
    same_as_reference(backend, op, *args, **kwargs)


# ---------------------------------------------------------------- a stride near 2**31

BIG = 2**31 - 1   # fits the kernels' C ints; one output along that axis
X_SMALL = normal(2, 3, 4, 5)
HUGE_STRIDE = [
    ("conv2d", (X_SMALL, normal(2, 3, 2, 2)), dict(padding=(2, 1), dilation=(2, 1))),
    ("conv2d_backward", (normal(2, 2, 1, 3), X_SMALL, normal(2, 3, 2, 2)),
     dict(padding=(2, 1), dilation=(2, 1))),
    ("im2col", (X_SMALL, 2), dict(padding=1)),
    ("max_pool2d", (X_SMALL, 2), dict(padding=1)),
    ("avg_pool2d", (X_SMALL, 2), dict(padding=1)),
    ("avg_pool2d_backward", (normal(2, 3, 1, 3), X_SMALL.shape, 2), dict(padding=1)),
]


@pytest.mark.parametrize("op, args, kwargs", HUGE_STRIDE, ids=[c[0] for c in HUGE_STRIDE])
def test_a_stride_near_2_31_gives_the_reference_answer(backend, op, args, kwargs):
    """The cpu kernels' tap ranges summed the stride in an int and overflowed: wrong values
    (found by the fuzz suite)."""
    stride = (BIG, 2) if op in ("avg_pool2d_backward", "conv2d_backward") else (BIG, BIG)
    same_as_reference(backend, op, *args, stride=stride, **kwargs)


# ---------------------------------------------------------------- NaN and infinity


def with_value(a, value, *where):
    a = a.copy()
    a[where] = value
    return a


# Winograd's shapes (16 channels, 3x3, stride 1), with a NaN or an infinity placed
# inside a tile, where its transforms would mix it with the neighbouring taps; the cpu's
# Made to take Winograd wherever it applies (16 channels), from two chunks of tiles on
# (96 images of these); the simulator runs a few.
X, W, DY = normal(96, 16, 6, 7), normal(16, 16, 3, 3), normal(96, 16, 6, 7)


def images(backend, *arrays):
    return [a[:2] if backend == "cuda" else a for a in arrays]


@pytest.mark.parametrize("value", [np.nan, np.inf], ids=["nan", "inf"])
@pytest.mark.parametrize("padding", [0, 1, 2])
def test_winograd_conv2d_spreads_nan_and_inf_as_the_definition(backend, value, padding):
    (x0,) = images(backend, X)
    x = with_value(x0, value, 0, 1, 2, 3)
    with winograd_wherever_it_applies(backend):
        same_as_reference(backend, "conv2d", x, W, None, 1, padding)
        same_as_reference(backend, "conv2d", x0, with_value(W, value, 3, 2, 1, 1), None, 1,
                          padding)


@pytest.mark.parametrize("value", [np.nan, np.inf], ids=["nan", "inf"])
@pytest.mark.parametrize("padding", [0, 1, 2])
def test_winograd_conv2d_backward_spreads_nan_and_inf_as_the_definition(backend, value,
                                                                        padding):
    """With a NaN in x, Winograd's dweight had NaN in taps the reference keeps finite."""
    x, dy = images(backend, X, DY)
    oh, ow = 6 + 2 * padding - 2, 7 + 2 * padding - 2
    dy = dy[:, :, :oh, :ow] if padding < 1 else np.pad(dy, ((0, 0), (0, 0), (0, oh - 6),
                                                            (0, ow - 7)))
    dy = np.ascontiguousarray(dy)
    with winograd_wherever_it_applies(backend):
        same_as_reference(backend, "conv2d_backward", dy, with_value(x, value, 1, 4, 2, 2), W,
                          1, padding)
        same_as_reference(backend, "conv2d_backward", with_value(dy, value, 0, 5, 1, 2), x, W,
                          1, padding)


@pytest.mark.parametrize("value", [np.nan, np.inf], ids=["nan", "inf"])
def test_winograd_conv_transpose2d_spreads_nan_and_inf_as_the_definition(backend, value):
    """A transposed 3x3 stride-1 conv's forward is a Winograd input gradient: redone
    directly when it meets a NaN or an infinity, as conv2d's is."""
    (x,) = images(backend, np.ascontiguousarray(DY[:, :, :4, :5]))
    with winograd_wherever_it_applies(backend):
        same_as_reference(backend, "conv_transpose2d", with_value(x, value, 1, 3, 2, 2), W,
                          None, 1, 1)


ELSEWHERE = [   # a NaN in the first argument of every other op built on a sum or a max
    ("conv2d", (normal(2, 3, 6, 6), normal(4, 3, 3, 3)), dict(padding=1)),
    ("conv2d_backward", (normal(2, 4, 6, 6), normal(2, 3, 6, 6), normal(4, 3, 3, 3)),
     dict(padding=1)),
    ("im2col", (normal(2, 3, 6, 6), 3), dict(padding=1, stride=2)),
    ("col2im", (normal(2, 27, 9), (2, 3, 6, 6), 3), dict(padding=1, stride=2)),
    ("max_pool2d", (normal(2, 3, 6, 6), 3), dict(stride=2, padding=1)),
    ("avg_pool2d", (normal(2, 3, 6, 6), 3), dict(stride=2, padding=1)),
    ("avg_pool2d_backward", (normal(2, 3, 3, 3), (2, 3, 6, 6), 3), dict(stride=2, padding=1)),
    ("upsample_nearest2d_backward", (normal(2, 3, 6, 6), 2), {}),
    ("matmul", (normal(5, 7), normal(7, 4)), {}),
    ("linear", (normal(5, 7), normal(4, 7), normal(4)), {}),
    ("linear_backward", (normal(5, 4), normal(5, 7), normal(4, 7)), {}),
]


@pytest.mark.parametrize("op, args, kwargs", ELSEWHERE, ids=[c[0] for c in ELSEWHERE])
def test_nan_spreads_as_the_definition(backend, op, args, kwargs):
    first = args[0].copy()
    first.reshape(-1)[[3, first.size // 2]] = [np.nan, np.inf]
    same_as_reference(backend, op, first, *args[1:], **kwargs)
    if len(args) > 1 and isinstance(args[1], np.ndarray):
        second = args[1].copy()
        second.reshape(-1)[[1, second.size - 2]] = [np.nan, -np.inf]
        same_as_reference(backend, op, args[0], second, *args[2:], **kwargs)


@pytest.mark.parametrize("p", [np.nan, 1.5, -0.5, np.inf, 0.0, 1.0])
def test_bce_of_a_probability_outside_0_1_is_the_reference_one(backend, p):
    """The cuda bce took the clamp at -100 for any log it could not take, so a NaN (or a
    probability outside [0, 1]) gave a finite loss where the reference gives NaN."""
    probs = np.array([0.25, p, 0.5], np.float32)
    targets = np.array([1.0, 0.5, 0.0], np.float32)
    want = F.bce(probs, targets, backend="reference")
    got = run(backend, "bce", probs, targets)
    assert (np.isnan(got) and np.isnan(want)) or got == pytest.approx(want, rel=1e-5)
