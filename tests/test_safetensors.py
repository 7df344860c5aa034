"""Weights from PyTorch without PyTorch: a state_dict saved by safetensors.torch loads
into the same architecture in fastcnn and predicts what PyTorch predicted; fastcnn's
weights go back the same way; pickles and broken files are refused clearly.
tests/data/torch_resnet_tiny.safetensors was written once by safetensors.torch
(tests/torch_onnx_models.py); with torch installed the round trip also runs live."""

import json
import struct

import numpy as np
import pytest

pytest.importorskip("safetensors")

import fastcnn  # noqa: E402
from fastcnn import nn  # noqa: E402
from fastcnn.model import ModelFileError, Sequential  # noqa: E402
import torch_models  # noqa: E402
from torch_onnx_models import RESNET_SAFETENSORS  # noqa: E402


def test_pytorchs_file_predicts_what_pytorch_predicted():
    arrays = fastcnn.load_safetensors(RESNET_SAFETENSORS)
    assert arrays["layer2.0.downsample.0.weight"].shape == (8, 4, 1, 1)
    assert arrays["bn1.num_batches_tracked"].dtype == np.int64
    model = torch_models.fastcnn_resnet()
    assert model.load_state_dict(arrays) == ([], [])
    data = np.load(torch_models.FIXTURE)
    np.testing.assert_allclose(model.predict(data["input"]), data["output"], rtol=1e-4,
                               atol=1e-5)


def test_fastcnn_weights_round_trip(tmp_path):
    model = Sequential(nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3), nn.Flatten(), nn.Linear(12, 2))
    model.train().forward(np.random.default_rng(0).standard_normal((4, 1, 4, 4))
                          .astype(np.float32))
    model.save_safetensors(tmp_path / "w.safetensors", metadata={"epochs": "3"})
    import safetensors
    with safetensors.safe_open(str(tmp_path / "w.safetensors"), "np") as f:
        assert f.metadata() == {"format": "pt", "epochs": "3"}
    arrays = fastcnn.load_safetensors(tmp_path / "w.safetensors")
    assert sorted(arrays) == sorted(model.state_dict())
    fresh = Sequential(nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3), nn.Flatten(), nn.Linear(12, 2))
    fresh.load_state_dict(arrays)
    x = np.random.default_rng(1).standard_normal((2, 1, 4, 4)).astype(np.float32)
    np.testing.assert_array_equal(fresh.predict(x), model.predict(x))


def test_live_round_trip_with_pytorch(tmp_path):
    torch = pytest.importorskip("torch")
    import safetensors.torch
    net, x = torch_models.trained_torch_resnet(torch, seed=4)
    safetensors.torch.save_file(net.state_dict(), str(tmp_path / "t.safetensors"))
    model = torch_models.fastcnn_resnet()
    model.load_state_dict(fastcnn.load_safetensors(tmp_path / "t.safetensors"))
    with torch.no_grad():
        np.testing.assert_allclose(model.predict(x.numpy()), net(x).numpy(), rtol=1e-4,
                                   atol=1e-5)
    model.save_safetensors(tmp_path / "back.safetensors")        # and into PyTorch again
    fresh = torch_models.torch_resnet(torch).eval()
    fresh.load_state_dict(safetensors.torch.load_file(str(tmp_path / "back.safetensors")))
    with torch.no_grad():
        np.testing.assert_allclose(fresh(x).numpy(), net(x).numpy(), rtol=1e-6)


@pytest.mark.parametrize("name, content", [
    ("model.pt", b"PK\x03\x04" + bytes(60)),                  # torch.save's zip
    ("model.pth", b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19."),   # a legacy pickle
    ("weights.bin", b"\x80\x04\x95" + bytes(20)),             # a pickle by any other name
])
def test_pickles_are_refused_with_how_to_convert(tmp_path, name, content):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(ModelFileError, match=r"looks like a PyTorch checkpoint .* "
                                             r"safetensors.torch.save_file\(torch.load"):
        fastcnn.load_safetensors(tmp_path / name)


def _header(meta):
    text = json.dumps(meta).encode()
    return struct.pack("<Q", len(text)) + text


@pytest.mark.parametrize("content", [
    b"",
    b"short",
    struct.pack("<Q", 2 ** 60) + b"{}",                                  # a huge header
    _header({"w": {"dtype": "F32", "shape": [2 ** 40], "data_offsets": [0, 2 ** 42]}}),
    _header({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}) + bytes(8),
    _header({"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 16]}}) + bytes(16),
    _header({"w": {"dtype": "BOGUS", "shape": [4], "data_offsets": [0, 16]}}) + bytes(16),
    b"\x08\x00\x00\x00\x00\x00\x00\x00not json" + bytes(8),
])
def test_broken_files_are_model_file_errors(tmp_path, content):
    (tmp_path / "w.safetensors").write_bytes(content)
    with pytest.raises(ModelFileError, match="is not a readable safetensors file"):
        fastcnn.load_safetensors(tmp_path / "w.safetensors")


def test_bfloat16_loads_as_float32(tmp_path):
    pytest.importorskip("ml_dtypes")
    bits = np.array([1.0, -2.5, 0.15625], np.float32).view(np.uint32) >> 16
    (tmp_path / "w.safetensors").write_bytes(
        _header({"w": {"dtype": "BF16", "shape": [3], "data_offsets": [0, 6]}})
        + bits.astype("<u2").tobytes())
    w = fastcnn.load_safetensors(tmp_path / "w.safetensors")["w"]
    assert w.dtype == np.float32
    np.testing.assert_array_equal(w, [1.0, -2.5, 0.15625])


def test_wrong_shapes_say_which_key(tmp_path):
    Sequential(nn.Linear(3, 2)).save_safetensors(tmp_path / "w.safetensors")
    with pytest.raises(ValueError, match=r"0.weight: \(2, 3\) in the dict, \(2, 4\) in the "
                                         r"model"):
        Sequential(nn.Linear(4, 2)).load_state_dict(
            fastcnn.load_safetensors(tmp_path / "w.safetensors"))
    with pytest.raises(FileNotFoundError):
        fastcnn.load_safetensors(tmp_path / "missing.safetensors")
