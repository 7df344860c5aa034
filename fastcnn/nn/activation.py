"""Activations (elementwise, and softmax over an axis), Maxout and Dropout."""

from .. import _args
from .. import functional as F
from .. import init
from .base import Layer, _without_defaults


class _Activation(Layer):
    """An op of one array, of the same shape, whose backward needs x or y (`saves`); a
    subclass whose op takes arguments passes them to _takes."""

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
    """Softmax over axis dim (by default 1, the classes of (N, C) scores: PyTorch's
    dim=None picks an axis by the input's rank, which is not done here)."""

    op = "softmax"

    def __init__(self, dim=1):
        super().__init__()
        self._takes(dim=dim)

    def config(self):
        return _without_defaults(super().config(), dim=1)


class LogSoftmax(_Activation):
    """log(softmax(x)) over axis dim (by default 1), finite where softmax underflows."""

    op = "log_softmax"

    def __init__(self, dim=1):
        super().__init__()
        self._takes(dim=dim)

    def config(self):
        return _without_defaults(super().config(), dim=1)


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
