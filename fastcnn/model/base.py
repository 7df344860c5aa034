"""Model: what every kind of model has, whatever connects its layers.

A model is its layers plus the way they are connected. This base class holds the
layers and everything that does not depend on the connections: parameters, modes,
devices, compile, and fit / evaluate / predict / train_step (``training``), save /
load (``io``), summary. A kind of model (``Sequential``, a chain; a graph of layers)
subclasses it and provides only the connections:

- ``__init__`` calls ``super().__init__(layers)`` with every leaf layer, in the order
  forward runs them (``self.layers``; the file format keys the arrays by this order);
- ``forward(x)`` -> the output, recording ``self.input_shape = tuple(x.shape[1:])``
  (summary's default); ``backward(dy, need_dx=True)`` -> dx, writing every layer's grads
  (with need_dx=False it returns None and may skip what only dx needs);
- ``architecture()`` -> a JSON-able dict: ``format`` (the class's ``FORMAT``), ``version``
  (``io.FORMAT_VERSION``), ``layers`` (``self.layer_specs()``) and whatever else describes
  the connections; ``from_architecture(arch, layers)``, a classmethod, builds the model
  again from that dict and its layers (rebuilt by ``io`` in ``layers`` order, in the
  file's dtypes), raising ValueError on a dict it cannot use;
- ``summary_rows(input_shape)`` -> one ``(label, description, output shape or None,
  parameter count)`` per layer (input_shape is None when no shape is known);
- ``FORMAT``, the name its files carry ("fastcnn.Sequential"), which registers the class
  with ``io`` so that ``fastcnn.model.load`` finds it.

Then fit, evaluate, predict, callbacks, save and load, ``to("cuda")`` and distributed
training (``fastcnn.distributed.DataParallel``) work for it unchanged.
"""

import numpy as np

from .. import backends
from ..nn.layers import Layer
from ..optim import parameters
from . import io, training


class Model:
    """Layers with a training loop: the base of Sequential and every other kind of model."""

    FORMAT = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.FORMAT is not None:
            io.FORMATS[cls.FORMAT] = cls

    def __init__(self, layers):
        layers = list(layers)
        for i, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise TypeError(f"{type(self).__name__}: argument {i} is not a layer "
                                f"({type(layer).__name__})")
            layer.index = i
        self.layers = layers
        self.loss = None
        self.optimizer = None
        self.device = "cpu"
        self.stop_training = False
        self.input_shape = None      # one example's shape, seen by the last forward pass
        self.parallel = None         # a training.Strategy (distributed.DataParallel) or None

    # ---- what a kind of model provides

    def forward(self, x):
        raise NotImplementedError

    def backward(self, dy, need_dx=True):
        raise NotImplementedError

    def architecture(self):
        raise NotImplementedError

    @classmethod
    def from_architecture(cls, arch, layers):
        raise NotImplementedError

    def summary_rows(self, input_shape):
        raise NotImplementedError

    # ---- the layers

    def __call__(self, x):
        return self.forward(x)

    def parameters(self):
        """Parameter handles of every layer, for an optimizer."""
        return [p for layer in self.layers for p in parameters(layer)]

    def num_params(self):
        return sum(layer.num_params() for layer in self.layers)

    def train(self, mode=True):
        for layer in self.layers:
            layer.train(mode)
        return self

    def eval(self):
        return self.train(False)

    def to(self, device):
        """Move parameters, gradients, buffers and the optimizer's state to "cpu" or "cuda"."""
        for layer in self.layers:
            layer.to(device)
        if self.optimizer is not None:
            self.optimizer.to(device)
        if self.loss is not None:
            self.loss.to(device)
        self.device = device
        return self

    def _dtype(self):
        """The parameters' dtype (None for a model without parameters): host batches are
        cast to it."""
        for layer in self.layers:
            for p in layer.params.values():
                return p.dtype
        return None

    def layer_specs(self):
        """Each layer's type and constructor arguments, in ``layers`` order (what
        architecture() lists and io rebuilds)."""
        return [{"type": type(layer).__name__, "config": layer.config()}
                for layer in self.layers]

    @property
    def strategy(self):
        """What training talks to about other processes: model.parallel, or this process
        alone (training.LOCAL)."""
        return training.LOCAL if self.parallel is None else self.parallel

    # ---- training (fastcnn.model.training)

    def compile(self, optimizer, loss):
        """The optimizer and the loss that fit and evaluate use."""
        self.optimizer, self.loss = optimizer, loss
        return self

    def fit(self, train, epochs=1, val=None, callbacks=(), verbose=1, batch_size=32,
            distributed=False):
        return training.fit(self, train, epochs, val, callbacks, verbose, batch_size,
                            distributed)

    def evaluate(self, data, batch_size=500, distributed=False):
        return training.evaluate(self, data, batch_size, distributed)

    def predict(self, x, batch_size=500):
        return training.predict(self, x, batch_size)

    def train_step(self, x, y, correct=None):
        return training.train_step(self, x, y, correct)

    fit.__doc__ = training.fit.__doc__
    evaluate.__doc__ = training.evaluate.__doc__
    predict.__doc__ = training.predict.__doc__
    train_step.__doc__ = training.train_step.__doc__

    # ---- files (fastcnn.model.io)

    def save(self, path):
        io.save(self, path)

    @classmethod
    def load(cls, path):
        return io.load(path, cls)

    def load_weights(self, path):
        return io.load_weights(self, path)

    save.__doc__, load_weights.__doc__ = io.save.__doc__, io.load_weights.__doc__
    load.__func__.__doc__ = io.load.__doc__

    # ---- description

    def summary(self, input_shape=None):
        """A table of the layers, their output shapes and parameter counts (a string).
        input_shape: one example's shape, e.g. (1, 28, 28); by default the last one seen."""
        input_shape = tuple(input_shape or self.input_shape or ())
        rows = [("#", "layer", "output shape", "params")]
        for label, description, shape, count in self.summary_rows(input_shape or None):
            shown = "?" if shape is None else _shape(shape)
            rows.append((str(label), description, shown, f"{count:,}"))
        widths = [max(len(r[c]) for r in rows) for c in range(4)]
        lines = ["  ".join(r[c].ljust(widths[c]) if c < 3 else r[c].rjust(widths[c])
                           for c in range(4)) for r in rows]
        rule = "-" * len(lines[0])
        total = f"total parameters: {self.num_params():,}"
        if input_shape:
            total += f"   (input {_shape(input_shape)})"
        return "\n".join([lines[0], rule] + lines[1:] + [rule, total])

    def _zeros_example(self, input_shape):
        """One example of zeros shaped input_shape, where and as the model computes (for
        a summary's forward pass)."""
        where = backends.get("cuda" if self.device == "cuda" else "cpu")
        return where.zeros((1,) + tuple(input_shape), self._dtype() or np.float32)


def _shape(shape):
    """(N, 4, 8, 8): an output shape with its batch axis."""
    return str(("N",) + tuple(shape)).replace("'", "")
