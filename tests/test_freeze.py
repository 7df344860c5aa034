"""Freezing and fine-tuning: a frozen layer's parameters stay put and get no gradient (its
weight gradient is not even computed, nor any input gradient below the lowest layer
that trains), optimizers skip them, a frozen BatchNorm uses its running statistics,
and parameter groups train parts of a model at their own learning rates."""

import numpy as np
import pytest

from fastcnn import functional, gradcheck, nn
from fastcnn.model import Input, Model, Sequential
from fastcnn.optim import SGD, Adam


def cnn(seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    return Sequential(nn.Conv2d(1, 4, 3, padding=1, dtype=dtype, rng=rng), nn.ReLU(),
                      nn.Conv2d(4, 4, 3, padding=1, dtype=dtype, rng=rng),
                      nn.BatchNorm2d(4, dtype=dtype), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                      nn.Linear(64, 3, dtype=dtype, rng=rng))


def batch(n=8, seed=1):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 1, 8, 8)).astype(np.float32), rng.integers(0, 3, n)


@pytest.fixture
def calls(monkeypatch):
    """Every conv2d_backward and linear_backward call: (op, weight shape, need_dx,
    need_dweight)."""
    seen = []
    for op in ("conv2d_backward", "linear_backward"):
        real = getattr(functional, op)

        def spy(dy, x, weight, *args, _op=op, _real=real, **kwargs):
            need_dx = args[3] if len(args) > 3 else kwargs.get("need_dx", True)
            seen.append((_op, tuple(weight.shape), need_dx, kwargs.get("need_dweight", True)))
            return _real(dy, x, weight, *args, **kwargs)
        monkeypatch.setattr(functional, op, spy)
    return seen


def test_a_frozen_base_is_not_trained_and_gets_no_gradient(calls):
    model = cnn()
    model[:5].freeze()
    assert [layer.trainable for layer in model.layers] == [False] * 5 + [True] * 3
    model.compile(Adam(model.parameters(), lr=0.01), nn.SoftmaxCrossEntropy())
    frozen = [(layer, {k: v.copy() for k, v in layer.params.items()}) for layer in model.layers
              if layer.params and not layer.trainable]
    for layer, _ in frozen:
        for g in layer.grads.values():
            g[...] = np.nan         # a gradient written would show
    before = model[7].params["weight"].copy()
    x, y = batch()
    model.fit((x, y), epochs=2, batch_size=4, verbose=0)
    for layer, params in frozen:
        for k, v in params.items():
            np.testing.assert_array_equal(layer.params[k], v)
            assert np.isnan(layer.grads[k]).all()
    assert not np.array_equal(model[7].params["weight"], before)
    assert [c[0] for c in calls] == ["linear_backward"] * 4   # no conv backward at all
    running = model[3].buffers["running_mean"]
    np.testing.assert_array_equal(running, 0)                  # frozen BatchNorm: untouched
    opt = model.optimizer
    assert [s is None for s in opt.state] == [True] * 6 + [False] * 2
    assert opt.param_steps == [0] * 6 + [4, 4]


def test_a_frozen_layer_above_one_that_trains_computes_only_its_input_gradient(calls):
    model = cnn(dtype=np.float64)
    model[2].freeze()                    # the second convolution, between two that train
    x, _ = batch()
    model.forward(x.astype(np.float64))
    model[2].grads["weight"][...] = np.nan
    model.backward(np.ones((8, 3)), need_dx=False)
    convs = [c for c in calls if c[0] == "conv2d_backward"]
    assert convs == [("conv2d_backward", (4, 4, 3, 3), True, False),
                     ("conv2d_backward", (4, 1, 3, 3), False, True)]
    assert np.isnan(model[2].grads["weight"]).all()
    assert gradcheck(model.eval(), x[:2].astype(np.float64))   # the others' gradients: right


def test_a_frozen_branch_of_a_graph(calls):
    """Nothing trains below the frozen stem: its backward is skipped; the frozen branch
    conv above the trainable one gives dx alone."""
    x = Input((1, 8, 8))
    stem = nn.Conv2d(1, 2, 3, padding=1)
    h = nn.ReLU()(stem(x))
    left = nn.Conv2d(2, 2, 3, padding=1)
    right = nn.Conv2d(2, 2, 3, padding=1)
    top = nn.Conv2d(2, 2, 1)
    y = nn.Add()([left(h), top(right(h))])
    model = Model(x, nn.Linear(128, 3)(nn.Flatten()(y)))
    stem.freeze()
    top.freeze()
    model.forward(batch()[0])
    model.backward(np.ones((8, 3), np.float32), need_dx=False)
    convs = {shape: (need_dx, need_dw) for op, shape, need_dx, need_dw in calls
             if op == "conv2d_backward"}
    assert len([c for c in calls if c[0] == "conv2d_backward"]) == 3
    assert convs[(2, 2, 1, 1)] == (True, False)          # top: dx only
    assert (1, 2, 3, 3) not in convs                      # stem: nothing
    model.freeze()
    calls.clear()
    assert model.backward(np.ones((8, 3), np.float32), need_dx=False) is None
    assert calls == []


def test_a_frozen_batchnorm_uses_its_running_statistics():
    bn = nn.BatchNorm2d(3)
    bn.buffers["running_mean"][:] = [0.5, -1, 2]
    bn.buffers["running_var"][:] = [2, 1, 0.5]
    x = np.random.default_rng(2).standard_normal((4, 3, 5, 5)).astype(np.float32)
    expected = bn.eval().forward(x).copy()
    bn.train().freeze()
    np.testing.assert_array_equal(bn.forward(x), expected)
    np.testing.assert_array_equal(bn.buffers["running_mean"], [0.5, -1, 2])
    bn.unfreeze()
    assert not np.allclose(bn.forward(x), expected)


def test_freezing_whole_models_slices_and_children():
    model = Sequential({"features": cnn()[:6], "head": Sequential(nn.Flatten(),
                                                                  nn.Linear(64, 3))})
    assert model.trainable
    model.features.freeze()
    assert not model.features.trainable and model.trainable
    assert model.num_params(trainable=False) == model.features.num_params()
    text = model.summary((1, 8, 8))
    assert "frozen" in text and f"({model.head.num_params():,} trainable)" in text
    model.freeze()
    assert not model.trainable
    model.unfreeze()
    assert all(layer.trainable for layer in model.layers)
    layer = nn.Linear(2, 2)
    assert layer.freeze() is layer and not layer.trainable and layer.unfreeze().trainable


def test_parameter_groups_have_their_own_learning_rates():
    model = Sequential(nn.Linear(2, 3, dtype=np.float64), nn.Linear(3, 1, dtype=np.float64))
    base, head = model[0], model[1]
    opt = SGD([{"params": Sequential(base).parameters(), "lr": 0.01},
               {"params": Sequential(head).parameters()}], lr=0.1)
    model = Sequential(base, head)
    before = [layer.params["weight"].copy() for layer in (base, head)]
    model.forward(np.ones((4, 2)))
    model.backward(np.ones((4, 1)))
    grads = [layer.grads["weight"].copy() for layer in (base, head)]
    opt.step()
    for layer, b, g, lr in zip((base, head), before, grads, (0.01, 0.1)):
        np.testing.assert_allclose(layer.params["weight"], b - lr * g)
    assert opt.lr == 0.01
    opt.lr = 0.005                              # a schedule scales every group alike
    assert [g["lr"] for g in opt.param_groups] == [0.005, 0.05]
    assert "2 parameter groups" in repr(opt)
    with pytest.raises(TypeError, match="sets \\['momentun'\\]"):
        SGD([{"params": model.parameters(), "momentun": 0.9}])
    with pytest.raises(ValueError, match="appears twice"):
        Adam([{"params": model.parameters()}, {"params": model.parameters()}])


def test_fine_tuning_an_unfrozen_layer_starts_its_own_step_count():
    model = Sequential(nn.Linear(2, 2, dtype=np.float64), nn.Linear(2, 1, dtype=np.float64))
    model[0].freeze()
    opt = Adam(model.parameters(), lr=0.1)
    for _ in range(3):
        model.forward(np.ones((2, 2)))
        model.backward(np.ones((2, 1)), need_dx=False)
        opt.step()
    model[0].unfreeze()
    w = model[0].params["weight"].copy()
    model.forward(np.ones((2, 2)))
    model.backward(np.ones((2, 1)), need_dx=False)
    opt.step()
    assert opt.param_steps == [1, 1, 4, 4]
    # Adam's first step moves each weight by lr (bias-corrected m / sqrt(v) = sign(g)).
    np.testing.assert_allclose(np.abs(model[0].params["weight"] - w), 0.1, rtol=1e-6)


def test_a_wholly_frozen_model_fits_without_changing():
    model = cnn().freeze()
    model.compile(SGD(model.parameters(), lr=0.1), nn.SoftmaxCrossEntropy())
    state = [a.copy() for layer in model.layers for a in layer.params.values()]
    model.fit(batch(), epochs=1, batch_size=4, verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(
        state, [a for layer in model.layers for a in layer.params.values()]))
