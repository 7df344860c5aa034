"""Model: what every kind of model has, whatever connects its layers.

A model is its children (layers, or other models nested inside it) plus the way they
are connected. This base class holds the children and everything that does not depend
on the connections: parameters, freezing, names of the weights (state_dict), modes,
devices, compile, and fit / evaluate / predict / train_step (``training``), save /
load (``io``), summary. A kind of model (``Sequential``, a chain; ``Graph``, any
acyclic graph; the ``Residual`` and ``Concat`` blocks of ``fastcnn.nn``) subclasses it
and provides only the connections:

- ``__init__`` calls ``super().__init__(children)`` with its children in the order
  forward runs them: a list (named "0", "1", ...) or a dict of names, each a layer or a
  model; the base lists every layer under them, in that order (``self.layers``; the
  file format keys the arrays by this order), and names them ("features.3");
- ``forward(x)`` -> the output, recording ``self.input_shape = tuple(x.shape[1:])``
  (summary's default); ``backward(dy, need_dx=True)`` -> dx, writing the grads of every
  layer that trains (with need_dx=False it returns None and may skip what only dx
  needs; a frozen layer's weight gradient is never computed: ``blocks.trains``);
- ``describe(position)`` -> a JSON-able dict of the connections, its children given
  by ``blocks.describe(child, position)``; ``rebuild(spec, layers)``, a classmethod,
  builds the model again from that dict, its children by ``blocks.rebuild(spec,
  layers)``, raising ValueError on a dict it cannot use. (Or, for a model that is never
  nested in another, ``architecture()`` and ``from_architecture(arch, layers)`` for the
  whole file's description: ``format`` (the class's ``FORMAT``), ``version``
  (``io.FORMAT_VERSION``), ``layers`` (``self.layer_specs()``) and the connections.)
- ``summary_rows(input_shape)`` -> one ``(label, description, output shape or None,
  parameter count)`` per child, or ``(label, description, inputs, output shape,
  count)`` to show where each one's input comes from (input_shape is None when no
  shape is known);
- ``FORMAT``, the name its files carry ("fastcnn.Sequential"), which registers the class
  with ``io`` so that ``fastcnn.model.load`` finds it.

Then fit, evaluate, predict, callbacks, save and load, state_dict, freezing,
``to("cuda")`` and distributed training (``fastcnn.distributed.DataParallel``) work for
it unchanged, and it nests inside any other model.

``Model(inputs, outputs)`` itself, called on the symbolic tensors of the functional
API (``fastcnn.model.Input``), builds a ``Graph``, as ``keras.Model`` does.
"""

import numpy as np

from .. import backends
from ..optim import parameters
from . import blocks, io, state, training


class Model:
    """Layers with a training loop: the base of Sequential and every other kind of model."""

    FORMAT = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.FORMAT is not None:
            io.FORMATS[cls.FORMAT] = cls

    def __new__(cls, *args, **kwargs):
        """Model(inputs, outputs) builds a Graph (the functional API's model, Keras's
        keras.Model(inputs, outputs)); every kind of model builds itself."""
        if cls is Model:
            from .graph import Graph
            cls = Graph
        return super().__new__(cls)

    def __init__(self, children):
        owner = type(self).__name__
        self.children = blocks.named_children(owner, children)
        named = list(blocks.named_layers(self.children))
        blocks.check_each_layer_once(owner, named)
        for path, layer in named:
            layer.index = path       # how errors name it: "layer features.3 Conv2d(...)"
        self.layers = [layer for _, layer in named]
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

    def describe(self, position):
        raise TypeError(f"a {type(self).__name__} cannot be saved inside another model: it "
                        f"describes itself only as a whole file (architecture())")

    @classmethod
    def rebuild(cls, spec, layers):
        raise ValueError(f"a {cls.__name__} is saved only as a whole file")

    def architecture(self):
        """The file's description of the model: its layers and its connections."""
        position = {id(layer): i for i, layer in enumerate(self.layers)}
        return {"format": self.FORMAT, "version": io.FORMAT_VERSION,
                "layers": self.layer_specs(), **self.describe(position)}

    @classmethod
    def from_architecture(cls, arch, layers):
        model = cls.rebuild(arch, layers)
        if [id(layer) for layer in model.layers] != [id(layer) for layer in layers]:
            raise ValueError("the connections do not use each of the file's layers once, in "
                             "the order of its list")
        return model

    def summary_rows(self, input_shape):
        raise NotImplementedError

    # ---- the children and their layers

    def __call__(self, *inputs, **kwargs):
        """forward(x); or, on symbolic tensors (fastcnn.model.Input), the graph node of
        this model applied to them, so that a model nests in a graph."""
        from .graph import is_symbolic, call
        if is_symbolic(inputs):
            return call(self, inputs, **kwargs)
        return self.forward(*inputs, **kwargs)

    def __getattr__(self, name):
        """A child by its name, as model.features in PyTorch."""
        children = self.__dict__.get("children")
        if children is not None and name in children:
            return children[name]
        raise AttributeError(f"{type(self).__name__} has no attribute or child {name!r}")

    def named_layers(self):
        """(name, layer) of every layer, in forward order: "0", "features.3", ..."""
        return blocks.named_layers(self.children)

    def forget(self):
        """Drop what every layer's last forward saved for backward."""
        for layer in self.layers:
            layer.forget()

    def parameters(self):
        """Parameter handles of every layer (frozen ones too: optimizers skip those until
        they are unfrozen), for an optimizer."""
        return [p for layer in self.layers for p in parameters(layer)]

    def num_params(self, trainable=None):
        """How many parameters; with trainable=True only those that train, with False only
        the frozen ones."""
        return sum(layer.num_params() for layer in self.layers
                   if trainable is None or layer.trainable == trainable)

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
        for model in self._models():
            model.device = device
        return self

    def _models(self):
        """This model and every model nested in it."""
        yield self
        for child in self.children.values():
            if isinstance(child, Model):
                yield from child._models()

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

    # ---- freezing and named weights (fastcnn.model.state)

    @property
    def trainable(self):
        """Whether any of its layers with parameters trains. Setting it freezes (False) or
        unfreezes (True) every layer."""
        return blocks.trains(self)

    @trainable.setter
    def trainable(self, value):
        for layer in self.layers:
            layer.trainable = bool(value)

    def freeze(self):
        """Stop training every layer: no gradients for their parameters (not even
        computed), optimizers skip them, BatchNorm uses its running statistics. Returns
        the model; model[:k].freeze() freezes the first k children of a Sequential."""
        self.trainable = False
        return self

    def unfreeze(self):
        self.trainable = True
        return self

    def state_dict(self):
        return state.state_dict(self)

    def load_state_dict(self, arrays, strict=True):
        return state.load_state_dict(self, arrays, strict)

    state_dict.__doc__ = state.state_dict.__doc__
    load_state_dict.__doc__ = state.load_state_dict.__doc__

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

    def save_safetensors(self, path, metadata=None):
        """state_dict() to a .safetensors file, under PyTorch's names: for PyTorch's
        load_state_dict(safetensors.torch.load_file(path)), or fastcnn.load_safetensors."""
        from .safetensors_io import save_safetensors
        save_safetensors(self, path, metadata)

    save.__doc__, load_weights.__doc__ = io.save.__doc__, io.load_weights.__doc__
    load.__func__.__doc__ = io.load.__doc__

    # ---- description

    def summary(self, input_shape=None):
        """A table of the children, their output shapes and parameter counts (a string);
        a graph's also says where each one's input comes from. input_shape: one example's
        shape, e.g. (1, 28, 28); by default the last one seen (a graph: its inputs')."""
        input_shape = tuple(input_shape or self.input_shape or ())
        rows = self.summary_rows(input_shape or None)
        with_inputs = any(len(row) == 5 for row in rows)
        table = [("#", "layer") + (("inputs",) if with_inputs else ()) +
                 ("output shape", "params")]
        for row in rows:
            label, description, *inputs, shape, count = row
            frozen = count and not blocks.trains(self.children.get(str(label), self))
            table.append((str(label), description) + (tuple(inputs) if with_inputs else ())
                         + ("?" if shape is None else _shape(shape),
                            f"{count:,}" + (" frozen" if frozen else "")))
        columns = len(table[0])
        widths = [max(len(r[c]) for r in table) for c in range(columns)]
        lines = ["  ".join(r[c].ljust(widths[c]) if c < columns - 1 else r[c].rjust(widths[c])
                           for c in range(columns)).rstrip() for r in table]
        rule = "-" * max(len(line) for line in lines)
        total = f"total parameters: {self.num_params():,}"
        if self.num_params(trainable=False):
            total += f" ({self.num_params(trainable=True):,} trainable)"
        if input_shape:
            total += f"   (input {_shape(input_shape)})"
        return "\n".join([lines[0], rule] + lines[1:] + [rule, total])

    def _output_shape(self, block, input_shape):
        """The output shape of block (this model or a child) for one zero example of
        input_shape, in eval mode (for a summary)."""
        with training.eval_mode(self):
            self.forget()
            y = block.forward(self._zeros_example(input_shape))
            self.forget()
        return tuple(y.shape[1:])

    def _zeros_example(self, input_shape):
        """One example of zeros shaped input_shape, where and as the model computes (for
        a summary's forward pass)."""
        where = backends.get("cuda" if self.device == "cuda" else "cpu")
        return where.zeros((1,) + tuple(input_shape), self._dtype() or np.float32)


def _shape(shape):
    """(N, 4, 8, 8): an output shape with its batch axis."""
    return str(("N",) + tuple(shape)).replace("'", "")
