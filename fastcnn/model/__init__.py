"""fastcnn.model: models made of layers, their training loop, callbacks and files.

- ``base``: ``Model``, what every kind of model has (and the contract a new kind fills);
- ``sequential``: ``Sequential``, a stack of layers;
- ``training``: fit / evaluate / predict / train_step, one batch loop, and ``Strategy``,
  how training works with other processes (``fastcnn.distributed`` plugs in there);
- ``callbacks``: ``History``, ``EarlyStopping``, ``ModelCheckpoint``, ...;
- ``io``: the .npz file format (``load``, ``ModelFileError``).
"""

from .base import Model
from .callbacks import (Callback, EarlyStopping, History, LearningRateScheduler,  # noqa: F401
                        ModelCheckpoint, plot_history)
from .io import FORMAT_VERSION, ModelFileError, load
from .sequential import Sequential
from .training import Strategy

FORMAT = Sequential.FORMAT

__all__ = ["Model", "Sequential", "load", "ModelFileError", "Callback", "History",
           "EarlyStopping", "ModelCheckpoint", "LearningRateScheduler", "plot_history",
           "Strategy", "FORMAT", "FORMAT_VERSION"]
