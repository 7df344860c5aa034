"""A tiny ResNet written twice, in PyTorch (torchvision's module names: conv1, bn1,
layer1.0.conv1, layer2.0.downsample.0, fc) and in fastcnn with the same names, for the
state_dict tests; and the script that made tests/data/torch_resnet_tiny.npz from it:

    python tests/torch_models.py        # needs torch; rewrites the fixture
"""

from pathlib import Path

import numpy as np

from fastcnn import nn
from fastcnn.model import Input, Model, Sequential

FIXTURE = Path(__file__).parent / "data" / "torch_resnet_tiny.npz"


def fastcnn_block(cin, cout, stride):
    """torchvision's BasicBlock as a graph: conv1 bn1 relu conv2 bn2 (+ downsample) relu."""
    x = Input(None, name="x")
    h = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)(x, name="conv1")
    h = nn.ReLU()(nn.BatchNorm2d(cout)(h, name="bn1"), name="relu")
    h = nn.BatchNorm2d(cout)(nn.Conv2d(cout, cout, 3, 1, 1, bias=False)(h, name="conv2"),
                             name="bn2")
    shortcut = x
    if stride != 1 or cin != cout:
        shortcut = Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                              nn.BatchNorm2d(cout))(x, name="downsample")
    return Model(x, nn.ReLU()(nn.Add()([h, shortcut]), name="relu_out"))


def fastcnn_resnet():
    x = Input((1, 8, 8), name="x")
    h = nn.Conv2d(1, 4, 3, 1, 1, bias=False)(x, name="conv1")
    h = nn.ReLU()(nn.BatchNorm2d(4)(h, name="bn1"), name="relu")
    h = Sequential(fastcnn_block(4, 4, 1))(h, name="layer1")
    h = Sequential(fastcnn_block(4, 8, 2))(h, name="layer2")
    h = nn.Flatten()(nn.AvgPool2d(4)(h, name="avgpool"), name="flatten")
    return Model(x, nn.Linear(8, 3)(h, name="fc"))


def torch_resnet(torch):
    tnn = torch.nn

    class BasicBlock(tnn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1 = tnn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = tnn.BatchNorm2d(cout)
            self.relu = tnn.ReLU()
            self.conv2 = tnn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = tnn.BatchNorm2d(cout)
            self.downsample = None
            if stride != 1 or cin != cout:
                self.downsample = tnn.Sequential(tnn.Conv2d(cin, cout, 1, stride, bias=False),
                                                 tnn.BatchNorm2d(cout))

        def forward(self, x):
            out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
            return self.relu(out + (x if self.downsample is None else self.downsample(x)))

    class Tiny(tnn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = tnn.Conv2d(1, 4, 3, 1, 1, bias=False)
            self.bn1 = tnn.BatchNorm2d(4)
            self.relu = tnn.ReLU()
            self.layer1 = tnn.Sequential(BasicBlock(4, 4, 1))
            self.layer2 = tnn.Sequential(BasicBlock(4, 8, 2))
            self.avgpool = tnn.AvgPool2d(4)
            self.fc = tnn.Linear(8, 3)

        def forward(self, x):
            x = self.layer2(self.layer1(self.relu(self.bn1(self.conv1(x)))))
            return self.fc(torch.flatten(self.avgpool(x), 1))

    return Tiny()


def trained_torch_resnet(torch, seed=0):
    """The torch model after a few training-mode passes (running statistics and
    num_batches_tracked that are not the defaults), in eval mode, and an input."""
    torch.manual_seed(seed)
    model = torch_resnet(torch)
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(16, 1, 8, 8) * 2 + 0.5)
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0, 0.2)
    model.eval()
    return model, torch.randn(2, 1, 8, 8)


def make_fixture():
    import torch
    model, x = trained_torch_resnet(torch)
    with torch.no_grad():
        y = model(x)
    arrays = {k: v.numpy() for k, v in model.state_dict().items()}
    np.savez(FIXTURE, **arrays, **{"input": x.numpy(), "output": y.numpy()})
    print(f"{FIXTURE}: {len(arrays)} arrays, {FIXTURE.stat().st_size:,} bytes")


if __name__ == "__main__":
    make_fixture()
