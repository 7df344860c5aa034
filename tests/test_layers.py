"""Layers and losses: every backward equals finite differences (float64), modes behave,
buffers are reused without overwriting what a caller holds, errors name the layer."""

import numpy as np
import pytest

from fastcnn import nn
from fastcnn.model import Sequential
from helpers import check_gradient as check
from helpers import cuda_usable

F64 = dict(dtype=np.float64)

# (layer factory, input shape, input kind): "distinct" keeps arg-maxes apart for finite
# differences; "away" keeps ReLU-like inputs off their kink.
LAYER_CASES = {
    "Linear": (lambda: nn.Linear(5, 4, **F64), (3, 5), "normal"),
    "Linear no bias": (lambda: nn.Linear(5, 4, bias=False, **F64), (3, 5), "normal"),
    "Conv2d": (lambda: nn.Conv2d(2, 3, 3, stride=2, padding=1, **F64), (2, 2, 7, 6), "normal"),
    "Conv2d dilated": (lambda: nn.Conv2d(2, 3, (3, 2), dilation=2, bias=False, **F64),
                       (2, 2, 7, 6), "normal"),
    "MaxPool2d": (lambda: nn.MaxPool2d(2), (2, 3, 6, 6), "distinct"),
    "MaxPool2d overlapping": (lambda: nn.MaxPool2d(3, 2, 1), (2, 3, 7, 6), "distinct"),
    "AvgPool2d": (lambda: nn.AvgPool2d(2), (2, 3, 6, 6), "normal"),
    "AvgPool2d padded": (lambda: nn.AvgPool2d(3, 2, 1), (2, 3, 7, 6), "normal"),
    "Conv2d grouped": (lambda: nn.Conv2d(4, 6, 3, padding="same", groups=2, **F64),
                       (2, 4, 5, 4), "normal"),
    "Conv2d depthwise": (lambda: nn.Conv2d(3, 3, 3, stride=2, groups=3, bias=False, **F64),
                         (2, 3, 7, 6), "normal"),
    "ConvTranspose2d": (lambda: nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1,
                                                   output_padding=1, groups=2, **F64),
                        (2, 4, 3, 4), "normal"),
    "ConvTranspose2d dilated": (lambda: nn.ConvTranspose2d(2, 3, (2, 3), dilation=2, bias=False,
                                                           **F64), (2, 2, 3, 3), "normal"),
    "Conv1d": (lambda: nn.Conv1d(4, 2, 3, stride=2, padding=(1, 0), groups=2, **F64),
               (2, 4, 9), "normal"),
    "MaxPool2d ceil dilated": (lambda: nn.MaxPool2d(2, 2, dilation=2, ceil_mode=True),
                               (2, 3, 7, 6), "distinct"),
    "MaxPool1d": (lambda: nn.MaxPool1d(3, 2, 1), (2, 3, 8), "distinct"),
    "AvgPool2d exclude pad": (lambda: nn.AvgPool2d(3, 2, 1, ceil_mode=True,
                                                   count_include_pad=False), (2, 3, 6, 6),
                              "normal"),
    "AvgPool2d divisor": (lambda: nn.AvgPool2d(2, divisor_override=3), (2, 3, 4, 6), "normal"),
    "AvgPool1d": (lambda: nn.AvgPool1d(3, 2, 1, count_include_pad=False), (2, 3, 8), "normal"),
    "AdaptiveAvgPool2d": (lambda: nn.AdaptiveAvgPool2d((3, None)), (2, 3, 7, 5), "normal"),
    "AdaptiveAvgPool2d global": (lambda: nn.AdaptiveAvgPool2d(1), (2, 3, 4, 5), "normal"),
    "AdaptiveMaxPool2d": (lambda: nn.AdaptiveMaxPool2d((2, 3)), (2, 3, 5, 7), "distinct"),
    "AdaptiveAvgPool1d": (lambda: nn.AdaptiveAvgPool1d(3), (2, 3, 7), "normal"),
    "AdaptiveMaxPool1d": (lambda: nn.AdaptiveMaxPool1d(4), (2, 3, 9), "distinct"),
    "Upsample": (lambda: nn.Upsample(scale_factor=(2, 3)), (2, 3, 3, 2), "normal"),
    "Upsample size": (lambda: nn.Upsample(size=(5, 3)), (2, 3, 3, 2), "normal"),
    "Upsample bilinear": (lambda: nn.Upsample(scale_factor=1.7, mode="bilinear"),
                          (2, 3, 3, 4), "normal"),
    "Upsample bilinear corners": (lambda: nn.Upsample(size=(4, 7), mode="bilinear",
                                                      align_corners=True), (2, 3, 3, 4),
                                  "normal"),
    "Flatten": (lambda: nn.Flatten(), (2, 3, 2, 2), "normal"),
    "Flatten middle": (lambda: nn.Flatten(1, 2), (2, 3, 2, 2), "normal"),
    "Unflatten": (lambda: nn.Unflatten(1, (3, -1, 2)), (2, 12, 2), "normal"),
    "LogSoftmax": (lambda: nn.LogSoftmax(), (3, 5), "normal"),
    "Softmax dim": (lambda: nn.Softmax(dim=-1), (2, 3, 4), "normal"),
    "LogSoftmax dim": (lambda: nn.LogSoftmax(0), (3, 4), "normal"),
    "ReLU": (lambda: nn.ReLU(), (3, 4, 2), "away"),
    "LeakyReLU": (lambda: nn.LeakyReLU(0.1), (3, 4, 2), "away"),
    "ELU": (lambda: nn.ELU(0.7), (3, 4, 2), "away"),
    "Sigmoid": (lambda: nn.Sigmoid(), (3, 4), "normal"),
    "Tanh": (lambda: nn.Tanh(), (3, 4), "normal"),
    "Softmax": (lambda: nn.Softmax(), (3, 5), "normal"),
    "Maxout": (lambda: nn.Maxout(3), (2, 6, 2, 2), "distinct"),
    "Dropout": (lambda: nn.Dropout(0.4, rng=0), (3, 8), "normal"),
    "BatchNorm1d": (lambda: nn.BatchNorm1d(3, **F64), (5, 3), "normal"),
    "BatchNorm1d 3-D": (lambda: nn.BatchNorm1d(3, **F64), (4, 3, 2), "normal"),
    "BatchNorm2d": (lambda: nn.BatchNorm2d(3, **F64), (4, 3, 2, 3), "normal"),
    "BatchNorm2d no affine": (lambda: nn.BatchNorm2d(3, affine=False, **F64), (4, 3, 2, 3),
                              "normal"),
}


def make_input(shape, kind, rng):
    if kind == "distinct":
        return rng.permutation(int(np.prod(shape))).reshape(shape) * 0.01
    x = rng.standard_normal(shape) * 2
    if kind == "away":
        x[np.abs(x) < 0.05] = 0.5
    return x


def forward(layer, x):
    if isinstance(layer, nn.Dropout):
        layer.steps = 0   # the same mask on every call
    return layer.forward(x)


def check_layer(layer, x, rng):
    """Finite differences of <layer(x), r> against backward(r), for x and every parameter."""
    r = rng.standard_normal(forward(layer, x).shape)
    forward(layer, x)
    dx = np.array(layer.backward(r))
    grads = {k: np.array(v) for k, v in layer.grads.items()}
    check(lambda t: float(np.vdot(forward(layer, t), r)), dx, x, rng)
    for name, grad in grads.items():
        original = layer.params[name]

        def loss(t):
            layer.params[name] = t
            return float(np.vdot(forward(layer, x), r))

        check(loss, grad, original.copy(), rng)
        layer.params[name] = original


@pytest.mark.parametrize("case", sorted(LAYER_CASES))
@pytest.mark.parametrize("training", [True, False])
def test_layer_gradient(case, training):
    factory, shape, kind = LAYER_CASES[case]
    rng = np.random.default_rng(0)
    layer = factory().train(training)
    if "BatchNorm" in case:   # statistics that are not the identity, for eval mode
        layer.buffers["running_mean"][:] = rng.standard_normal(3)
        layer.buffers["running_var"][:] = rng.uniform(0.5, 2, 3)
        if layer.params:
            layer.params["weight"][:] = rng.standard_normal(3)
            layer.params["bias"][:] = rng.standard_normal(3)
    x = make_input(shape, kind, rng)
    check_layer(layer, x, rng)


LOSS_CASES = {
    "SoftmaxCrossEntropy": (nn.SoftmaxCrossEntropy, lambda rng: (
        rng.standard_normal((4, 3)) * 2, np.array([0, 2, 1, 2]))),
    "BCEWithLogits": (nn.BCEWithLogits, lambda rng: (
        rng.standard_normal((4, 2)) * 3, rng.uniform(0, 1, (4, 2)))),
    "BCE": (nn.BCE, lambda rng: (rng.uniform(0.05, 0.95, (4, 2)), rng.uniform(0, 1, (4, 2)))),
    "MSE": (nn.MSE, lambda rng: (rng.standard_normal((4, 2)), rng.standard_normal((4, 2)))),
}


@pytest.mark.parametrize("case", sorted(LOSS_CASES))
def test_loss_gradient(case):
    make, data = LOSS_CASES[case]
    rng = np.random.default_rng(1)
    pred, target = data(rng)
    loss = make()
    value = loss.forward(pred, target)
    assert isinstance(value, float)
    grad = np.array(loss.backward())
    check(lambda t: loss.forward(t, target), grad, pred, rng)


def test_model_gradient():
    """The chain through a whole model, including need_dx=False skipping the input's dx."""
    rng = np.random.default_rng(2)
    model = Sequential(nn.Conv2d(2, 4, 3, padding=1, **F64), nn.BatchNorm2d(4, **F64),
                       nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(16, 6, **F64),
                       nn.Tanh(), nn.Maxout(2), nn.Linear(3, 3, **F64))
    loss = nn.SoftmaxCrossEntropy()
    x, labels = rng.standard_normal((3, 2, 4, 4)), np.array([0, 1, 2])
    loss.forward(model.forward(x), labels)
    dx = np.array(model.backward(loss.backward()))
    grads = [np.array(p.grad) for p in model.parameters()]
    check(lambda t: loss.forward(model.forward(t), labels), dx, x, rng)
    for p, grad in zip(model.parameters(), grads):
        original = p.data.copy()

        def f(t):
            p.layer.params[p.key] = t
            return loss.forward(model.forward(x), labels)

        check(f, grad, original, rng)
        p.layer.params[p.key] = original
    loss.forward(model.forward(x), labels)
    assert model.backward(loss.backward(), need_dx=False) is None
    for p, grad in zip(model.parameters(), grads):
        np.testing.assert_allclose(p.grad, grad, rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------- defaults and modes


def test_default_init_is_pytorchs():
    layer = nn.Conv2d(4, 6, 3, rng=0)
    bound = 1 / np.sqrt(4 * 9)    # kaiming_uniform(a=sqrt(5)) and the bias: U(+-1/sqrt(fan_in))
    for p in layer.params.values():
        assert p.dtype == np.float32
        assert np.abs(p).max() <= bound and np.abs(p).max() > 0.8 * bound
    assert layer.params["weight"].shape == (6, 4, 3, 3) and layer.params["bias"].shape == (6,)
    assert nn.Linear(3, 2).params["weight"].shape == (2, 3)
    np.testing.assert_array_equal(nn.Linear(8, 4, rng=5).params["weight"],
                                  nn.Linear(8, 4, rng=5).params["weight"])


def test_dropout_modes():
    x = np.ones((50, 40), np.float32)
    layer = nn.Dropout(0.5, rng=1)
    first = layer.forward(x).copy()
    assert set(np.unique(first)) == {0, 2}
    assert not np.array_equal(first, layer.forward(x))   # a new mask every step
    layer.eval()
    assert layer.forward(x) is x and layer.backward(x) is x


@pytest.mark.parametrize("layer, shape", [(lambda: nn.MaxPool2d(3, 2, 1), (2, 3, 7, 8)),
                                          (lambda: nn.MaxPool1d(2), (2, 3, 9))])
def test_max_pool_in_eval_mode_keeps_no_indices_yet_goes_backward(layer, shape):
    """An eval-mode forward writes no arg-max indices (inference); a backward after it (a
    saliency map) finds them again and gives the training-mode gradient."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal(shape).astype(np.float32)
    train, infer = layer(), layer().eval()
    y = train.forward(x).copy()
    np.testing.assert_array_equal(infer.forward(x), y)
    assert "indices" in train.saved and "indices" not in infer.saved
    dy = rng.standard_normal(y.shape).astype(np.float32)
    np.testing.assert_array_equal(infer.backward(dy), train.backward(dy))


def test_batch_norm_running_statistics():
    rng = np.random.default_rng(3)
    layer = nn.BatchNorm2d(2)
    x = (rng.standard_normal((8, 2, 3, 3)) * 3 + 5).astype(np.float32)
    y = layer.forward(x)
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(layer.buffers["running_mean"], 0.1 * x.mean(axis=(0, 2, 3)),
                               rtol=1e-5)
    layer.eval()
    before = layer.buffers["running_mean"].copy()
    y = layer.forward(x)
    np.testing.assert_array_equal(layer.buffers["running_mean"], before)
    want = (x - before[None, :, None, None]) / np.sqrt(
        layer.buffers["running_var"][None, :, None, None] + 1e-5)
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------- buffers


def test_buffers_are_reused_but_never_under_a_callers_feet():
    rng = np.random.default_rng(4)
    model = Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8, 3))
    x1, x2 = (rng.standard_normal((2, 1, 4, 4)).astype(np.float32) for _ in range(2))
    ids = None
    for _ in range(3):   # the model's own activations are recycled from step to step
        model.forward(x1)
        model.backward(np.ones((2, 3), np.float32))
        now = [id(layer.reuse.arrays.get(k)) for layer in model for k in ("y", "dx")]
        assert ids is None or now == ids
        ids = now
    kept = model.forward(x1)
    kept_copy = kept.copy()
    view = model[1].reuse.arrays["y"][0]   # a view of an inner activation, held by the caller
    view_copy = view.copy()
    other = model.forward(x2)
    np.testing.assert_array_equal(kept, kept_copy)    # not overwritten
    np.testing.assert_array_equal(view, view_copy)
    assert not np.array_equal(other, kept)


# ---------------------------------------------------------------- errors


SEED_CNN = [lambda: nn.Conv2d(1, 8, 3, padding=1), nn.ReLU, lambda: nn.MaxPool2d(2),
            nn.Flatten, lambda: nn.Linear(8 * 14 * 14, 10)]


def seed_like():
    return Sequential(*(make() for make in SEED_CNN))


@pytest.mark.parametrize("shape, dtype, error, match", [
    ((2, 28, 28), np.float32, ValueError,
     r"layer 0 Conv2d\(1, 8, 3, padding=1\): expects input \(N, 1, H, W\), got shape "
     r"\(2, 28, 28\)"),
    ((2, 3, 28, 28), np.float32, ValueError,
     r"layer 0 Conv2d\(1, 8, 3, padding=1\): expects 1 channels or features on axis 1 "
     r".*got shape \(2, 3, 28, 28\)"),
    ((2, 1, 20, 20), np.float32, ValueError,
     r"layer 4 Linear\(1568, 10\): expects 1568 channels or features .*got shape \(2, 800\)"),
    ((2, 1, 28, 28), np.float64, TypeError,
     r"layer 0 Conv2d\(1, 8, 3, padding=1\): conv2d: weight is float32 but x is float64"),
    ((2, 1, 1, 1), np.float32, ValueError,
     r"layer 2 MaxPool2d\(2\): max_pool2d: the kernel .* is larger than the padded input"),
])
def test_input_errors_name_the_layer(shape, dtype, error, match):
    with pytest.raises(error, match=match):
        seed_like().forward(np.zeros(shape, dtype))


def test_loss_errors_name_the_loss():
    logits = np.zeros((4, 10), np.float32)
    with pytest.raises(ValueError, match=r"SoftmaxCrossEntropy\(\): labels must be integer "
                       r"class indices of shape \(N,\) = \(4,\) .* got int64 of shape \(3,\)"):
        nn.SoftmaxCrossEntropy().forward(logits, np.zeros(3, np.int64))
    with pytest.raises(ValueError, match="one-hot targets"):
        nn.SoftmaxCrossEntropy().forward(logits, np.eye(10, dtype=np.float32)[:4])
    with pytest.raises(ValueError, match=r"MSE\(\): targets must have the shape of the "
                       r"predictions \(4, 10\), got \(4, 1\)"):
        nn.MSE().forward(logits, np.zeros((4, 1)))
    with pytest.raises(ValueError, match=r"softmax_cross_entropy: labels must lie in \[0, 10\)"):
        nn.SoftmaxCrossEntropy().forward(logits, np.array([0, 1, 2, 10]))
    with pytest.raises(RuntimeError, match=r"backward\(\) needs a forward pass first"):
        nn.MSE().backward()


def test_layer_construction_errors():
    with pytest.raises(ValueError, match=r"Dropout: p must be in \[0, 1\)"):
        nn.Dropout(1.0)
    with pytest.raises(TypeError, match="dtype must be float32 or float64"):
        nn.Linear(2, 2, dtype=np.int32)
    with pytest.raises(ValueError, match=r"Upsample: mode must be one of \('nearest', "
                                         r"'bilinear'\), got 'bicubic'"):
        nn.Upsample(scale_factor=2, mode="bicubic")
    with pytest.raises(TypeError, match="argument 1 is not a layer"):
        Sequential(nn.ReLU(), np.zeros(3))
    # The layer's name, then the op's own check (a layer does not repeat functional's checks).
    with pytest.raises(ValueError, match=r"layer 0 Maxout\(3\): maxout: x's axis 1 must be a "
                       r"multiple of pool_size=3, got x.shape=\(2, 4\)"):
        Sequential(nn.Maxout(3)).forward(np.zeros((2, 4), np.float32))


# ---------------------------------------------------------------- GPU


@pytest.mark.skipif(not cuda_usable(), reason="fastcnn.backends.cuda is not available")
def test_model_on_cuda_matches_cpu(tmp_path):
    """The same layers on device arrays: same steps, then fit, predict, save and load."""
    from fastcnn.model import load
    from fastcnn.optim import Adam

    def build():
        model = Sequential(nn.Conv2d(1, 2, 3, padding=1, bias=False, rng=0), nn.BatchNorm2d(2),
                           nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Dropout(0.5, rng=2),
                           nn.Linear(8, 3, rng=1))
        return model.compile(Adam(model.parameters(), lr=0.01), nn.SoftmaxCrossEntropy())

    rng = np.random.default_rng(5)
    x, y = rng.standard_normal((4, 1, 4, 4)).astype(np.float32), np.array([0, 2, 1, 1])
    cpu, gpu = build(), build().to("cuda")
    for _ in range(2):
        want, got = cpu.train_step(x, y), gpu.train_step(x, y)
        assert abs(want[0] - got[0]) < 1e-5 and want[1] == got[1]
    np.testing.assert_allclose(gpu.predict(x), cpu.predict(x), rtol=1e-4, atol=1e-5)
    gpu.fit((x, y), epochs=1, batch_size=2, verbose=0)
    gpu.save(tmp_path / "gpu.npz")
    np.testing.assert_allclose(load(tmp_path / "gpu.npz").predict(x), gpu.predict(x),
                               rtol=1e-5, atol=1e-6)
    gpu.to("cpu")
    assert all(isinstance(p.data, np.ndarray) for p in gpu.parameters())
    assert all(isinstance(v, np.ndarray) for s in gpu.optimizer.state for v in s.values())
    np.testing.assert_allclose(load(tmp_path / "gpu.npz").predict(x), gpu.predict(x),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(not cuda_usable(), reason="fastcnn.backends.cuda is not available")
def test_device_buffers_are_not_overwritten_under_a_view():
    """A device array's views share its memory, not the array object: a held view (here
    Flatten's output, a reshape of the conv's buffer) must keep that buffer from reuse."""
    from fastcnn import to_device, to_host
    model = Sequential(nn.Conv2d(1, 2, 3, padding=1, rng=0), nn.Flatten()).to("cuda")
    x = np.random.default_rng(6).standard_normal((2, 1, 4, 4)).astype(np.float32)
    kept = model.forward(to_device(x))
    before = to_host(kept).copy()
    model.forward(to_device(2 * x))
    np.testing.assert_array_equal(to_host(kept), before)
    del kept
    ids = set()
    for _ in range(3):   # with no view held, the buffer is recycled again
        model.forward(to_device(x))
        ids.add(id(model[0].reuse.arrays["y"]))
    assert len(ids) == 1
