"""PyTorch models for the ONNX and safetensors tests, and the script that made their
fixtures in tests/data (so the tests need no torch; with torch installed they also run
live):

- torch_net.onnx: ``Net`` below, a small CNN with the ops PyTorch's exporter writes for
  a typical model (a BatchNorm folded into its Conv, a residual Add, nearest Resize,
  MaxPool, Concat, LeakyRelu, ``x.view(x.size(0), -1)`` as Shape/Gather/Unsqueeze/Concat/
  Reshape, Gemm), exported by ``torch.onnx.export(..., dynamo=False)`` with a dynamic
  batch; torch_net.npz: an input and PyTorch's output for it;
- torch_resnet_tiny.safetensors: the state_dict of tests/torch_models.py's tiny ResNet
  (trained statistics, num_batches_tracked included), saved by safetensors.torch; its
  input and PyTorch's output are in torch_resnet_tiny.npz.

    python tests/torch_onnx_models.py        # needs torch and safetensors; rewrites them
"""

import warnings
from pathlib import Path

import numpy as np

DATA = Path(__file__).parent / "data"
NET_ONNX, NET_NPZ = DATA / "torch_net.onnx", DATA / "torch_net.npz"
RESNET_SAFETENSORS = DATA / "torch_resnet_tiny.safetensors"


def torch_net(torch, seed=0):
    """Net, in eval mode with BatchNorm statistics that are not the defaults."""
    tnn, F = torch.nn, torch.nn.functional

    class Net(tnn.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.bn1 = tnn.Conv2d(1, 4, 3, padding=1), tnn.BatchNorm2d(4)
            self.conv2 = tnn.Conv2d(4, 4, 3, padding=1)
            self.up, self.pool = tnn.Upsample(scale_factor=2, mode="nearest"), tnn.MaxPool2d(2)
            self.conv3 = tnn.Conv2d(8, 8, 3, stride=2, padding=1)
            self.fc = tnn.Linear(8 * 4 * 4, 10)

        def forward(self, x):                                   # x: (N, 1, 8, 8)
            h = F.relu(self.bn1(self.conv1(x)))
            r = F.relu(self.conv2(h) + h)
            c = torch.cat([r, self.pool(self.up(h))], 1)
            c = F.leaky_relu(self.conv3(c), 0.1)
            return self.fc(c.view(c.size(0), -1))

    torch.manual_seed(seed)
    model = Net()
    with torch.no_grad():
        model(torch.randn(16, 1, 8, 8) * 2 + 0.5)          # training mode: statistics
        model.bn1.weight.uniform_(0.5, 1.5)
    return model.eval()


def torch_seed_cnn(torch, seed=0):
    """The seed CNN of examples/mnist_cnn.py, written in PyTorch."""
    tnn = torch.nn
    torch.manual_seed(seed)
    return tnn.Sequential(tnn.Conv2d(1, 32, 3, padding=1), tnn.ReLU(), tnn.MaxPool2d(2),
                          tnn.Conv2d(32, 64, 3, padding=1), tnn.ReLU(), tnn.MaxPool2d(2),
                          tnn.Flatten(), tnn.Linear(64 * 7 * 7, 10))


def export(torch, model, path, shape):
    """model to an ONNX file at path as a user would: the legacy exporter, opset 17,
    input "x" and output "logits" with a dynamic batch."""
    with warnings.catch_warnings():      # that the legacy exporter is the legacy one
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(model, (torch.randn(2, *shape),), str(path), dynamo=False,
                          input_names=["x"], output_names=["logits"], opset_version=17,
                          dynamic_axes={"x": {0: "N"}, "logits": {0: "N"}})


def make_fixtures():
    import safetensors.torch
    import torch
    import torch_models
    model = torch_net(torch)
    export(torch, model, NET_ONNX, (1, 8, 8))
    x = torch.randn(5, 1, 8, 8)
    with torch.no_grad():
        np.savez(NET_NPZ, input=x.numpy(), output=model(x).numpy())
    resnet, _ = torch_models.trained_torch_resnet(torch)
    safetensors.torch.save_file(resnet.state_dict(), str(RESNET_SAFETENSORS))
    for path in (NET_ONNX, NET_NPZ, RESNET_SAFETENSORS):
        print(f"{path}: {path.stat().st_size:,} bytes")


if __name__ == "__main__":
    make_fixtures()
