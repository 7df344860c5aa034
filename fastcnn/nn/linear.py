"""Linear: y = x weight^T + bias."""

import numpy as np

from .. import functional as F
from .base import Layer, _size, _weight_and_bias, _without_defaults


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
        if not (need_dx or self.trainable):
            return None
        grads = (self.grads["weight"], self.grads.get("bias")) if self.trainable else (None,) * 2
        dx, _, _ = F.linear_backward(
            dy, x, self.params["weight"], need_dx, need_dweight=self.trainable,
            out=(self.reuse.out("dx", x) if need_dx else None,) + grads)
        return self.reuse.keep("dx", dx)
