"""Batch normalisation: BatchNorm1d and BatchNorm2d, over F.batch_norm."""

import numpy as np

from .. import _args, backends
from .. import functional as F
from .. import init
from .base import Layer, _new_param, _size, _without_defaults


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
        batch_stats = self.training and self.trainable   # frozen: the running statistics
        y, mean, invstd = self.reuse.keep(keys, F.batch_norm(
            x, self._affine("weight"), self._affine("bias"), self.buffers["running_mean"],
            self.buffers["running_var"], self.momentum, self.eps, batch_stats,
            out=self.reuse.out(keys, x)))
        self.saved.update(x=x, mean=mean, invstd=invstd, training=batch_stats)
        return y.reshape(shape)

    def _backward(self, dy, need_dx):
        x, saved = self.saved["x"], self.saved
        if not (need_dx or self.trainable):
            return None
        # Without affine, or frozen, the scale and shift gradients are computed and dropped.
        kept = self.params and self.trainable
        keys = ("dx",) if kept else ("dx", "dweight", "dbias")
        out = self.reuse.out(keys, x) + (tuple(self.grads.values()) if kept else ())
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
