"""Eval-mode plans (fastcnn.nn.plan): a layer's second forward of a like input replays the
backend call of its first, checked one, and must give what the checked path gives, for
any input, weights and later backward."""

import numpy as np
import pytest

import fastcnn
from fastcnn import nn
from fastcnn.model import Sequential
from helpers import cuda_usable

RNG = np.random.default_rng(11)

LAYERS = {
    "Conv2d": (lambda: nn.Conv2d(3, 4, 3, padding=1), (2, 3, 6, 7)),
    "Conv2d groups stride": (lambda: nn.Conv2d(4, 6, 3, stride=2, groups=2), (2, 4, 7, 7)),
    "ConvTranspose2d": (lambda: nn.ConvTranspose2d(3, 2, 3, stride=2), (2, 3, 4, 4)),
    "Linear": (lambda: nn.Linear(5, 3), (4, 5)),
    "ReLU": (lambda: nn.ReLU(), (2, 3, 4)),
    "LeakyReLU": (lambda: nn.LeakyReLU(0.2), (2, 3, 4)),
    "MaxPool2d": (lambda: nn.MaxPool2d(2), (2, 3, 6, 6)),
    "AvgPool2d": (lambda: nn.AvgPool2d(3, 2, 1), (2, 3, 7, 6)),
    "BatchNorm2d": (lambda: nn.BatchNorm2d(3), (4, 3, 5, 5)),
    "Upsample": (lambda: nn.Upsample(scale_factor=2, mode="bilinear"), (1, 2, 3, 4)),
    "Flatten": (lambda: nn.Flatten(), (2, 3, 4)),
    "Dropout": (lambda: nn.Dropout(0.5), (2, 3)),
}


def normal(shape, dtype=np.float32):
    return RNG.standard_normal(shape).astype(dtype)


def checked(layer, x):
    """What the checked path gives: the layer with its plan dropped."""
    layer._plan = None
    return layer.forward(x).copy()


@pytest.mark.parametrize("name", LAYERS)
def test_a_planned_forward_is_the_checked_one(name):
    make, shape = LAYERS[name]
    layer = make()
    if name == "BatchNorm2d":
        layer.forward(normal(shape))     # running statistics that are not the defaults
    layer.eval()
    layer.forward(normal(shape))
    for x in (normal(shape), normal(shape)):
        planned = layer.forward(x)
        np.testing.assert_array_equal(planned, checked(layer, x))


@pytest.mark.parametrize("name", ["Conv2d", "Linear", "MaxPool2d", "ReLU"])
def test_the_layers_that_a_forward_of_one_image_runs_have_plans(name):
    make, shape = LAYERS[name]
    layer = make().eval()
    layer.forward(normal(shape))
    assert layer._plan is not None


def test_a_callers_result_is_never_overwritten():
    layer = nn.Conv2d(3, 4, 3).eval()
    x1, x2 = normal((2, 3, 5, 5)), normal((2, 3, 5, 5))
    y1 = layer.forward(x1)
    kept = y1.copy()
    y2 = layer.forward(x2)
    assert y2 is not y1
    np.testing.assert_array_equal(y1, kept)


def test_new_weights_and_changed_weights_are_seen():
    layer = nn.Linear(5, 3).eval()
    x = normal((4, 5))
    layer.forward(x)
    layer.params["weight"] = normal((3, 5))                  # a new array
    np.testing.assert_allclose(layer.forward(x), x @ layer.params["weight"].T
                               + layer.params["bias"], rtol=1e-5, atol=1e-6)
    layer.params["weight"][...] = 0                           # the same array, changed
    np.testing.assert_allclose(layer.forward(x), np.broadcast_to(layer.params["bias"], (4, 3)))


@pytest.mark.parametrize("x", [normal((1, 3, 7, 5)), normal((2, 3, 6, 12))[..., ::2]],
                         ids=["shape", "strides"])
def test_an_input_unlike_the_planned_one_takes_the_checked_path(x):
    layer = nn.Conv2d(3, 2, 3).eval()
    layer.forward(normal((2, 3, 6, 6)))
    got = layer.forward(x).copy()
    np.testing.assert_array_equal(got, checked(layer, np.ascontiguousarray(x)))


def test_an_input_of_another_dtype_is_refused_as_without_a_plan():
    layer = nn.Conv2d(3, 2, 3).eval()
    layer.forward(normal((2, 3, 6, 6)))
    with pytest.raises((TypeError, ValueError)) as planned:
        layer.forward(normal((2, 3, 6, 6), np.float64))
    with pytest.raises(type(planned.value)) as fresh:
        nn.Conv2d(3, 2, 3).eval().forward(normal((2, 3, 6, 6), np.float64))
    assert str(planned.value) == str(fresh.value)


def test_bad_input_after_a_plan_is_refused_by_name():
    layer = nn.Conv2d(3, 2, 3).eval()
    layer.forward(normal((2, 3, 6, 6)))
    with pytest.raises(ValueError, match=r"^Conv2d\(3, 2, 3\): expects 3 channels"):
        layer.forward(normal((2, 4, 6, 6)))


def test_a_backward_after_a_planned_forward_is_the_training_modes():
    """The plan saves nothing for backward; a backward after it (a saliency map) runs the
    checked forward first."""
    make = lambda: Sequential(nn.Conv2d(1, 3, 3, padding=1, rng=2), nn.ReLU(),  # noqa: E731
                              nn.MaxPool2d(2), nn.Flatten(), nn.Linear(12, 2, rng=3))
    x, dy = normal((2, 1, 4, 4)), normal((2, 2))
    trained = make()
    want_y, want_dx = trained.forward(x).copy(), trained.backward(dy).copy()
    model = make().eval()
    model.forward(normal((2, 1, 4, 4)))          # the plans
    np.testing.assert_array_equal(model.forward(x), want_y)
    assert all(layer._replay is not None for layer in model.layers if layer._plan)
    np.testing.assert_array_equal(model.backward(dy), want_dx)
    for a, b in zip(trained.layers, model.layers):
        for k in a.grads:
            np.testing.assert_array_equal(a.grads[k], b.grads[k])


def test_predict_of_one_image_at_a_time_equals_the_batch():
    model = Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                       nn.Conv2d(4, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                       nn.Linear(8 * 2 * 2, 3))
    x = normal((5, 1, 8, 8))
    batch = model.predict(x)
    one = np.concatenate([model.predict(x[i:i + 1]) for i in range(5)])
    np.testing.assert_allclose(one, batch, rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(not cuda_usable(), reason="no CUDA device or simulator")
def test_a_plan_on_the_gpu_is_the_checked_path():
    layer = nn.Conv2d(2, 3, 3, padding=1).to("cuda").eval()
    xs = [fastcnn.to_device(normal((1, 2, 4, 4))) for _ in range(3)]
    layer.forward(xs[0])
    assert layer._plan is not None
    for x in xs[1:]:
        planned = fastcnn.to_host(layer.forward(x))
        layer._plan = None
        np.testing.assert_array_equal(planned, fastcnn.to_host(layer.forward(x)))
