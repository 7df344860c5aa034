"""Each optimizer against a step computed by hand on a tiny problem.

The problem: one Linear(2, 1) without bias, w = (1, 2), one example x = (1, 1),
target 0, MSE loss. The prediction is 3, d loss / d pred = 2 * 3 = 6, so the
gradient is g = (6, 6) at the first step. The expected values below are written
out from each method's formulas (PyTorch's), in plain Python floats.
"""

import math

import numpy as np
import pytest

from fastcnn import init, nn, optim
from fastcnn.model import Sequential


def tiny(opt, steps, **kwargs):
    """w after `steps` updates with the gradient recomputed at every step."""
    model = Sequential(nn.Linear(2, 1, bias=False, dtype=np.float64))
    model[0].params["weight"][:] = [[1.0, 2.0]]
    opt = opt(model.parameters(), **kwargs)
    loss = nn.MSE()
    x, target = np.ones((1, 2)), np.zeros((1, 1))
    for _ in range(steps):
        loss.forward(model.forward(x), target)
        model.backward(loss.backward())
        opt.step()
    return model[0].params["weight"][0]


def gradient(w):
    return 2 * (w[0] + w[1])   # d/dw_i (w . x)^2 with x = (1, 1): the same for both weights


def test_sgd():
    g = gradient([1, 2])                                     # 6
    np.testing.assert_allclose(tiny(optim.SGD, 1, lr=0.1), [1 - 0.6, 2 - 0.6])
    # weight decay adds wd * w to the gradient
    np.testing.assert_allclose(tiny(optim.SGD, 1, lr=0.1, weight_decay=0.5),
                               [1 - 0.1 * (g + 0.5), 2 - 0.1 * (g + 1.0)])
    # momentum: v1 = g1, w1 = w0 - lr v1; v2 = m v1 + g2, w2 = w1 - lr v2
    w1 = [1 - 0.01 * g, 2 - 0.01 * g]
    g2 = gradient(w1)
    v2 = 0.9 * g + g2
    np.testing.assert_allclose(tiny(optim.SGD, 2, lr=0.01, momentum=0.9),
                               [w1[0] - 0.01 * v2, w1[1] - 0.01 * v2])
    # Nesterov: the step is g + m v
    np.testing.assert_allclose(tiny(optim.SGD, 1, lr=0.01, momentum=0.9, nesterov=True),
                               [1 - 0.01 * (g + 0.9 * g), 2 - 0.01 * (g + 0.9 * g)])


def test_adam():
    lr, b1, b2, eps = 0.1, 0.9, 0.999, 1e-8
    g1 = gradient([1, 2])
    # step 1: bias-corrected moments are g and g^2, so the step is lr * g / (|g| + eps)
    w1 = [w - lr * g1 / (abs(g1) + eps) for w in (1, 2)]
    np.testing.assert_allclose(tiny(optim.Adam, 1, lr=lr), w1)
    g2 = gradient(w1)
    m = b1 * (1 - b1) * g1 + (1 - b1) * g2
    v = b2 * (1 - b2) * g1 ** 2 + (1 - b2) * g2 ** 2
    step = lr * (m / (1 - b1 ** 2)) / (math.sqrt(v / (1 - b2 ** 2)) + eps)
    np.testing.assert_allclose(tiny(optim.Adam, 2, lr=lr), [w - step for w in w1])
    # weight decay: g + wd * w in the moments
    gd = [g1 + 0.1 * 1, g1 + 0.1 * 2]
    np.testing.assert_allclose(tiny(optim.Adam, 1, lr=lr, weight_decay=0.1),
                               [w - lr * g / (abs(g) + eps) for w, g in zip((1, 2), gd)])


def test_adagrad():
    lr, eps = 0.1, 1e-10
    g1 = gradient([1, 2])
    w1 = [w - lr * g1 / (math.sqrt(g1 ** 2) + eps) for w in (1, 2)]
    np.testing.assert_allclose(tiny(optim.Adagrad, 1, lr=lr), w1)
    g2 = gradient(w1)   # step 2 with lr_decay: lr / (1 + 1 * lr_decay)
    w2 = [w - lr / 1.5 * g2 / (math.sqrt(g1 ** 2 + g2 ** 2) + eps) for w in w1]
    np.testing.assert_allclose(tiny(optim.Adagrad, 2, lr=lr, lr_decay=0.5), w2)


def test_rmsprop():
    lr, alpha, eps = 0.01, 0.99, 1e-8
    g = gradient([1, 2])
    s = (1 - alpha) * g ** 2
    np.testing.assert_allclose(tiny(optim.RMSprop, 1, lr=lr),
                               [w - lr * g / (math.sqrt(s) + eps) for w in (1, 2)])
    # with momentum the first step is the same (buf = step), the second adds m * buf
    w1 = [w - lr * g / (math.sqrt(s) + eps) for w in (1, 2)]
    g2 = gradient(w1)
    s2 = alpha * s + (1 - alpha) * g2 ** 2
    buf = 0.5 * g / (math.sqrt(s) + eps) + g2 / (math.sqrt(s2) + eps)
    np.testing.assert_allclose(tiny(optim.RMSprop, 2, lr=lr, momentum=0.5),
                               [w - lr * buf for w in w1])


def test_adadelta():
    rho, eps = 0.9, 1e-6
    g = gradient([1, 2])
    square_avg = (1 - rho) * g ** 2
    delta = math.sqrt(0 + eps) / math.sqrt(square_avg + eps) * g
    np.testing.assert_allclose(tiny(optim.Adadelta, 1, lr=1.0), [w - delta for w in (1, 2)])


def test_zero_grad_and_errors():
    model = Sequential(nn.Linear(2, 2))
    model[0].grads["weight"][:] = 1
    opt = optim.SGD(model)                  # a model stands for its parameters
    opt.zero_grad()
    assert not model[0].grads["weight"].any()
    with pytest.raises(TypeError, match="Parameter handles"):
        optim.Adam([np.zeros(3)])
    with pytest.raises(ValueError, match="nesterov needs momentum"):
        model.forward(np.ones((1, 2), np.float32))
        model.backward(np.ones((1, 2), np.float32))
        optim.SGD(model.parameters(), nesterov=True).step()


def test_init_functions():
    a = np.empty((64, 32, 3, 3))
    fan_in, fan_out = 32 * 9, 64 * 9
    assert np.abs(init.xavier_uniform_(a, rng=0)).max() <= math.sqrt(6 / (fan_in + fan_out))
    assert abs(init.xavier_normal_(a, rng=0).std() - math.sqrt(2 / (fan_in + fan_out))) < 2e-3
    assert np.abs(init.kaiming_uniform_(a, nonlinearity="relu", rng=0)).max() <= math.sqrt(
        6 / fan_in)
    assert abs(init.kaiming_normal_(a, mode="fan_out", nonlinearity="relu", rng=0).std()
               - math.sqrt(2 / fan_out)) < 2e-3
    assert not init.zeros_(a).any()
    np.testing.assert_array_equal(init.he_normal_(np.empty((3, 4)), rng=7),
                                  init.kaiming_normal_(np.empty((3, 4)), rng=7))
    init.seed(3)
    first = nn.Linear(4, 4).params["weight"].copy()
    init.seed(3)
    np.testing.assert_array_equal(nn.Linear(4, 4).params["weight"], first)
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        init.xavier_uniform_(np.empty(3))


@pytest.mark.parametrize("make, error, match", [
    (lambda p: optim.SGD(p, lr=-1), ValueError, r"SGD: lr must be in \[0, inf\], got -1"),
    (lambda p: optim.SGD(p, momentum=-0.5), ValueError, r"SGD: momentum must be in \[0"),
    (lambda p: optim.SGD(p, nesterov=True), ValueError, "SGD: nesterov needs momentum > 0"),
    (lambda p: optim.SGD(p, lr="fast"), TypeError, "SGD: lr must be a number, got 'fast'"),
    (lambda p: optim.Adam(p, betas=(1.5, 0.9)), ValueError,
     r"Adam: beta1 must be in \[0, 1\), got 1.5"),
    (lambda p: optim.Adam(p, betas=(0.9, 1.0)), ValueError, r"Adam: beta2 must be in \[0, 1\)"),
    (lambda p: optim.Adam(p, betas=0.9), TypeError, r"Adam: betas must be a pair"),
    (lambda p: optim.Adam(p, eps=float("nan")), ValueError, "Adam: eps must be in"),
    (lambda p: optim.RMSprop(p, alpha=2), ValueError, r"RMSprop: alpha must be in \[0, 1\]"),
    (lambda p: optim.Adadelta(p, rho=-1), ValueError, r"Adadelta: rho must be in \[0, 1\]"),
    (lambda p: optim.Adagrad(p, lr_decay=-1), ValueError, "Adagrad: lr_decay must be in"),
    (lambda p: optim.Adam([]), ValueError, "Adam: params is empty"),
    (lambda p: optim.Adam(Sequential(nn.ReLU())), ValueError, "Adam: params is empty"),
    (lambda p: optim.Adam(None), TypeError, "Adam: params must be Parameter handles, .*None"),
    (lambda p: optim.Adam(p + p), ValueError, "Adam: a parameter appears twice"),
])
def test_optimizers_check_their_arguments_when_built(make, error, match):
    params = Sequential(nn.Linear(2, 2)).parameters()
    with pytest.raises(error, match=match):
        make(params)


def test_init_checks_its_arguments():
    with pytest.raises(TypeError, match="init: rng must be a numpy Generator, an int seed"):
        init.generator("seed")
    with pytest.raises(ValueError, match="rng must be >= 0"):
        init.uniform_(np.empty(3), rng=-1)
    with pytest.raises(TypeError, match="the array must be floating point, got int64"):
        init.normal_(np.zeros(3, np.int64))
    with pytest.raises(ValueError, match=r"fan_in and fan_out of a weight of shape \(3, 0\) "
                                         r"are 0"):
        init.kaiming_uniform_(np.empty((3, 0)))
    frozen = np.zeros(3)
    frozen.setflags(write=False)
    with pytest.raises(ValueError, match="ones_: the array is read-only"):
        init.ones_(frozen)


def test_zero_grad_makes_arrays_like_the_parameters():
    """Whatever was put in grads (here a list), zero_grad gives each parameter a zero
    gradient of its own shape and dtype (it raised AttributeError on a list)."""
    layer = nn.Linear(3, 2, dtype=np.float64, rng=0)
    layer.grads["weight"] = np.ones((2, 3)).tolist()
    opt = optim.SGD(optim.parameters(layer), lr=0.1)
    opt.zero_grad()
    assert all(isinstance(g, np.ndarray) and g.dtype == np.float64 and not g.any()
               for g in layer.grads.values())
    assert layer.grads["weight"].shape == (2, 3)
