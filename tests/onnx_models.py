"""What the ONNX tests share: a model of each layer fastcnn exports, the models of the
examples, and running a model in ONNX Runtime."""

import importlib
import sys
from pathlib import Path

import numpy as np
import pytest

from fastcnn import nn
from fastcnn.model import Input, Model, Sequential
import torch_models


def ort_run(model, feeds):
    """ONNX Runtime's outputs for a ModelProto or a path, feeds {input name: array}."""
    ort = pytest.importorskip("onnxruntime")
    source = model if isinstance(model, str) else model.SerializeToString()
    session = ort.InferenceSession(source, providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def settled(model, shapes, seed=0):
    """model after a few training passes on random inputs (BatchNorm statistics that are
    not the defaults), with BatchNorm scales and shifts away from 1 and 0."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, nn.BatchNorm2d) and "weight" in layer.params:
            layer.params["weight"][:] = rng.uniform(0.5, 1.5, layer.num_features)
            layer.params["bias"][:] = rng.normal(0, 0.3, layer.num_features)
    model.train()
    for _ in range(2):
        model.forward(*[rng.standard_normal((4,) + s).astype(np.float32) * 2 + 0.3
                        for s in shapes])
    return model.eval()


def _two(layer):
    """layer applied to two inputs of shape (2, 3, 3) in a graph."""
    a, b = Input((2, 3, 3), name="a"), Input((2, 3, 3), name="b")
    return Model([a, b], layer([a, b], name="merge"))


def _residual_graph():
    x = Input((2, 6, 6), name="x")
    h = nn.ReLU()(nn.Conv2d(2, 2, 3, padding=1)(x, name="conv"), name="relu")
    return Model(x, nn.Add()([h, x], name="add"))


def _nested():
    """A Sequential in a graph in a Sequential, with a Residual and a Concat of branches."""
    x = Input((2, 6, 6), name="x")
    inner = Model(x, nn.Multiply()([nn.Sigmoid()(x, name="gate"), x], name="gated"))
    return Sequential(
        nn.Conv2d(1, 2, 3, padding=1), inner,
        nn.Residual(Sequential(nn.Conv2d(2, 2, 3, padding=1), nn.BatchNorm2d(2)),
                    shortcut=nn.Conv2d(2, 2, 1)),
        nn.Concat(nn.Conv2d(2, 3, 1), Sequential(nn.MaxPool2d(3, 1, 1), nn.Conv2d(2, 1, 1))),
        nn.Flatten(), nn.Linear(4 * 36, 3))


# The exports fastcnn.onnx.load cannot read back (ONNX Runtime checks them, the round trip
# skips them): none, every layer's export is read back.
NOT_READ_BACK = set()

# name -> (model builder, input shapes of one example)
LAYER_CASES = {
    "Linear": (lambda: Sequential(nn.Linear(6, 4)), [(6,)]),
    "Linear nobias": (lambda: Sequential(nn.Linear(6, 4, bias=False)), [(6,)]),
    "Conv2d": (lambda: Sequential(nn.Conv2d(2, 3, 3, padding=1)), [(2, 7, 7)]),
    "Conv2d stride": (lambda: Sequential(nn.Conv2d(2, 3, 3, stride=2)), [(2, 8, 7)]),
    "Conv2d dilation": (lambda: Sequential(nn.Conv2d(2, 3, 3, dilation=2, padding=2)),
                        [(2, 7, 7)]),
    "Conv2d rect": (lambda: Sequential(nn.Conv2d(2, 3, (3, 2), stride=(1, 2), padding=(1, 0),
                                                 bias=False)), [(2, 6, 7)]),
    "BatchNorm2d": (lambda: Sequential(nn.BatchNorm2d(3)), [(3, 4, 4)]),
    "BatchNorm2d noaffine": (lambda: Sequential(nn.BatchNorm2d(3, affine=False)), [(3, 4, 4)]),
    "BatchNorm1d": (lambda: Sequential(nn.BatchNorm1d(5, eps=1e-3)), [(5,)]),
    "BatchNorm1d (N, C, L)": (lambda: Sequential(nn.BatchNorm1d(3)), [(3, 6)]),
    "MaxPool2d": (lambda: Sequential(nn.MaxPool2d(2)), [(2, 6, 7)]),
    "MaxPool2d pad": (lambda: Sequential(nn.MaxPool2d(3, stride=2, padding=1)), [(2, 7, 7)]),
    "MaxPool2d rect": (lambda: Sequential(nn.MaxPool2d((2, 3), stride=(1, 2))), [(2, 5, 7)]),
    "AvgPool2d": (lambda: Sequential(nn.AvgPool2d(2)), [(2, 6, 6)]),
    "AvgPool2d pad": (lambda: Sequential(nn.AvgPool2d(3, stride=1, padding=1)), [(2, 5, 5)]),
    "Upsample": (lambda: Sequential(nn.Upsample(scale_factor=2)), [(2, 3, 4)]),
    "Upsample rect": (lambda: Sequential(nn.Upsample(scale_factor=(2, 3))), [(2, 3, 4)]),
    # the operators issue's layers (issue 13)
    "Conv2d groups": (lambda: Sequential(nn.Conv2d(4, 6, 3, padding=1, groups=2)), [(4, 5, 5)]),
    "Conv2d depthwise": (lambda: Sequential(nn.Conv2d(3, 6, 3, groups=3)), [(3, 6, 6)]),
    "Conv2d same": (lambda: Sequential(nn.Conv2d(2, 3, 4, padding="same")), [(2, 6, 7)]),
    "ConvTranspose2d": (lambda: Sequential(nn.ConvTranspose2d(
        4, 3, 3, stride=2, padding=1, output_padding=1, groups=1)), [(4, 4, 5)]),
    "ConvTranspose2d groups": (lambda: Sequential(nn.ConvTranspose2d(
        4, 6, (2, 3), stride=(2, 1), groups=2, dilation=(1, 2))), [(4, 3, 4)]),
    "MaxPool2d ceil": (lambda: Sequential(nn.MaxPool2d(3, stride=2, ceil_mode=True)),
                       [(2, 8, 8)]),
    "MaxPool2d dilation": (lambda: Sequential(nn.MaxPool2d(2, stride=1, dilation=2)),
                           [(2, 6, 6)]),
    "AvgPool2d exclude pad": (lambda: Sequential(nn.AvgPool2d(
        3, stride=2, padding=1, count_include_pad=False)), [(2, 7, 7)]),
    "AdaptiveAvgPool2d global": (lambda: Sequential(nn.AdaptiveAvgPool2d(1)), [(3, 5, 4)]),
    "AdaptiveMaxPool2d global": (lambda: Sequential(nn.AdaptiveMaxPool2d(1)), [(3, 5, 4)]),
    "Upsample bilinear": (lambda: Sequential(nn.Upsample(scale_factor=2, mode="bilinear")),
                          [(2, 3, 4)]),
    "Upsample bilinear corners": (lambda: Sequential(nn.Upsample(
        size=(5, 7), mode="bilinear", align_corners=True)), [(2, 3, 4)]),
    "Upsample size": (lambda: Sequential(nn.Upsample(size=(6, 8))), [(2, 3, 4)]),
    "LogSoftmax": (lambda: Sequential(nn.LogSoftmax()), [(7,)]),
    "Flatten": (lambda: Sequential(nn.Flatten()), [(2, 3, 4)]),
    "Flatten middle": (lambda: Sequential(nn.Flatten(2, 3)), [(2, 3, 4, 2)]),
    "Unflatten": (lambda: Sequential(nn.Linear(6, 12), nn.Unflatten(1, (3, 2, 2)),
                                     nn.Conv2d(3, 2, 1)), [(6,)]),
    "Unflatten middle": (lambda: Sequential(nn.Unflatten(-1, (2, -1))), [(2, 3, 4)]),
    "ReLU": (lambda: Sequential(nn.ReLU()), [(2, 3, 3)]),
    "LeakyReLU": (lambda: Sequential(nn.LeakyReLU(0.1)), [(2, 3, 3)]),
    "ELU": (lambda: Sequential(nn.ELU(0.7)), [(2, 3, 3)]),
    "Sigmoid": (lambda: Sequential(nn.Sigmoid()), [(2, 3, 3)]),
    "Tanh": (lambda: Sequential(nn.Tanh()), [(5,)]),
    "Softmax": (lambda: Sequential(nn.Softmax()), [(7,)]),
    "Maxout": (lambda: Sequential(nn.Maxout(3)), [(6,)]),
    "Maxout images": (lambda: Sequential(nn.Maxout(2)), [(4, 3, 2)]),
    "Dropout": (lambda: Sequential(nn.Dropout(0.5)), [(2, 3, 3)]),
    "Add": (lambda: _two(nn.Add()), [(2, 3, 3)] * 2),
    "Multiply": (lambda: _two(nn.Multiply()), [(2, 3, 3)] * 2),
    "Concat": (lambda: _two(nn.Concat()), [(2, 3, 3)] * 2),
    "residual graph": (_residual_graph, [(2, 6, 6)]),
    "nested": (_nested, [(1, 6, 6)]),
}


def seed_cnn():
    """The seed MNIST CNN of examples/mnist_cnn.py."""
    return Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                      nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                      nn.Flatten(), nn.Linear(64 * 7 * 7, 10))


def example(module, function, *args):
    """A model builder of examples/module.py (importing it as the examples run)."""
    def make():
        folder = str(Path(__file__).resolve().parent.parent / "examples")
        if folder not in sys.path:
            sys.path.append(folder)
        return getattr(importlib.import_module(module), function)(*args)
    return make


MODEL_CASES = {
    "seed CNN": (seed_cnn, [(1, 28, 28)]),
    "ResNet example": (example("resnet", "resnet", 4), [(1, 28, 28)]),
    "autoencoder example": (example("autoencoder", "autoencoder"), [(1, 28, 28)]),
    "tiny ResNet": (torch_models.fastcnn_resnet, [(1, 8, 8)]),
}


def build(case, seed=0):
    """(model, inputs of 3 examples) of a case of LAYER_CASES or MODEL_CASES."""
    make, shapes = {**LAYER_CASES, **MODEL_CASES}[case]
    model = settled(make(), shapes, seed)
    rng = np.random.default_rng(seed + 1)
    return model, [rng.standard_normal((3,) + s).astype(np.float32) for s in shapes]
