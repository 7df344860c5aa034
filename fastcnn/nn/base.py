"""The base of every layer, and what layers with parameters share.

A layer holds state and nothing else: its parameters (``params``, shaped as in
PyTorch), their gradients (``grads``, same keys), running statistics
(``buffers``), what its forward pass saved for the backward pass (``saved``), and
a ``training`` flag. All arithmetic is a call to ``fastcnn.functional``, so a
layer whose arrays live on the GPU runs there without knowing it.

``forward(x)`` returns y; ``backward(dy)`` returns dx and writes the gradients
of this batch into ``grads`` (it overwrites them, it does not accumulate);
``backward(dy, need_dx=False)`` computes only the gradients and returns None (a
layer without parameters then does nothing at all).

Checks are functional's: a layer checks only what functional cannot know (that x is
an array and dy has the shape forward returned, the ranks a layer takes beyond its
op's, the input its constructor declared: Linear's in_features, Conv2d's
in_channels), and the constructor checks its arguments with the rules functional
applies to the same arguments (``fastcnn._args``). Every ValueError or TypeError
raised in a layer's forward or backward comes out prefixed with the layer's name, by
``Layer``.

A layer's results are written into arrays it reuses from step to step while no
one else holds them (``fastcnn.nn.reuse``).
"""

import inspect

import numpy as np

from .. import _args, backends
from .. import functional as F
from .. import init
from ..functional._checks import recording
from .plan import Plan
from .reuse import Reuse


class Layer:
    """The base of every layer: parameters, gradients, buffers, mode, and naming errors.

    Subclasses implement ``_forward(x)`` and ``_backward(dy, need_dx)``; the public
    ``forward`` and ``backward`` wrap them."""

    trainable = True     # False: frozen (freeze()); its parameters get no gradient

    def __init__(self, **config):
        self.params = {}
        self.grads = {}
        self.buffers = {}        # running statistics: saved with the model, not trained
        self.training = True
        self.index = None        # position in a Sequential, for error messages
        self.saved = {}          # what forward saved for backward; forget() empties it
        self.reuse = Reuse()     # the arrays results are written into, step after step
        self._config = config    # the constructor's arguments, to rebuild the layer
        self._out_shape = None   # the shape forward returned: dy's
        self._plan = None        # eval mode: the checked forward's call, replayed (nn.plan)
        self._replay = None      # the input of a planned forward, until a backward needs it

    # ---- what subclasses implement

    def _forward(self, x):
        raise NotImplementedError

    def _backward(self, dy, need_dx):
        raise NotImplementedError

    # ---- forward and backward

    def forward(self, x):
        """The layer's output for x (an array: a layer hands on arrays, and dy must have
        the shape of what it returned). In eval mode, an input like the last one takes
        the plan the last checked forward made (fastcnn.nn.plan)."""
        self.forget()
        plan = self._plan
        if not self.training and plan is not None and hasattr(x, "shape"):
            y = plan.run(self, x)
            if y is not None:
                self._replay, self._out_shape = x, plan.shape
                return y
        try:
            if not hasattr(x, "shape"):
                raise TypeError(f"forward: x must be an array, got {type(x).__name__}")
            if self.training:
                y = self._forward(x)
            else:
                with recording() as calls:
                    y = self._forward(x)
                self._plan = Plan.of(self, x, y, calls)
        except (ValueError, TypeError) as e:
            raise self._named(e) from e
        self._out_shape = tuple(y.shape)
        return y

    def backward(self, dy, need_dx=True):
        """dx for dy (the gradient of the loss with respect to forward's output), or None
        with need_dx=False; writes this batch's gradients into grads."""
        shape = self._out_shape
        if shape is None:
            raise RuntimeError(f"{self.name}: backward() needs a forward pass first")
        try:
            need_dx = _args.flag("backward", "need_dx", need_dx)
            if not hasattr(dy, "shape"):
                raise TypeError(f"backward: dy must be an array of the shape forward "
                                f"returned, {shape}, got {type(dy).__name__}")
            if tuple(dy.shape) != shape:
                raise ValueError(f"backward: dy must have the shape forward returned, "
                                 f"{shape}, got {tuple(dy.shape)}")
            if not need_dx and not self.params:
                return None
            if self._replay is not None:   # a planned forward saved nothing: the checked one
                x, self._replay = self._replay, None
                self._forward(x)
            dx = self._backward(dy, need_dx)
        except (ValueError, TypeError) as e:
            raise self._named(e) from e
        return dx if need_dx else None

    def forget(self):
        """Drop what the last forward saved for backward (Sequential calls it on every layer
        before a forward pass, so the arrays it referenced can be reused)."""
        self.saved.clear()
        self._out_shape = None
        self._replay = None

    # ---- common behaviour

    def __call__(self, *inputs, **kwargs):
        """forward(x); or, on symbolic tensors (fastcnn.model.Input), the graph node of
        this layer applied to them (name= names it)."""
        from ..model.graph import call, is_symbolic
        if is_symbolic(inputs):
            return call(self, inputs, **kwargs)
        return self.forward(*inputs, **kwargs)

    def freeze(self):
        """Stop training this layer: its parameters get no gradient (not even computed),
        optimizers skip them, a BatchNorm normalises with its running statistics."""
        self.trainable = False
        return self

    def unfreeze(self):
        self.trainable = True
        return self

    def train(self, mode=True):
        self.training = bool(mode)
        return self

    def eval(self):
        return self.train(False)

    def config(self):
        """The constructor's arguments: type(layer)(**layer.config()) builds the same layer."""
        return dict(self._config)

    def __repr__(self):
        """The constructor call: required arguments by position, the others by name."""
        required = [p.name for p in inspect.signature(type(self)).parameters.values()
                    if p.default is p.empty and p.kind == p.POSITIONAL_OR_KEYWORD]
        config = self.config()
        args = [repr(config[k]) for k in required if k in config]
        args += [f"{k}={v!r}" for k, v in config.items() if k not in required]
        return f"{type(self).__name__}({', '.join(args)})"

    @property
    def name(self):
        """How errors name this layer: its position in the model and its constructor call."""
        return repr(self) if self.index is None else f"layer {self.index} {self!r}"

    def num_params(self):
        return sum(int(np.prod(p.shape)) for p in self.params.values())

    def to(self, device):
        """Move parameters, gradients and buffers to "cpu" or "cuda"; reused arrays are
        dropped."""
        move = backends.mover(device)
        for d in (self.params, self.grads, self.buffers):
            for k in d:
                d[k] = move(d[k])
        self.reuse.clear()
        self._plan = None
        self.forget()
        return self

    # ---- naming errors (the one place a layer's name is added)

    def _named(self, error):
        """error's kind (ValueError or TypeError) with this layer's name before its message."""
        kind = ValueError if isinstance(error, ValueError) else TypeError
        return kind(f"{self.name}: {error}")

    def _expect(self, x, ndim, layout, axis1=None):
        """A clear error unless x is an ndim-D array (with axis1 channels/features): for the
        ranks and sizes that the layer, not its op, defines."""
        shape = tuple(x.shape)
        if len(shape) not in ((ndim,) if isinstance(ndim, int) else ndim):
            raise ValueError(f"expects input {layout}, got shape {shape}")
        if axis1 is not None and shape[1] != axis1:
            raise ValueError(f"expects {axis1} channels or features on axis 1 (input "
                             f"{layout}), got shape {shape}")


def _without_defaults(config, **defaults):
    """The arguments that differ from their defaults (for a short repr and saved config)."""
    missing = object()
    return {k: v for k, v in config.items() if defaults.get(k, missing) != v}


def _new_param(where, shape, dtype):
    try:   # (np.dtype(None) would be float64)
        known = dtype is not None and np.dtype(dtype) in F.FLOAT_DTYPES
    except TypeError:
        known = False
    if not known:
        raise TypeError(f"{where}: dtype must be float32 or float64, got {dtype!r}")
    _args.fits(where, "a parameter", shape, dtype)
    return np.zeros(shape, dtype)


def _size(where, name, value):
    return _args.integer(where, name, value, 1)


def _weight_and_bias(layer, where, shape, bias, dtype, rng, outputs=None):
    """A weight of shape (out, in, ...) and, if bias, a bias (outputs,: out unless given),
    initialised as PyTorch does (from rng; fan_in from shape[1:], also for a transposed
    convolution's (in, out/groups, ...) weight, as PyTorch), with zero gradients."""
    layer.params["weight"] = _new_param(where, shape, dtype)
    if _args.flag(where, "bias", bias):
        layer.params["bias"] = _new_param(where, (outputs or shape[0],), dtype)
    init.default_weight_and_bias_(layer.params["weight"], layer.params.get("bias"),
                                  init.generator(rng, where))
    layer.grads = {k: np.zeros_like(v) for k, v in layer.params.items()}
