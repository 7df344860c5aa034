"""Layers with an explicit forward and backward pass.

A layer holds state and nothing else: its parameters (``params``, shaped as in
PyTorch), their gradients (``grads``, same keys), running statistics
(``buffers``), what its forward pass saved for the backward pass, and a
``training`` flag. All arithmetic is a call to ``fastcnn.functional``, so a
layer whose arrays live on the GPU runs there without knowing it.

``forward(x)`` returns y; ``backward(dy)`` returns dx and writes the gradients
of this batch into ``grads`` (it overwrites them, it does not accumulate).

Buffers are reused: a layer writes its output (and its dx) into the array it
returned last time, unless someone else still holds that array (a user keeping
a prediction, a view of it), in which case it allocates a fresh one. So a
training loop allocates its activations once, and nothing a caller kept is
ever overwritten behind its back.
"""

import inspect
import sys

import numpy as np

from .. import backends
from .. import functional as F
from .. import init


def _refs_when_unheld():
    """What sys.getrefcount reports, on Layer._buffer's code path, for an array held only by
    the scratch dict (interpreters differ in what they count, so measure it)."""
    scratch = {"y": object()}
    buf = scratch.get("y")
    return sys.getrefcount(buf)


_UNHELD = _refs_when_unheld()


def _memory(buf):
    """What views of buf keep alive besides buf: nothing more for NumPy arrays (a view's
    base is buf itself); the device memory for Numba's device arrays, whose views share
    it rather than referring to the array (gpu_data on a GPU, _ary on the simulator)."""
    for name in ("gpu_data", "_ary"):
        memory = getattr(buf, name, None)
        if memory is not None:
            return memory
    return None


def _memory_refs(buf):
    """sys.getrefcount of buf's device memory (0 for NumPy arrays), on one code path, so a
    count taken when the buffer was made compares with one taken later."""
    memory = _memory(buf)
    return 0 if memory is None else sys.getrefcount(memory)


def _pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


class Layer:
    """The base of every layer: parameters, gradients, buffers, mode, and buffer reuse."""

    trainable = True     # False: frozen (freeze()); its parameters get no gradient

    def __init__(self, **config):
        self.params = {}
        self.grads = {}
        self.buffers = {}        # running statistics: saved with the model, not trained
        self.training = True
        self.index = None        # position in a Sequential, for error messages
        self._config = config    # the constructor's arguments, to rebuild the layer
        self._scratch = {}       # output and dx arrays reused from step to step
        self._unheld = {}        # their device memory's reference count when unshared

    # ---- what subclasses implement

    def forward(self, x):
        raise NotImplementedError

    def backward(self, dy, need_dx=True):
        raise NotImplementedError

    def forget(self):
        """Drop what the last forward saved for backward (Sequential calls it on every layer
        before a forward pass, so the buffers it referenced can be reused)."""

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
        """Move parameters, gradients and buffers to "cpu" or "cuda"; scratch is dropped."""
        move = backends.mover(device)
        for d in (self.params, self.grads, self.buffers):
            for k in d:
                d[k] = move(d[k])
        self._scratch.clear()
        self.forget()
        return self

    def _error(self, message):
        return ValueError(f"{self.name}: {message}")

    def _expect(self, x, ndim, layout, axis1=None):
        """A clear error unless x is an ndim-D array (with axis1 channels/features)."""
        shape = tuple(getattr(x, "shape", ()))
        if not hasattr(x, "shape"):
            raise TypeError(f"{self.name}: expects an array {layout}, got {type(x).__name__}")
        if isinstance(ndim, int):
            ndim = (ndim,)
        if len(shape) not in ndim:
            raise self._error(f"expects input {layout}, got shape {shape}")
        if axis1 is not None and shape[1] != axis1:
            raise self._error(f"expects {axis1} channels or features on axis 1 (input "
                              f"{layout}), got shape {shape}")

    def _buffer(self, key, shape, dtype, like):
        """An array of shape and dtype where `like` lives: last step's, when nobody else
        holds it, else a new one. None when the shape is not valid (the op explains why)."""
        shape = tuple(int(s) for s in shape)
        if any(s < 1 for s in shape):
            return None
        buf = self._scratch.get(key)
        if (buf is not None and tuple(buf.shape) == shape and buf.dtype == dtype
                and backends.on_gpu(buf) == backends.on_gpu(like)
                and sys.getrefcount(buf) <= _UNHELD
                and _memory_refs(buf) <= self._unheld[key]):
            return buf
        del buf
        where = "cuda" if backends.on_gpu(like) else "cpu"
        self._scratch[key] = backends.get(where).empty(shape, dtype)
        self._unheld[key] = _memory_refs(self._scratch[key])
        return self._scratch[key]

    def _saved(self, value, what="forward"):
        if value is None:
            raise RuntimeError(f"{self.name}: backward() needs a {what} pass first")
        return value


def _without_defaults(config, **defaults):
    """The arguments that differ from their defaults (for a short repr and saved config)."""
    missing = object()
    return {k: v for k, v in config.items() if defaults.get(k, missing) != v}


def _new_param(shape, dtype):
    dtype = np.dtype(dtype)
    if dtype not in F.FLOAT_DTYPES:
        raise TypeError(f"dtype must be float32 or float64, got {dtype}")
    return np.zeros(shape, dtype)


# ---------------------------------------------------------------- layers with weights


class Linear(Layer):
    """y = x weight^T + bias; weight (out_features, in_features)."""

    def __init__(self, in_features, out_features, bias=True, *, dtype=np.float32, rng=None):
        super().__init__(in_features=in_features, out_features=out_features, bias=bias)
        self.in_features, self.out_features = in_features, out_features
        self.params["weight"] = _new_param((out_features, in_features), dtype)
        if bias:
            self.params["bias"] = _new_param((out_features,), dtype)
        init.default_weight_and_bias_(self.params["weight"], self.params.get("bias"), rng)
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        self._x = None

    def config(self):
        return _without_defaults(super().config(), bias=True)

    def forget(self):
        self._x = None

    def forward(self, x):
        self.forget()
        self._expect(x, 2, f"(N, {self.in_features})", self.in_features)
        y = self._buffer("y", (x.shape[0], self.out_features), x.dtype, x)
        y = F.linear(x, self.params["weight"], self.params.get("bias"), out=y)
        self._x = x
        return y

    def backward(self, dy, need_dx=True):
        x = self._saved(self._x)
        if not (need_dx or self.trainable):
            return None
        dx = self._buffer("dx", x.shape, x.dtype, x)
        grads = (self.grads["weight"], self.grads.get("bias")) if self.trainable else (None,) * 2
        dx, _, _ = F.linear_backward(dy, x, self.params["weight"], need_dweight=self.trainable,
                                     out=(dx,) + grads)
        return dx if need_dx else None


class Conv2d(Layer):
    """2-D convolution (cross-correlation, as PyTorch); weight (out, in, kh, kw)."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 bias=True, *, dtype=np.float32, rng=None):
        super().__init__(in_channels=in_channels, out_channels=out_channels,
                         kernel_size=kernel_size, stride=stride, padding=padding,
                         dilation=dilation, bias=bias)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride = _pair(kernel_size), _pair(stride)
        self.padding, self.dilation = _pair(padding), _pair(dilation)
        self.params["weight"] = _new_param((out_channels, in_channels) + self.kernel_size, dtype)
        if bias:
            self.params["bias"] = _new_param((out_channels,), dtype)
        init.default_weight_and_bias_(self.params["weight"], self.params.get("bias"), rng)
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        self._x = None

    def config(self):
        return _without_defaults(super().config(), stride=1, padding=0, dilation=1, bias=True)

    def forget(self):
        self._x = None

    def output_hw(self, h, w):
        return tuple(backends.output_size(size, k, s, (p, p), d) for size, k, s, p, d in zip(
            (h, w), self.kernel_size, self.stride, self.padding, self.dilation))

    def forward(self, x):
        self.forget()
        self._expect(x, 4, f"(N, {self.in_channels}, H, W)", self.in_channels)
        shape = (x.shape[0], self.out_channels) + self.output_hw(*x.shape[2:])
        y = F.conv2d(x, self.params["weight"], self.params.get("bias"), self.stride,
                     self.padding, self.dilation, out=self._buffer("y", shape, x.dtype, x))
        self._x = x
        return y

    def backward(self, dy, need_dx=True):
        x = self._saved(self._x)
        dx = self._buffer("dx", x.shape, x.dtype, x) if need_dx else None
        grads = (self.grads["weight"], self.grads.get("bias")) if self.trainable else (None,) * 2
        dx, _, dbias = F.conv2d_backward(
            dy, x, self.params["weight"], self.stride, self.padding, self.dilation, need_dx,
            need_dweight=self.trainable, out=(dx,) + grads)
        return dx


class BatchNorm2d(Layer):
    """Batch normalisation over the channels of (N, C, H, W); running statistics for eval."""

    _layouts = {4: "(N, {c}, H, W)"}

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, *, dtype=np.float32):
        super().__init__(num_features=num_features, eps=eps, momentum=momentum, affine=affine)
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        weight, bias = _new_param(num_features, dtype), _new_param(num_features, dtype)
        init.ones_(weight)
        if affine:
            self.params.update(weight=weight, bias=bias)
            self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        else:   # constant scale 1 and shift 0; their gradients are computed and dropped
            self._fixed = {"weight": weight, "bias": bias}
        self.buffers["running_mean"] = _new_param(num_features, dtype)
        self.buffers["running_var"] = init.ones_(_new_param(num_features, dtype))
        self._saved_for_backward = None

    def config(self):
        return _without_defaults(super().config(), eps=1e-5, momentum=0.1, affine=True)

    def to(self, device):
        if hasattr(self, "_fixed"):
            self._fixed = {k: backends.mover(device)(v) for k, v in self._fixed.items()}
        return super().to(device)

    def _affine(self, name):
        return self.params[name] if name in self.params else self._fixed[name]

    def forget(self):
        self._saved_for_backward = None

    def _as_4d(self, x):
        return x

    def forward(self, x):
        self.forget()
        c = self.num_features
        layouts = {n: s.format(c=c) for n, s in self._layouts.items()}
        self._expect(x, tuple(layouts), " or ".join(layouts.values()), c)
        shape, x = x.shape, self._as_4d(x)
        vec = (c,)
        out = (self._buffer("y", x.shape, x.dtype, x), self._buffer("mean", vec, x.dtype, x),
               self._buffer("invstd", vec, x.dtype, x))
        batch_stats = self.training and self.trainable   # frozen: the running statistics
        y, mean, invstd = F.batch_norm(
            x, self._affine("weight"), self._affine("bias"), self.buffers["running_mean"],
            self.buffers["running_var"], self.momentum, self.eps, batch_stats, out=out)
        self._saved_for_backward = (x, mean, invstd, batch_stats)
        return y.reshape(shape)

    def backward(self, dy, need_dx=True):
        x, mean, invstd, training = self._saved(self._saved_for_backward)
        if not (need_dx or self.trainable):
            return None
        grads = self.grads if self.params and self.trainable else {
            k: self._buffer("d" + k, v.shape, v.dtype, v)        # computed and dropped
            for k, v in (self.params or self._fixed).items()}
        dx, _, _ = F.batch_norm_backward(
            dy.reshape(x.shape), x, self._affine("weight"), mean, invstd, training,
            out=(self._buffer("dx", x.shape, x.dtype, x), grads["weight"], grads["bias"]))
        return dx.reshape(dy.shape)


class BatchNorm1d(BatchNorm2d):
    """Batch normalisation over the features of (N, C) or the channels of (N, C, L)."""

    _layouts = {2: "(N, {c})", 3: "(N, {c}, L)"}

    def _as_4d(self, x):
        return x.reshape(x.shape + (1,)) if x.ndim == 3 else x


# ---------------------------------------------------------------- pooling and reshaping


class MaxPool2d(Layer):
    """Max over each kernel_size window (stride defaults to kernel_size)."""

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__(kernel_size=kernel_size, stride=stride, padding=padding)
        self.kernel_size, self.padding = _pair(kernel_size), _pair(padding)
        self.stride = self.kernel_size if stride is None else _pair(stride)
        self._saved_for_backward = None

    def config(self):
        return _without_defaults(super().config(), stride=None, padding=0)

    def forget(self):
        self._saved_for_backward = None

    def _y_shape(self, x):
        return tuple(x.shape[:2]) + tuple(backends.output_size(size, k, s, (p, p)) for size, k, s, p
                                          in zip(x.shape[2:], self.kernel_size, self.stride,
                                                 self.padding))

    def forward(self, x):
        self.forget()
        self._expect(x, 4, "(N, C, H, W)")
        shape = self._y_shape(x)
        out = (self._buffer("y", shape, x.dtype, x), self._buffer("idx", shape, np.int32, x))
        y, idx = F.max_pool2d(x, self.kernel_size, self.stride, self.padding, out=out)
        self._saved_for_backward = (idx, tuple(x.shape), x.dtype)
        return y

    def backward(self, dy, need_dx=True):
        idx, shape, dtype = self._saved(self._saved_for_backward)
        return F.max_pool2d_backward(dy, idx, shape, out=self._buffer("dx", shape, dtype, dy))


class AvgPool2d(MaxPool2d):
    """Mean over each kernel_size window; padded zeros count in the divisor."""

    def forward(self, x):
        self.forget()
        self._expect(x, 4, "(N, C, H, W)")
        y = F.avg_pool2d(x, self.kernel_size, self.stride, self.padding,
                         out=self._buffer("y", self._y_shape(x), x.dtype, x))
        self._saved_for_backward = (tuple(x.shape), x.dtype)
        return y

    def backward(self, dy, need_dx=True):
        shape, dtype = self._saved(self._saved_for_backward)
        return F.avg_pool2d_backward(dy, shape, self.kernel_size, self.stride, self.padding,
                                     out=self._buffer("dx", shape, dtype, dy))


class Upsample(Layer):
    """Nearest-neighbour upsampling by an integer scale_factor (or an (h, w) pair)."""

    def __init__(self, scale_factor, mode="nearest"):
        if mode != "nearest":
            raise ValueError(f"Upsample: only mode='nearest' is implemented, got {mode!r}")
        super().__init__(scale_factor=scale_factor)
        self.scale_factor = _pair(scale_factor)

    def forward(self, x):
        self._expect(x, 4, "(N, C, H, W)")
        (sh, sw), (n, c, h, w) = self.scale_factor, x.shape
        return F.upsample_nearest2d(x, self.scale_factor,
                                    out=self._buffer("y", (n, c, h * sh, w * sw), x.dtype, x))

    def backward(self, dy, need_dx=True):
        (sh, sw), (n, c, h, w) = self.scale_factor, dy.shape
        return F.upsample_nearest2d_backward(
            dy, self.scale_factor, out=self._buffer("dx", (n, c, h // sh, w // sw), dy.dtype, dy))


class Flatten(Layer):
    """(N, ...) -> (N, prod(...)): a view, no copy."""

    def __init__(self):
        super().__init__()
        self._shape = None

    def forget(self):
        self._shape = None

    def forward(self, x):
        self._expect(x, tuple(range(2, 33)), "(N, ...)")
        self._shape = tuple(x.shape)
        return x.reshape(x.shape[0], -1)

    def backward(self, dy, need_dx=True):
        return dy.reshape(self._saved(self._shape))


# ---------------------------------------------------------------- activations


class _Activation(Layer):
    """An elementwise op whose backward needs x or y (`saves`), with extra arguments."""

    op = None
    saves = "y"

    def __init__(self, **config):
        super().__init__(**config)
        self._kept = None

    def _args(self):
        return tuple(self._config.values())

    def forget(self):
        self._kept = None

    def forward(self, x):
        self.forget()
        self._check(x)
        y = getattr(F, self.op)(x, *self._args(),
                                out=self._buffer("y", x.shape, x.dtype, x))
        self._kept = y if self.saves == "y" else x
        return y

    def _check(self, x):
        self._expect(x, tuple(range(1, 33)), "(N, ...)")

    def backward(self, dy, need_dx=True):
        kept = self._saved(self._kept)
        return getattr(F, self.op + "_backward")(
            dy, kept, *self._args(), out=self._buffer("dx", kept.shape, kept.dtype, kept))


class ReLU(_Activation):
    op = "relu"


class LeakyReLU(_Activation):
    op, saves = "leaky_relu", "x"

    def __init__(self, negative_slope=0.01):
        super().__init__(negative_slope=negative_slope)


class ELU(_Activation):
    op = "elu"

    def __init__(self, alpha=1.0):
        super().__init__(alpha=alpha)


class Sigmoid(_Activation):
    op = "sigmoid"


class Tanh(_Activation):
    op = "tanh"


class Softmax(_Activation):
    """Softmax over the classes of (N, C) scores (PyTorch's dim=1)."""

    op = "softmax"

    def _check(self, x):
        self._expect(x, 2, "(N, C)")


class Maxout(Layer):
    """Max over consecutive groups of pool_size features (axis 1): C -> C / pool_size."""

    def __init__(self, pool_size):
        super().__init__(pool_size=pool_size)
        self.pool_size = pool_size
        self._idx = None

    def forget(self):
        self._idx = None

    def forward(self, x):
        self.forget()
        self._expect(x, tuple(range(2, 33)), f"(N, C, ...) with C a multiple of {self.pool_size}")
        if x.shape[1] % self.pool_size:
            raise self._error(f"axis 1 of the input ({x.shape[1]}) must be a multiple of "
                              f"pool_size={self.pool_size}, got shape {tuple(x.shape)}")
        shape = (x.shape[0], x.shape[1] // self.pool_size) + tuple(x.shape[2:])
        y, self._idx = F.maxout(x, self.pool_size, out=(
            self._buffer("y", shape, x.dtype, x), self._buffer("idx", shape, np.int32, x)))
        return y

    def backward(self, dy, need_dx=True):
        idx = self._saved(self._idx)
        shape = (dy.shape[0], dy.shape[1] * self.pool_size) + tuple(dy.shape[2:])
        return F.maxout_backward(dy, idx, self.pool_size,
                                 out=self._buffer("dx", shape, dy.dtype, dy))


class Dropout(Layer):
    """Inverted dropout in training (zero a share p, scale the rest by 1/(1-p)); identity in
    eval. Every forward pass draws a new mask from the layer's seed and a step counter."""

    def __init__(self, p=0.5, *, rng=None):
        super().__init__(p=p)
        if not 0 <= p < 1:
            raise ValueError(f"Dropout: p must be in [0, 1), got {p}")
        self.p = p
        self.seed = int(init.generator(rng).integers(0, 2**32))
        self.steps = 0
        self._mask = None

    def forget(self):
        self._mask = None

    def forward(self, x):
        self.forget()
        if not self.training or self.p == 0:
            return x
        seed = (self.seed + self.steps * 0x9E3779B9) & 0xFFFFFFFF   # a new mask every step
        self.steps += 1
        y, self._mask = F.dropout(x, self.p, seed, out=(
            self._buffer("y", x.shape, x.dtype, x), self._buffer("mask", x.shape, x.dtype, x)))
        return y

    def backward(self, dy, need_dx=True):
        if self._mask is None:
            return dy
        return F.dropout_backward(dy, self._mask,
                                  out=self._buffer("dx", dy.shape, dy.dtype, dy))


LAYERS = {cls.__name__: cls for cls in (
    Linear, Conv2d, BatchNorm1d, BatchNorm2d, MaxPool2d, AvgPool2d, Upsample, Flatten, ReLU,
    LeakyReLU, ELU, Sigmoid, Tanh, Softmax, Maxout, Dropout)}

__all__ = ["Layer", "LAYERS"] + list(LAYERS)
