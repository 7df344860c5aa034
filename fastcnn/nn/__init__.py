"""fastcnn.nn: layers and losses, each with an explicit forward and backward pass, and the
blocks that hold layers (Sequential, Residual, Concat of branches)."""

from .layers import LAYERS, Layer, __all__ as _layers   # noqa: F401
from .layers import *   # noqa: F401,F403
from .losses import BCE, LOSSES, MSE, BCEWithLogits, Loss, SoftmaxCrossEntropy  # noqa: F401
from .merge import Add, Concat, Multiply  # noqa: F401,E402
from .containers import Branches, Residual, Sequential  # noqa: F401,E402

__all__ = _layers + ["LOSSES", "Loss", "SoftmaxCrossEntropy", "BCEWithLogits", "BCE", "MSE",
                     "Add", "Concat", "Multiply", "Branches", "Residual", "Sequential"]
