"""fastcnn.nn: layers and losses, each with an explicit forward and backward pass."""

from .layers import (ELU, LAYERS, AvgPool2d, BatchNorm1d, BatchNorm2d, Conv2d,  # noqa: F401
                     Dropout, Flatten, Layer, LeakyReLU, Linear, Maxout, MaxPool2d, ReLU,
                     Sigmoid, Softmax, Tanh, Upsample)
from .losses import BCE, LOSSES, MSE, BCEWithLogits, Loss, SoftmaxCrossEntropy  # noqa: F401
