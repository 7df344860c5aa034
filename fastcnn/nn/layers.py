"""Every layer, by name (``LAYERS``: what model files and the fuzz suite look layers up
in). The layers live by family: base.py (``Layer``, what they share), linear.py,
conv.py, norm.py, pool.py, reshape.py (Upsample, Flatten, Unflatten) and activation.py (with
Softmax, Maxout and Dropout)."""

from .activation import (ELU, Dropout, LeakyReLU, LogSoftmax, Maxout, ReLU, Sigmoid, Softmax,
                         Tanh)
from .base import Layer  # noqa: F401 (in __all__)
from .conv import Conv1d, Conv2d, ConvTranspose2d
from .linear import Linear
from .norm import BatchNorm1d, BatchNorm2d
from .pool import (AdaptiveAvgPool1d, AdaptiveAvgPool2d, AdaptiveMaxPool1d, AdaptiveMaxPool2d,
                   AvgPool1d, AvgPool2d, MaxPool1d, MaxPool2d)
from .reshape import Flatten, Unflatten, Upsample

LAYERS = {cls.__name__: cls for cls in (
    Linear, Conv2d, Conv1d, ConvTranspose2d, BatchNorm1d, BatchNorm2d, MaxPool2d, AvgPool2d,
    MaxPool1d, AvgPool1d, AdaptiveAvgPool2d, AdaptiveMaxPool2d, AdaptiveAvgPool1d,
    AdaptiveMaxPool1d, Upsample, Flatten, Unflatten, ReLU, LeakyReLU, ELU, Sigmoid, Tanh, Softmax,
    LogSoftmax, Maxout, Dropout)}

__all__ = ["Layer", "LAYERS"] + list(LAYERS)
