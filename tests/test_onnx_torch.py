"""PyTorch -> ONNX -> fastcnn: a file written by torch.onnx.export predicts in fastcnn
what it predicted in PyTorch, and fine-tunes. tests/data/torch_net.onnx was exported
once (tests/torch_onnx_models.py), so this runs without torch; with torch installed the
models are also exported live, and a training step is compared with PyTorch's."""

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")

import fastcnn  # noqa: E402
from fastcnn.model import Graph  # noqa: E402
from fastcnn.nn import SoftmaxCrossEntropy  # noqa: E402
from fastcnn.optim import SGD  # noqa: E402
from helpers import cuda_usable  # noqa: E402
from torch_onnx_models import NET_NPZ, NET_ONNX, export, torch_net, torch_seed_cnn  # noqa: E402


def test_a_file_pytorch_exported_predicts_what_pytorch_predicted():
    model = fastcnn.onnx.load(NET_ONNX)
    assert isinstance(model, Graph)          # the residual Add and the Concat fork it
    assert [type(layer).__name__ for layer in model.layers] == [   # BatchNorm: in conv1
        "Conv2d", "ReLU", "Conv2d", "Add", "ReLU", "Upsample", "MaxPool2d", "Concat", "Conv2d",
        "LeakyReLU", "Flatten", "Linear"]                  # the view's shape arithmetic: gone
    assert model.nodes[0].name == "conv1_Conv"
    data = np.load(NET_NPZ)
    np.testing.assert_allclose(model.predict(data["input"]), data["output"], rtol=1e-4,
                               atol=1e-5)


def test_the_imported_model_fine_tunes_and_exports_again(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    model = fastcnn.onnx.load(NET_ONNX)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 1, 8, 8)).astype(np.float32)
    y = rng.integers(0, 10, 32)
    model.compile(SGD(model.parameters(), lr=0.05, momentum=0.9), SoftmaxCrossEntropy())
    before = model.evaluate((x, y))["loss"]
    for _ in range(10):
        model.train_step(x, y)
    assert model.evaluate((x, y))["loss"] < 0.9 * before
    fastcnn.onnx.export(model, tmp_path / "tuned.onnx")
    session = ort.InferenceSession(str(tmp_path / "tuned.onnx"),
                                   providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(session.run(None, {"x": x})[0], model.predict(x), rtol=1e-4,
                               atol=1e-5)


def test_live_export_with_a_dynamic_batch(tmp_path):
    torch = pytest.importorskip("torch")
    net = torch_net(torch, seed=3)
    export(torch, net, tmp_path / "net.onnx", (1, 8, 8))
    model = fastcnn.onnx.load(tmp_path / "net.onnx")
    x = torch.randn(7, 1, 8, 8)
    with torch.no_grad():
        want = net(x).numpy()
    np.testing.assert_allclose(model.predict(x.numpy()), want, rtol=1e-4, atol=1e-5)


def test_a_training_step_is_pytorchs(tmp_path):
    """The seed CNN from PyTorch: same predictions, then one SGD step on the same batch in
    both frameworks gives the same model again."""
    torch = pytest.importorskip("torch")
    net = torch_seed_cnn(torch).eval()
    export(torch, net, tmp_path / "cnn.onnx", (1, 28, 28))
    model = fastcnn.onnx.load(tmp_path / "cnn.onnx")
    assert [type(layer).__name__ for layer in model.layers] == [
        "Conv2d", "ReLU", "MaxPool2d", "Conv2d", "ReLU", "MaxPool2d", "Flatten", "Linear"]
    rng = np.random.default_rng(1)
    x = rng.standard_normal((16, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 10, 16)
    with torch.no_grad():
        np.testing.assert_allclose(model.predict(x), net(torch.from_numpy(x)).numpy(),
                                   rtol=1e-4, atol=1e-5)
    model.compile(SGD(model.parameters(), lr=0.1), SoftmaxCrossEntropy())
    model.train_step(x, y)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    net.train()
    loss = torch.nn.functional.cross_entropy(net(torch.from_numpy(x)), torch.from_numpy(y))
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    net.eval()
    with torch.no_grad():
        np.testing.assert_allclose(model.predict(x), net(torch.from_numpy(x)).numpy(),
                                   rtol=1e-3, atol=1e-4)
    for mine, theirs in zip([p for layer in model.layers for p in layer.params.values()],
                            net.parameters()):
        np.testing.assert_allclose(mine, theirs.detach().numpy(), rtol=1e-3, atol=1e-5)


def test_pytorchs_layers_with_the_windows_fastcnn_now_reads(tmp_path):
    """ConvTranspose2d, a pad on one side, ceil_mode, pool dilation, count_include_pad=False,
    bilinear and non-integer upsampling, Unflatten: exported by PyTorch, read back alike."""
    torch = pytest.importorskip("torch")
    tnn = torch.nn
    torch.manual_seed(0)

    class Net(tnn.Module):
        def __init__(self):
            super().__init__()
            self.up = tnn.ConvTranspose2d(2, 4, 3, stride=2, padding=1, output_padding=1)
            self.conv = tnn.Conv2d(4, 4, 3)
            self.pool = tnn.MaxPool2d(3, stride=2, dilation=2, ceil_mode=True)
            self.avg = tnn.AvgPool2d(3, stride=2, padding=1, ceil_mode=True,
                                     count_include_pad=False)
            self.fc = tnn.Linear(4 * 5 * 3, 2 * 6 * 6)
            self.unflatten = tnn.Unflatten(1, (2, 6, 6))

        def forward(self, x):
            h = self.conv(tnn.functional.pad(self.up(x), (0, 1, 1, 0)))
            h = self.avg(self.pool(h))
            h = tnn.functional.interpolate(h, scale_factor=1.5, mode="bilinear")
            h = tnn.functional.interpolate(h, size=(5, 3), mode="nearest")
            return self.unflatten(self.fc(h.flatten(1)))

    net = Net().eval()
    x = torch.randn(3, 2, 8, 8)
    with torch.no_grad():
        want = net(x).numpy()
    export(torch, net, tmp_path / "net.onnx", (2, 8, 8))
    model = fastcnn.onnx.load(tmp_path / "net.onnx")
    np.testing.assert_allclose(model.predict(x.numpy()), want, rtol=1e-4, atol=1e-5)


@pytest.mark.skipif(not cuda_usable(), reason="numba-cuda is not installed")
def test_on_the_gpu(tmp_path):
    """An imported model runs where any model runs, and exports from there (a real GPU
    with FASTCNN_TEST_GPU=1, else Numba's simulator)."""
    ort = pytest.importorskip("onnxruntime")
    model = fastcnn.onnx.load(NET_ONNX).to("cuda")
    data = np.load(NET_NPZ)
    np.testing.assert_allclose(model.predict(data["input"][:2]), data["output"][:2],
                               rtol=1e-4, atol=1e-5)
    fastcnn.onnx.export(model, tmp_path / "again.onnx")
    session = ort.InferenceSession(str(tmp_path / "again.onnx"),
                                   providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(session.run(None, {"x": data["input"]})[0], data["output"],
                               rtol=1e-4, atol=1e-5)
