"""Named weights: state_dict and load_state_dict with PyTorch's key names and shapes.

tests/data/torch_resnet_tiny.npz holds the state_dict of a tiny PyTorch ResNet (made by
tests/torch_models.py: torchvision's names, BatchNorm statistics that are not the
defaults), an input and PyTorch's output for it, so that the check needs no torch;
with torch installed, the same is also done live, both ways."""

from collections import OrderedDict

import numpy as np
import pytest

from fastcnn import nn
from fastcnn.model import Input, Model, Sequential
from helpers import cuda_usable
import torch_models


def cnn(seed=0):
    rng = np.random.default_rng(seed)
    return Sequential(OrderedDict(
        features=Sequential(nn.Conv2d(1, 4, 3, padding=1, rng=rng), nn.BatchNorm2d(4),
                            nn.ReLU(), nn.MaxPool2d(2)),
        classifier=Sequential(nn.Flatten(), nn.Dropout(0.5, rng=rng),
                              nn.Linear(4 * 16, 3, rng=rng))))


def test_keys_are_pytorchs():
    assert list(Sequential(nn.Linear(2, 3), nn.ReLU(), nn.BatchNorm1d(3)).state_dict()) == [
        "0.weight", "0.bias", "2.weight", "2.bias", "2.running_mean", "2.running_var"]
    d = cnn().state_dict()
    assert list(d) == ["features.0.weight", "features.0.bias", "features.1.weight",
                       "features.1.bias", "features.1.running_mean", "features.1.running_var",
                       "classifier.2.weight", "classifier.2.bias"]
    assert d["features.0.weight"].shape == (4, 1, 3, 3)
    assert d["classifier.2.weight"].shape == (3, 64)
    x = Input((3,))
    graph = Model(x, nn.Linear(3, 2)(nn.ReLU()(nn.Linear(3, 3)(x, name="fc1")), name="out"))
    assert list(graph.state_dict()) == ["fc1.weight", "fc1.bias", "out.weight", "out.bias"]
    block = nn.Residual(Sequential(nn.Conv2d(2, 2, 3)), shortcut=nn.Conv2d(2, 2, 1))
    assert list(block.state_dict()) == ["body.0.weight", "body.0.bias", "shortcut.weight",
                                        "shortcut.bias"]
    assert list(nn.Concat(nn.Conv2d(2, 2, 1), nn.Conv2d(2, 1, 1)).state_dict())[2] == \
        "1.weight"


def test_round_trip_into_a_fresh_model():
    model, fresh = cnn(0), cnn(1)
    x = np.random.default_rng(2).standard_normal((3, 1, 8, 8)).astype(np.float32)
    model.train().forward(x)                    # running statistics that are not the defaults
    d = model.state_dict()
    d["features.0.weight"] += 0                 # copies: the model's arrays are not shared
    assert d["features.0.weight"] is not model.features[0].params["weight"]
    assert fresh.load_state_dict(d) == ([], [])
    np.testing.assert_array_equal(fresh.predict(x), model.predict(x))
    for key, value in fresh.state_dict().items():
        np.testing.assert_array_equal(value, d[key])
    half = Sequential(nn.Linear(2, 2, dtype=np.float64))
    half.load_state_dict({"0.weight": np.ones((2, 2), np.float32), "0.bias": [1, 2]})
    assert half[0].params["weight"].dtype == np.float64       # cast to the model's dtype
    np.testing.assert_array_equal(half[0].params["bias"], [1, 2])


def test_errors_name_the_keys_and_shapes():
    model = cnn()
    d = model.state_dict()
    with pytest.raises(ValueError, match=r"1 missing key\(s\): 'classifier.2.bias'"):
        model.load_state_dict({k: v for k, v in d.items() if k != "classifier.2.bias"})
    with pytest.raises(ValueError, match=r"1 unexpected key\(s\): 'head.weight'"):
        model.load_state_dict({**d, "head.weight": np.zeros(3)})
    bad = {**d, "classifier.2.weight": np.zeros((3, 65))}
    with pytest.raises(ValueError, match=r"classifier.2.weight: \(3, 65\) in the dict, "
                                         r"\(3, 64\) in the model"):
        model.load_state_dict(bad)
    before = model.features[0].params["weight"].copy()
    with pytest.raises(ValueError):
        model.load_state_dict({**bad, "features.0.weight": np.zeros((4, 1, 3, 3))})
    np.testing.assert_array_equal(model.features[0].params["weight"], before)   # untouched
    partial = {"features.0.weight": np.zeros((4, 1, 3, 3)), "extra": np.zeros(1)}
    missing, unexpected = model.load_state_dict(partial, strict=False)
    assert unexpected == ["extra"] and "features.0.bias" in missing
    np.testing.assert_array_equal(model.features[0].params["weight"], 0)
    with pytest.raises(TypeError, match="expects a dict"):
        model.load_state_dict([1, 2])
    with pytest.raises(TypeError, match="not numbers"):
        model.load_state_dict({**d, "features.0.bias": np.array(["a"] * 4)})


def test_batchnorms_num_batches_tracked_is_accepted_and_dropped():
    model = cnn()
    d = {**model.state_dict(), "features.1.num_batches_tracked": np.array(7)}
    model.load_state_dict(d)
    assert "features.1.num_batches_tracked" not in model.state_dict()
    with pytest.raises(ValueError, match="unexpected key.*'classifier.2.num_batches_tracked'"):
        model.load_state_dict({**d, "classifier.2.num_batches_tracked": np.array(1)})


def test_the_committed_pytorch_fixture_loads_and_predicts_what_pytorch_did():
    arrays = dict(np.load(torch_models.FIXTURE))
    x, y = arrays.pop("input"), arrays.pop("output")
    assert "layer2.0.downsample.1.running_var" in arrays
    assert "layer1.0.bn1.num_batches_tracked" in arrays
    model = torch_models.fastcnn_resnet()
    assert model.load_state_dict(arrays) == ([], [])
    np.testing.assert_allclose(model.predict(x), y, rtol=1e-5, atol=1e-6)
    ours = model.state_dict()
    assert set(arrays) - set(ours) == {k for k in arrays if k.endswith("num_batches_tracked")}
    for key, value in ours.items():
        np.testing.assert_array_equal(value, arrays[key])


@pytest.mark.skipif(not cuda_usable(), reason="numba-cuda is not installed")
def test_loading_into_a_model_on_the_gpu():
    import fastcnn
    model, fresh = cnn(0), cnn(1).to("cuda")
    fresh.load_state_dict(model.state_dict())
    assert fastcnn.backends.on_gpu(fresh.features[0].params["weight"])
    x = np.random.default_rng(3).standard_normal((2, 1, 8, 8)).astype(np.float32)
    np.testing.assert_allclose(fresh.predict(x), model.predict(x), rtol=1e-4, atol=1e-6)
    assert isinstance(fresh.state_dict()["features.0.weight"], np.ndarray)


def test_live_pytorch_models_both_ways():
    torch = pytest.importorskip("torch")
    tmodel, x = torch_models.trained_torch_resnet(torch, seed=1)
    model = torch_models.fastcnn_resnet()
    model.load_state_dict(tmodel.state_dict())                 # torch tensors, as they are
    with torch.no_grad():
        want = tmodel(x).numpy()
    np.testing.assert_allclose(model.predict(x.numpy()), want, rtol=1e-5, atol=1e-6)
    # and back: fastcnn's state_dict into a fresh torch model, strict
    other = torch_models.fastcnn_resnet()
    other.load_state_dict({k: v * 1.5 if k.endswith("weight") else v
                           for k, v in model.state_dict().items()})
    fresh = torch_models.torch_resnet(torch).eval()
    fresh.load_state_dict({k: torch.from_numpy(v) for k, v in other.state_dict().items()})
    with torch.no_grad():
        np.testing.assert_allclose(fresh(x).numpy(), other.predict(x.numpy()), rtol=1e-5,
                                   atol=1e-6)
    # a torch Sequential with named children, as cnn() names them
    tnn = torch.nn
    seq = tnn.Sequential(OrderedDict(
        features=tnn.Sequential(tnn.Conv2d(1, 4, 3, padding=1), tnn.BatchNorm2d(4),
                                tnn.ReLU(), tnn.MaxPool2d(2)),
        classifier=tnn.Sequential(tnn.Flatten(), tnn.Dropout(0.5), tnn.Linear(64, 3))))
    seq.train()
    seq(torch.randn(8, 1, 8, 8))
    seq.eval()
    mine = cnn()
    mine.load_state_dict(seq.state_dict())
    images = torch.randn(4, 1, 8, 8)
    with torch.no_grad():
        np.testing.assert_allclose(mine.predict(images.numpy()), seq(images).numpy(),
                                   rtol=1e-5, atol=1e-6)
