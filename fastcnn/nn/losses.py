"""Losses: ``forward(pred, target)`` -> the mean over the batch as a float (PyTorch's
reduction='mean'), ``backward()`` -> d(loss)/d(pred).

Targets given as NumPy arrays follow the predictions: they are cast to their
float dtype (regression targets) and copied to the GPU when the predictions
live there, so a training loop can pass host labels to a model on the GPU.
"""

import numpy as np

from .. import backends
from .. import functional as F
from .layers import Layer


class Loss(Layer):
    """A layer that ends the network: it takes a target and has no dy to receive."""

    def __init__(self, **config):
        super().__init__(**config)
        self._saved_for_backward = None

    def __call__(self, pred, target):
        return self.forward(pred, target)

    def forget(self):
        self._saved_for_backward = None

    def correct(self, pred, target, into=None):
        """How many predictions are right (classification losses), else None; into: a
        one-element int64 array where pred lives to add the count to (and return) instead,
        so that counting on the GPU needs no copy to the host."""
        return None

    cast_target = True

    def prepare_target(self, pred, target):
        """target as an array on pred's device (a host target is cast to pred's dtype first,
        unless it holds class labels)."""
        if backends.on_gpu(target):
            return target
        target = np.asarray(target)
        if self.cast_target and target.dtype != pred.dtype:
            target = target.astype(pred.dtype)
        return backends.to_device(target) if backends.on_gpu(pred) else target

    def _pred(self, pred, layout, ndim=None):
        if not hasattr(pred, "shape"):
            raise TypeError(f"{self.name}: predictions must be an array {layout}, "
                            f"got {type(pred).__name__}")
        if ndim is not None and len(pred.shape) != ndim:
            raise self._error(f"predictions must be {layout}, got shape {tuple(pred.shape)}")


class SoftmaxCrossEntropy(Loss):
    """Softmax of the logits (N, C) and cross-entropy with integer labels (N,), fused:
    stable for any logits, and its gradient is simply (softmax - onehot) / N."""

    cast_target = False

    def forward(self, logits, labels):
        self.forget()
        self._pred(logits, "(N, C) logits", 2)
        shape = tuple(getattr(labels, "shape", np.shape(labels)))
        # np.asarray only where the dtype is not a NumPy one: on a GPU array it would copy.
        kind = getattr(getattr(labels, "dtype", None), "kind", None)
        if kind is None:
            kind = np.asarray(labels).dtype.kind
        if shape != (logits.shape[0],) or kind not in "iu":
            hint = (" (one-hot targets? pass their argmax along axis 1)"
                    if shape == tuple(logits.shape) else "")
            what = getattr(labels, "dtype", type(labels).__name__)
            raise self._error(f"labels must be integer class indices of shape (N,) = "
                              f"({logits.shape[0]},) for logits of shape "
                              f"{tuple(logits.shape)}, got {what} of shape {shape}{hint}")
        labels = self.prepare_target(logits, labels)
        loss, probs = F.softmax_cross_entropy(
            logits, labels, out=self._buffer("probs", logits.shape, logits.dtype, logits))
        self._saved_for_backward = (probs, labels)
        return loss

    def backward(self):
        probs, labels = self._saved(self._saved_for_backward)
        return F.softmax_cross_entropy_backward(
            probs, labels, out=self._buffer("dx", probs.shape, probs.dtype, probs))

    def correct(self, logits, labels, into=None):
        return F.count_correct(logits, self.prepare_target(logits, labels), into=into)

    def prepare_target(self, pred, target):
        """Host labels go to the GPU as int32, the type the kernels read (so they need no
        conversion there, and half the bytes move), when they fit it."""
        if backends.on_gpu(pred) and not backends.on_gpu(target):
            target = np.asarray(target)
            if (target.dtype != np.int32 and target.dtype.kind in "iu" and target.size
                    and -2**31 <= target.min() and target.max() < 2**31):
                target = target.astype(np.int32)
        return super().prepare_target(pred, target)


class _Elementwise(Loss):
    """A loss comparing predictions with targets of the same shape."""

    op = None
    pred_name = "predictions"

    def forward(self, pred, target):
        self.forget()
        self._pred(pred, f"{self.pred_name} (N, ...)")
        shape = tuple(getattr(target, "shape", np.shape(target)))
        if shape != tuple(pred.shape):
            raise self._error(f"targets must have the shape of the {self.pred_name} "
                              f"{tuple(pred.shape)}, got {shape}")
        target = self.prepare_target(pred, target)
        self._saved_for_backward = (pred, target)
        return getattr(F, self.op)(pred, target)

    def backward(self):
        pred, target = self._saved(self._saved_for_backward)
        return getattr(F, self.op + "_backward")(
            pred, target, out=self._buffer("dx", pred.shape, pred.dtype, pred))


class BCEWithLogits(_Elementwise):
    """Binary cross-entropy of sigmoid(logits) against targets in [0, 1], fused and stable."""

    op, pred_name = "bce_with_logits", "logits"


class BCE(_Elementwise):
    """Binary cross-entropy of probabilities against targets in [0, 1]."""

    op, pred_name = "bce", "probabilities"


class MSE(_Elementwise):
    """Mean squared error over all elements."""

    op = "mse"


LOSSES = {cls.__name__: cls for cls in (SoftmaxCrossEntropy, BCEWithLogits, BCE, MSE)}

__all__ = ["Loss", "LOSSES"] + list(LOSSES)
