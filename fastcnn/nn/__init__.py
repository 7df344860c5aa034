"""fastcnn.nn: layers and losses, each with an explicit forward and backward pass."""

from .layers import LAYERS, Layer, __all__ as _layers   # noqa: F401
from .layers import *   # noqa: F401,F403
from .losses import BCE, LOSSES, MSE, BCEWithLogits, Loss, SoftmaxCrossEntropy  # noqa: F401

__all__ = _layers + ["LOSSES", "Loss", "SoftmaxCrossEntropy", "BCEWithLogits", "BCE", "MSE"]
