"""fastcnn.nn: layers and losses, each with an explicit forward and backward pass, and the
blocks that hold layers (Sequential, Residual, Concat of branches)."""

from .layers import (ELU, LAYERS, AvgPool2d, BatchNorm1d, BatchNorm2d, Conv2d,  # noqa: F401
                     Dropout, Flatten, Layer, LeakyReLU, Linear, Maxout, MaxPool2d, ReLU,
                     Sigmoid, Softmax, Tanh, Upsample)
from .losses import BCE, LOSSES, MSE, BCEWithLogits, Loss, SoftmaxCrossEntropy  # noqa: F401
from .merge import Add, Concat, Multiply  # noqa: F401
from .containers import Branches, Residual, Sequential  # noqa: F401,E402
