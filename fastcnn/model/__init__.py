"""fastcnn.model: models made of layers, their training loop, callbacks and files.

- ``base``: ``Model``, what every kind of model has (and the contract a new kind fills);
- ``sequential``: ``Sequential``, a stack of layers;
- ``graph``: ``Graph``, layers connected as any acyclic graph, built with the functional
  API (``Input``, layers called on its nodes, ``Model(inputs, outputs)``);
- ``blocks``: what every container does with its children (names, freezing, files);
- ``state``: ``state_dict`` / ``load_state_dict``, the weights under PyTorch's names;
- ``training``: fit / evaluate / predict / train_step, one batch loop, and ``Strategy``,
  how training works with other processes (``fastcnn.distributed`` plugs in there);
- ``callbacks``: ``History``, ``EarlyStopping``, ``ModelCheckpoint``, ...;
- ``io``: the .npz file format (``load``, ``ModelFileError``).
"""

from .base import Model
from .graph import Graph, Input, Node
from .callbacks import (Callback, EarlyStopping, History, LearningRateScheduler,  # noqa: F401
                        ModelCheckpoint, plot_history)
from .io import FORMAT_VERSION, ModelFileError, load
from .sequential import Sequential
from .training import Strategy

FORMAT = Sequential.FORMAT

__all__ = ["Model", "Sequential", "Graph", "Input", "Node", "load", "ModelFileError",
           "Callback", "History", "EarlyStopping", "ModelCheckpoint", "LearningRateScheduler",
           "plot_history", "Strategy", "FORMAT", "FORMAT_VERSION"]
