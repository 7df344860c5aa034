"""Layers with an explicit forward and backward pass.

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
an array and dy has the shape forward returned, the ranks a layer takes beyond its op's, the input
its constructor declared: Linear's in_features, Conv2d's in_channels), and the
constructor checks its arguments with the rules functional applies to the same
arguments (``fastcnn._args``). Every ValueError or TypeError raised in a layer's
forward or backward comes out prefixed with the layer's name, by ``Layer``.

A layer's results are written into arrays it reuses from step to step while no
one else holds them (``fastcnn.nn.reuse``).
"""

import inspect

import numpy as np

from .. import _args, backends
from .. import functional as F
from .. import init
from .reuse import Reuse


class Layer:
    """The base of every layer: parameters, gradients, buffers, mode, and naming errors.

    Subclasses implement ``_forward(x)`` and ``_backward(dy, need_dx)``; the public
    ``forward`` and ``backward`` wrap them."""

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

    # ---- what subclasses implement

    def _forward(self, x):
        raise NotImplementedError

    def _backward(self, dy, need_dx):
        raise NotImplementedError

    # ---- forward and backward

    def forward(self, x):
        """The layer's output for x (an array: a layer hands on arrays, and dy must have
        the shape of what it returned)."""
        self.forget()
        try:
            if not hasattr(x, "shape"):
                raise TypeError(f"forward: x must be an array, got {type(x).__name__}")
            y = self._forward(x)
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
            dx = self._backward(dy, need_dx)
        except (ValueError, TypeError) as e:
            raise self._named(e) from e
        return dx if need_dx else None

    def forget(self):
        """Drop what the last forward saved for backward (Sequential calls it on every layer
        before a forward pass, so the arrays it referenced can be reused)."""
        self.saved.clear()
        self._out_shape = None

    # ---- common behaviour

    def __call__(self, x):
        return self.forward(x)

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


def _weight_and_bias(layer, where, shape, bias, dtype, rng):
    """A weight of shape (out, in, ...) and, if bias, a bias (out,), initialised as PyTorch
    does (from rng), with zero gradients."""
    layer.params["weight"] = _new_param(where, shape, dtype)
    if _args.flag(where, "bias", bias):
        layer.params["bias"] = _new_param(where, shape[:1], dtype)
    init.default_weight_and_bias_(layer.params["weight"], layer.params.get("bias"),
                                  init.generator(rng, where))
    layer.grads = {k: np.zeros_like(v) for k, v in layer.params.items()}


# ---------------------------------------------------------------- layers with weights


class Linear(Layer):
    """y = x weight^T + bias; weight (out_features, in_features)."""

    def __init__(self, in_features, out_features, bias=True, *, dtype=np.float32, rng=None):
        super().__init__(in_features=in_features, out_features=out_features, bias=bias)
        where = "Linear"
        self.in_features = _size(where, "in_features", in_features)
        self.out_features = _size(where, "out_features", out_features)
        _weight_and_bias(self, where, (self.out_features, self.in_features), bias, dtype, rng)

    def config(self):
        return _without_defaults(super().config(), bias=True)

    def _forward(self, x):
        self._expect(x, 2, f"(N, {self.in_features})", self.in_features)
        weight = self.params["weight"]
        y = F.linear(x, weight, self.params.get("bias"), out=self.reuse.out("y", x, weight))
        self.saved["x"] = x
        return self.reuse.keep("y", y)

    def _backward(self, dy, need_dx):
        x = self.saved["x"]
        dx, _, _ = F.linear_backward(
            dy, x, self.params["weight"], need_dx,
            out=(self.reuse.out("dx", x) if need_dx else None, self.grads["weight"],
                 self.grads.get("bias")))
        return self.reuse.keep("dx", dx)


class Conv2d(Layer):
    """2-D convolution (cross-correlation, as PyTorch); weight (out, in, kh, kw)."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 bias=True, *, dtype=np.float32, rng=None):
        super().__init__(in_channels=in_channels, out_channels=out_channels,
                         kernel_size=kernel_size, stride=stride, padding=padding,
                         dilation=dilation, bias=bias)
        where = "Conv2d"
        self.in_channels = _size(where, "in_channels", in_channels)
        self.out_channels = _size(where, "out_channels", out_channels)
        self.kernel_size = _args.arg(where, "kernel_size", kernel_size)
        self.stride, self.padding, self.dilation = _args.conv_window(where, stride, padding,
                                                                     dilation)
        _weight_and_bias(self, where, (self.out_channels, self.in_channels) + self.kernel_size,
                         bias, dtype, rng)

    def config(self):
        return _without_defaults(super().config(), stride=1, padding=0, dilation=1, bias=True)

    def _forward(self, x):
        self._expect(x, 4, f"(N, {self.in_channels}, H, W)", self.in_channels)
        weight = self.params["weight"]
        y = F.conv2d(x, weight, self.params.get("bias"), self.stride, self.padding,
                     self.dilation, out=self.reuse.out("y", x, weight))
        self.saved["x"] = x
        return self.reuse.keep("y", y)

    def _backward(self, dy, need_dx):
        x = self.saved["x"]
        dx, _, _ = F.conv2d_backward(
            dy, x, self.params["weight"], self.stride, self.padding, self.dilation, need_dx,
            out=(self.reuse.out("dx", x) if need_dx else None, self.grads["weight"],
                 self.grads.get("bias")))
        return self.reuse.keep("dx", dx)


class _BatchNorm(Layer):
    """Batch normalisation over axis 1, running statistics for eval; the subclasses say
    which ranks they take (beyond what F.batch_norm takes) and how they reach its 2-D or
    4-D layout."""

    layouts = {}   # rank -> layout, for the error message

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, *, dtype=np.float32):
        super().__init__(num_features=num_features, eps=eps, momentum=momentum, affine=affine)
        where = type(self).__name__
        self.num_features = _size(where, "num_features", num_features)
        self.eps = _args.arg(where, "eps", eps)
        self.momentum = _args.arg(where, "momentum", momentum)
        c = (self.num_features,)
        weight, bias = _new_param(where, c, dtype), _new_param(where, c, dtype)
        init.ones_(weight)
        if _args.flag(where, "affine", affine):
            self.params.update(weight=weight, bias=bias)
            self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        else:   # constant scale 1 and shift 0; their gradients are computed and dropped
            self._fixed = {"weight": weight, "bias": bias}
        self.buffers["running_mean"] = _new_param(where, c, dtype)
        self.buffers["running_var"] = init.ones_(_new_param(where, c, dtype))

    def config(self):
        return _without_defaults(super().config(), eps=1e-5, momentum=0.1, affine=True)

    def to(self, device):
        if hasattr(self, "_fixed"):
            self._fixed = {k: backends.mover(device)(v) for k, v in self._fixed.items()}
        return super().to(device)

    def _affine(self, name):
        return self.params[name] if name in self.params else self._fixed[name]

    def _as_op_layout(self, x):
        return x

    def _forward(self, x):
        layouts = {n: s.format(c=self.num_features) for n, s in self.layouts.items()}
        self._expect(x, tuple(layouts), " or ".join(layouts.values()))
        shape, x = tuple(x.shape), self._as_op_layout(x)
        keys = ("y", "mean", "invstd")
        y, mean, invstd = self.reuse.keep(keys, F.batch_norm(
            x, self._affine("weight"), self._affine("bias"), self.buffers["running_mean"],
            self.buffers["running_var"], self.momentum, self.eps, self.training,
            out=self.reuse.out(keys, x)))
        self.saved.update(x=x, mean=mean, invstd=invstd, training=self.training)
        return y.reshape(shape)

    def _backward(self, dy, need_dx):
        x, saved = self.saved["x"], self.saved
        # Without affine, the scale and shift gradients are computed and dropped.
        keys = ("dx",) if self.params else ("dx", "dweight", "dbias")
        out = self.reuse.out(keys, x) + tuple(self.grads.values())
        results = F.batch_norm_backward(dy.reshape(x.shape), x, self._affine("weight"),
                                        saved["mean"], saved["invstd"], saved["training"],
                                        out=out)
        return self.reuse.keep(keys, results)[0].reshape(dy.shape)


class BatchNorm2d(_BatchNorm):
    """Batch normalisation over the channels of (N, C, H, W); running statistics for eval."""

    layouts = {4: "(N, {c}, H, W)"}


class BatchNorm1d(_BatchNorm):
    """Batch normalisation over the features of (N, C) or the channels of (N, C, L)."""

    layouts = {2: "(N, {c})", 3: "(N, {c}, L)"}

    def _as_op_layout(self, x):
        return x.reshape(x.shape + (1,)) if x.ndim == 3 else x


# ---------------------------------------------------------------- pooling and reshaping


class _Pool2d(Layer):
    """A pooling window (stride defaults to kernel_size), checked when the layer is built."""

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__(kernel_size=kernel_size, stride=stride, padding=padding)
        self.kernel_size, self.stride, self.padding, _ = _args.pool_window(
            type(self).__name__, kernel_size, stride, padding)

    def config(self):
        return _without_defaults(super().config(), stride=None, padding=0)


class MaxPool2d(_Pool2d):
    """Max over each kernel_size window (stride defaults to kernel_size)."""

    def _forward(self, x):
        keys = ("y", "indices")
        y, indices = self.reuse.keep(keys, F.max_pool2d(
            x, self.kernel_size, self.stride, self.padding, out=self.reuse.out(keys, x)))
        self.saved.update(indices=indices, input_shape=tuple(x.shape))
        return y

    def _backward(self, dy, need_dx):
        shape = self.saved["input_shape"]
        return self.reuse.keep("dx", F.max_pool2d_backward(
            dy, self.saved["indices"], shape, out=self.reuse.out("dx", dy, shape)))


class AvgPool2d(_Pool2d):
    """Mean over each kernel_size window; padded zeros count in the divisor."""

    def _forward(self, x):
        y = F.avg_pool2d(x, self.kernel_size, self.stride, self.padding,
                         out=self.reuse.out("y", x))
        self.saved["input_shape"] = tuple(x.shape)
        return self.reuse.keep("y", y)

    def _backward(self, dy, need_dx):
        shape = self.saved["input_shape"]
        return self.reuse.keep("dx", F.avg_pool2d_backward(
            dy, shape, self.kernel_size, self.stride, self.padding,
            out=self.reuse.out("dx", dy, shape)))


class Upsample(Layer):
    """Nearest-neighbour upsampling by an integer scale_factor (or an (h, w) pair)."""

    def __init__(self, scale_factor, mode="nearest"):
        if mode != "nearest":
            raise ValueError(f"Upsample: only mode='nearest' is implemented, got {mode!r}")
        super().__init__(scale_factor=scale_factor)
        self.scale_factor = _args.pair("Upsample", "scale_factor", scale_factor, 1)

    def _forward(self, x):
        return self.reuse.keep("y", F.upsample_nearest2d(x, self.scale_factor,
                                                         out=self.reuse.out("y", x)))

    def _backward(self, dy, need_dx):
        return self.reuse.keep("dx", F.upsample_nearest2d_backward(
            dy, self.scale_factor, out=self.reuse.out("dx", dy)))


class Flatten(Layer):
    """(N, ...) -> (N, prod(...)): a view, no copy."""

    def __init__(self):
        super().__init__()

    def _forward(self, x):
        self._expect(x, tuple(range(2, 33)), "(N, ...)")
        self.saved["input_shape"] = tuple(x.shape)
        return x.reshape(x.shape[0], -1)

    def _backward(self, dy, need_dx):
        return dy.reshape(self.saved["input_shape"])


# ---------------------------------------------------------------- activations


class _Activation(Layer):
    """An elementwise op whose backward needs x or y (`saves`); a subclass whose op takes
    arguments passes them to _takes."""

    op = None
    saves = "y"

    def __init__(self):
        super().__init__()
        self._op_args = ()

    def _takes(self, **op_args):
        """The op's extra arguments, checked by functional's rules, for the op and config."""
        self._config = op_args
        self._op_args = tuple(_args.arg(type(self).__name__, k, v) for k, v in op_args.items())

    def _forward(self, x):
        y = getattr(F, self.op)(x, *self._op_args, out=self.reuse.out("y", x))
        y = self.reuse.keep("y", y)
        self.saved["kept"] = y if self.saves == "y" else x
        return y

    def _backward(self, dy, need_dx):
        kept = self.saved["kept"]
        return self.reuse.keep("dx", getattr(F, self.op + "_backward")(
            dy, kept, *self._op_args, out=self.reuse.out("dx", dy, kept)))


class ReLU(_Activation):
    op = "relu"


class LeakyReLU(_Activation):
    op, saves = "leaky_relu", "x"

    def __init__(self, negative_slope=0.01):
        super().__init__()
        self._takes(negative_slope=negative_slope)


class ELU(_Activation):
    op = "elu"

    def __init__(self, alpha=1.0):
        super().__init__()
        self._takes(alpha=alpha)


class Sigmoid(_Activation):
    op = "sigmoid"


class Tanh(_Activation):
    op = "tanh"


class Softmax(_Activation):
    """Softmax over the classes of (N, C) scores (PyTorch's dim=1)."""

    op = "softmax"


class Maxout(Layer):
    """Max over consecutive groups of pool_size features (axis 1): C -> C / pool_size."""

    def __init__(self, pool_size):
        super().__init__(pool_size=pool_size)
        self.pool_size = _args.arg("Maxout", "pool_size", pool_size)

    def _forward(self, x):
        keys = ("y", "indices")
        y, self.saved["indices"] = self.reuse.keep(keys, F.maxout(
            x, self.pool_size, out=self.reuse.out(keys, x)))
        return y

    def _backward(self, dy, need_dx):
        return self.reuse.keep("dx", F.maxout_backward(
            dy, self.saved["indices"], self.pool_size, out=self.reuse.out("dx", dy)))


class Dropout(Layer):
    """Inverted dropout in training (zero a share p, scale the rest by 1/(1-p)); identity in
    eval. Every forward pass draws a new mask from the layer's seed and a step counter."""

    def __init__(self, p=0.5, *, rng=None):
        super().__init__(p=p)
        self.p = _args.arg("Dropout", "p", p)
        self.seed = int(init.generator(rng, "Dropout").integers(0, 2**32))
        self.steps = 0

    def _forward(self, x):
        if not self.training or self.p == 0:
            return x
        seed = (self.seed + self.steps * 0x9E3779B9) & 0xFFFFFFFF   # a new mask every step
        self.steps += 1
        keys = ("y", "mask")
        y, self.saved["mask"] = self.reuse.keep(keys, F.dropout(
            x, self.p, seed, out=self.reuse.out(keys, x)))
        return y

    def _backward(self, dy, need_dx):
        if "mask" not in self.saved:
            return dy
        return self.reuse.keep("dx", F.dropout_backward(
            dy, self.saved["mask"], out=self.reuse.out("dx", dy)))


LAYERS = {cls.__name__: cls for cls in (
    Linear, Conv2d, BatchNorm1d, BatchNorm2d, MaxPool2d, AvgPool2d, Upsample, Flatten, ReLU,
    LeakyReLU, ELU, Sigmoid, Tanh, Softmax, Maxout, Dropout)}

__all__ = ["Layer", "LAYERS"] + list(LAYERS)
