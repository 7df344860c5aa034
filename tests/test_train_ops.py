"""The training ops (activations, dropout, batch norm, losses, optimizer steps): every
fast backend equals the reference, and every backward equals finite differences."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fastcnn.functional as F
from cases import DTYPES, array
from helpers import assert_matches, host, reference, run, to_backend
from helpers import check_gradient as check

ACTIVATIONS = {  # op: (extra arguments, what its backward takes besides dy: "x" or "y")
    "relu": ((), "y"), "leaky_relu": ((0.1,), "x"), "elu": ((0.7,), "y"),
    "sigmoid": ((), "y"), "tanh": ((), "y"), "softmax": ((), "y"),
}


@st.composite
def activation_case(draw):
    dtype = draw(DTYPES)
    shape = tuple(draw(st.lists(st.integers(1, 6), min_size=2, max_size=4)))
    return array(draw, shape, dtype, -3, 3), array(draw, shape, dtype)


@pytest.mark.parametrize("op", sorted(ACTIVATIONS))
@given(case=activation_case())
def test_activation_matches_reference(backend, op, case):
    x, dy = case
    if op == "softmax":
        x, dy = x.reshape(len(x), -1), dy.reshape(len(x), -1)
    args, saved = ACTIVATIONS[op]
    y = run(backend, op, x, *args)
    want = reference(op, x, *args)
    assert_matches(y, want, np.abs(want) + 1, x.dtype)
    keep = y if saved == "y" else x
    dx = run(backend, op + "_backward", dy, keep, *args)
    want = reference(op + "_backward", dy, keep, *args)
    assert_matches(dx, want, np.abs(want) + np.abs(dy), x.dtype)


@pytest.mark.parametrize("op", sorted(ACTIVATIONS))
def test_activation_gradient(any_backend, op):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 6)) * 2
    x[np.abs(x) < 0.01] = 0.5   # keep away from the kinks
    args, saved = ACTIVATIONS[op]
    r = rng.standard_normal(x.shape)
    y = run(any_backend, op, x, *args)
    dx = run(any_backend, op + "_backward", r, y if saved == "y" else x, *args)
    check(lambda t: float(np.vdot(run(any_backend, op, t, *args), r)), dx, x, rng)


@given(pool=st.integers(1, 4), data=st.data())
def test_maxout(backend, pool, data):
    dtype = data.draw(DTYPES)
    shape = (data.draw(st.integers(1, 4)), pool * data.draw(st.integers(1, 4)),
             data.draw(st.integers(1, 3)))
    x = (array(data.draw, shape, dtype) * 2).round().astype(dtype)   # ties are common
    y, idx = run(backend, "maxout", x, pool)
    want_y, want_idx = reference("maxout", x, pool)
    np.testing.assert_array_equal(idx, want_idx)
    assert_matches(y, want_y, np.abs(want_y), dtype)
    dy = array(data.draw, y.shape, dtype)
    dx = run(backend, "maxout_backward", dy, idx, pool)
    assert_matches(dx, reference("maxout_backward", dy, idx, pool), np.abs(dx) + 1, dtype)


def test_maxout_gradient(any_backend):
    rng = np.random.default_rng(1)
    x = rng.permutation(4 * 6 * 2).reshape(4, 6, 2) * 0.01
    r = rng.standard_normal((4, 2, 2))
    _, idx = run(any_backend, "maxout", x, 3)
    dx = run(any_backend, "maxout_backward", r, idx, 3)
    check(lambda t: float(np.vdot(run(any_backend, "maxout", t, 3)[0], r)), dx, x, rng)


@given(p=st.sampled_from([0.0, 0.1, 0.5, 0.9]), seed=st.integers(0, 2**32 - 1), data=st.data())
def test_dropout_same_mask_on_every_backend(backend, p, seed, data):
    dtype = data.draw(DTYPES)
    x = array(data.draw, (3, 5, 7), dtype)
    y, mask = run(backend, "dropout", x, p, seed)
    want_y, want_mask = F.dropout(x, p, seed, backend="reference")
    np.testing.assert_array_equal(mask, want_mask)
    np.testing.assert_array_equal(y, want_y)
    dy = array(data.draw, x.shape, dtype)
    np.testing.assert_array_equal(run(backend, "dropout_backward", dy, mask), dy * want_mask)


def test_dropout_keeps_the_right_share():
    x = np.ones(200_000, np.float32)
    for p in (0.1, 0.5, 0.8):
        y, mask = F.dropout(x, p, seed=7)
        assert abs((mask > 0).mean() - (1 - p)) < 0.01
        assert abs(y.mean() - 1) < 0.02
        assert set(np.unique(mask)) == {0, np.float32(1 / (1 - p))}
    assert not np.array_equal(F.dropout(x, 0.5, 1)[1], F.dropout(x, 0.5, 2)[1])


@pytest.mark.parametrize("shape", [(6, 3), (4, 3, 2, 5)])
@pytest.mark.parametrize("training", [True, False])
def test_batch_norm(backend, shape, training):
    rng = np.random.default_rng(2)
    for dtype in (np.float32, np.float64):
        x = (rng.standard_normal(shape) * 3 + 1).astype(dtype)
        gamma, beta = rng.standard_normal(3).astype(dtype), rng.standard_normal(3).astype(dtype)
        rm, rv = rng.standard_normal(3).astype(dtype), rng.uniform(0.5, 2, 3).astype(dtype)
        want_rm, want_rv = rm.astype(np.float64), rv.astype(np.float64)
        want = F.batch_norm(x.astype(np.float64), gamma.astype(np.float64),
                            beta.astype(np.float64), want_rm, want_rv, 0.1, 1e-5, training,
                            backend="reference")
        dev = to_backend(backend, x, gamma, beta, rm, rv)
        got = host(F.batch_norm(*dev, 0.1, 1e-5, training, backend=backend))
        for g, w in zip(got, want):
            assert_matches(g, w, np.abs(w) + 1, dtype)
        assert_matches(host(dev[3]), want_rm, np.abs(want_rm) + 1, dtype)
        assert_matches(host(dev[4]), want_rv, np.abs(want_rv) + 1, dtype)
        dy = rng.standard_normal(shape).astype(dtype)
        _, mean, invstd = want
        got = run(backend, "batch_norm_backward", dy, x, gamma, mean.astype(dtype),
                  invstd.astype(dtype), training)
        want = reference("batch_norm_backward", dy, x, gamma, mean, invstd, training)
        for g, w in zip(got, want):
            assert_matches(g, w, np.abs(w) + np.abs(dy).sum() / len(w), dtype)


@pytest.mark.parametrize("shape", [(6, 3), (4, 3, 2, 5)])
def test_batch_norm_gradient(any_backend, shape):
    rng = np.random.default_rng(3)
    x = rng.standard_normal(shape) * 2 + 1
    gamma, beta = rng.standard_normal(3), rng.standard_normal(3)
    r = rng.standard_normal(shape)
    _, mean, invstd = run(any_backend, "batch_norm", x, gamma, beta)
    dx, dgamma, dbeta = run(any_backend, "batch_norm_backward", r, x, gamma, mean, invstd)

    def loss(x_, g_, b_):
        return float(np.vdot(run(any_backend, "batch_norm", x_, g_, b_)[0], r))

    check(lambda t: loss(t, gamma, beta), dx, x, rng)
    check(lambda t: loss(x, t, beta), dgamma, gamma, rng)
    check(lambda t: loss(x, gamma, t), dbeta, beta, rng)


LOSSES = {  # loss: (prediction strategy bounds, target maker)
    "bce_with_logits": lambda rng, s: (rng.standard_normal(s) * 3, rng.uniform(0, 1, s)),
    "bce": lambda rng, s: (rng.uniform(0.05, 0.95, s), rng.uniform(0, 1, s)),
    "mse": lambda rng, s: (rng.standard_normal(s), rng.standard_normal(s)),
}


@pytest.mark.parametrize("loss", sorted(LOSSES))
def test_elementwise_losses(any_backend, loss):
    rng = np.random.default_rng(4)
    for dtype in (np.float32, np.float64):
        pred, target = (a.astype(dtype) for a in LOSSES[loss](rng, (5, 3)))
        value = run(any_backend, loss, pred, target)
        assert isinstance(value, float)
        assert abs(value - reference(loss, pred, target)) <= 1e-5 * (1 + abs(value))
        grad = run(any_backend, loss + "_backward", pred, target)
        want = reference(loss + "_backward", pred, target)
        assert_matches(grad, want, np.abs(want) + 1e-3, dtype)
    pred, target = LOSSES[loss](rng, (4, 2))
    grad = run(any_backend, loss + "_backward", pred, target)
    check(lambda t: run(any_backend, loss, t, target), grad, pred, rng)


def test_softmax_cross_entropy(any_backend):
    rng = np.random.default_rng(5)
    for dtype in (np.float32, np.float64):
        logits = (rng.standard_normal((7, 5)) * 4).astype(dtype)
        labels = rng.integers(0, 5, 7)
        loss, probs = run(any_backend, "softmax_cross_entropy", logits, labels)
        want_loss, want_probs = reference("softmax_cross_entropy", logits, labels)
        assert isinstance(loss, float) and abs(loss - want_loss) <= 1e-5 * (1 + want_loss)
        assert_matches(probs, want_probs, want_probs + 1e-3, dtype)
        grad = run(any_backend, "softmax_cross_entropy_backward", probs, labels)
        want = reference("softmax_cross_entropy_backward", want_probs, labels)
        assert_matches(grad, want, np.abs(want) + 1e-3, dtype)
        assert run(any_backend, "count_correct", logits, labels) == int(
            (logits.argmax(1) == labels).sum())
    logits = rng.standard_normal((4, 3))
    labels = np.array([0, 2, 1, 2])
    _, probs = run(any_backend, "softmax_cross_entropy", logits, labels)
    grad = run(any_backend, "softmax_cross_entropy_backward", probs, labels)
    check(lambda t: run(any_backend, "softmax_cross_entropy", t, labels)[0], grad, logits, rng)


def test_count_correct_into_a_counter(any_backend):
    """count_correct(into=) adds to a running count where the scores live (fit's, on the
    GPU, needs no copy per step)."""
    rng = np.random.default_rng(6)
    logits, labels = rng.standard_normal((9, 4)), rng.integers(0, 4, 9)
    logits_b, labels_b, counter = to_backend(any_backend, logits, labels,
                                             np.array([5], np.int64))
    for _ in range(2):
        assert F.count_correct(logits_b, labels_b, into=counter) is counter
    assert host(counter)[0] == 5 + 2 * (logits.argmax(1) == labels).sum()


def test_softmax_cross_entropy_is_stable():
    logits = np.array([[1000.0, 0.0, -1000.0], [-1000.0, -1000.0, 1000.0]], np.float32)
    loss, probs = F.softmax_cross_entropy(logits, np.array([0, 1]))
    assert np.isfinite(loss) and np.isfinite(probs).all()
    assert abs(loss - 1000.0) < 1e-3   # the second row costs 2000, the first 0


OPTIMIZERS = {  # step op: (state array names, keyword arguments)
    "sgd_step": (("velocity",), dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)),
    "adam_step": (("m", "v"), dict(step=3, lr=0.01, weight_decay=0.01)),
    "adagrad_step": (("sum_sq",), dict(step=2, lr=0.1, lr_decay=0.01, weight_decay=0.01)),
    "rmsprop_step": (("square_avg", "buf"), dict(lr=0.01, momentum=0.5, weight_decay=0.01)),
    "adadelta_step": (("square_avg", "acc_delta"), dict(lr=1.0, weight_decay=0.01)),
}


def check_optimizer_step(backend, step, names, kwargs, shape, rng):
    """One in-place step on backend equals the float64 reference step, for the parameter
    and every state array, in both dtypes."""
    for dtype in (np.float32, np.float64):
        param, grad = (rng.standard_normal(shape).astype(dtype) for _ in range(2))
        states = [rng.uniform(0.1, 1, shape).astype(dtype) for _ in names]
        want = [a.astype(np.float64) for a in [param] + states]
        getattr(F, step)(want[0], grad.astype(np.float64), *want[1:], **kwargs,
                         backend="reference")
        dev = to_backend(backend, param, grad, *states)
        getattr(F, step)(dev[0], dev[1], *dev[2:], **kwargs, backend=backend)
        for got, w in zip([dev[0]] + list(dev[2:]), want):
            assert_matches(host(got), w, np.abs(w) + 1, dtype)


@pytest.mark.parametrize("step", sorted(OPTIMIZERS))
def test_optimizer_step_matches_reference(backend, step):
    names, kwargs = OPTIMIZERS[step]
    check_optimizer_step(backend, step, names, kwargs, (3, 4), np.random.default_rng(6))


# The compiled cpu loops cut arrays into chunks: these run them over many chunks and a
# ragged last one (cpu only: the CUDA simulator would take minutes over such arrays).
@pytest.mark.parametrize("backend", ["cpu"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_on_large_arrays(backend, dtype):
    """NaN propagates forward and gets no gradient; out may be the input (in place)."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((3, 50_001)).astype(dtype)
    x[0, :4] = [np.nan, 0.0, -0.0, np.inf]
    dy = rng.standard_normal(x.shape).astype(dtype)
    y = run(backend, "relu", x)
    np.testing.assert_array_equal(y, reference("relu", x).astype(dtype))
    np.testing.assert_array_equal(run(backend, "relu_backward", dy, y),
                                  reference("relu_backward", dy, y).astype(dtype))
    (dev,) = to_backend(backend, x.copy())
    assert F.relu(dev, out=dev, backend=backend) is dev
    np.testing.assert_array_equal(host(dev), y)


STEP_VARIANTS = [
    ("sgd_step", ("velocity",), dict(lr=0.1)),
    ("sgd_step", ("velocity",), dict(lr=0.1, momentum=0.9)),
    ("sgd_step", ("velocity",), dict(lr=0.1, momentum=0.5, nesterov=True, weight_decay=0.1)),
    ("adam_step", ("m", "v"), dict(step=1, lr=0.01)),
    ("adam_step", ("m", "v"), dict(step=7, lr=0.01, beta1=0.8, beta2=0.99, eps=1e-6,
                                   weight_decay=0.1)),
]


@pytest.mark.parametrize("backend", ["cpu"])
@pytest.mark.parametrize("step, names, kwargs", STEP_VARIANTS)
def test_optimizer_steps_on_large_arrays(backend, step, names, kwargs):
    """Every branch of the steps (momentum or not, Nesterov, weight decay)."""
    check_optimizer_step(backend, step, names, kwargs, (7, 20_011), np.random.default_rng(8))
