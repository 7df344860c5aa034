"""Losses: ``forward(pred, target)`` -> the mean over the batch as a float (PyTorch's
reduction='mean'), ``backward()`` -> d(loss)/d(pred).

Targets given as NumPy arrays follow the predictions: they are cast to their
float dtype (regression targets) and copied to the GPU when the predictions
live there, so a training loop can pass host labels to a model on the GPU.
``prepare_target`` does that (and checks the target); a loop that calls it
itself passes its result on with ``prepared=True``, so a step prepares its
target once.
"""

import numpy as np

from .. import backends
from .. import functional as F
from .reuse import Reuse


def _device(pred):
    return "cuda" if backends.on_gpu(pred) else "cpu"


class Loss:
    """The base of every loss: it ends the network, takes a target, and its backward
    receives no dy. It holds no parameters, only what forward saved for backward and the
    arrays it reuses from step to step (its dx).

    A loss implements ``forward(pred, target, prepared=False)`` (prepare_target first,
    unless prepared), ``backward()``, and ``_check(pred, target)``; a classification loss
    also ``correct``."""

    def __init__(self, **config):
        self._config = config
        self._saved_for_backward = None
        self.reuse = Reuse()      # reused arrays, as a layer's

    def _buffer(self, key, shape, dtype, like):
        """Last step's array for key unless someone still holds it (fastcnn.nn.reuse)."""
        return self.reuse.reuse(key, shape, dtype, like)

    def __call__(self, pred, target):
        return self.forward(pred, target)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self._config.items())
        return f"{type(self).__name__}({args})"

    @property
    def name(self):
        """How errors name this loss: its constructor call."""
        return repr(self)

    def config(self):
        return dict(self._config)

    def forget(self):
        """Drop what the last forward saved for backward."""
        self._saved_for_backward = None

    def to(self, device):
        """Drop the arrays kept for "cpu" or "cuda" (a loss holds no parameters)."""
        backends.mover(device)        # refuses a device that does not exist
        self.reuse.clear()
        self.forget()
        return self

    def _error(self, message):
        return ValueError(f"{self.name}: {message}")

    def _saved(self):
        if self._saved_for_backward is None:
            raise RuntimeError(f"{self.name}: backward() needs a forward pass first")
        return self._saved_for_backward

    def correct(self, pred, target, into=None, prepared=False):
        """How many predictions are right (classification losses), else None; into: a
        one-element int64 array where pred lives to add the count to (and return) instead,
        so that counting on the GPU needs no copy to the host."""
        return None

    def prepare_target(self, pred, target):
        """target checked against pred and placed as the loss reads it: on pred's device,
        a host target cast to pred's dtype."""
        self._check(pred, target)
        return backends.place(target, _device(pred), pred.dtype)

    def _check(self, pred, target):
        """Raise a clear error unless target suits pred (each loss says what suits it)."""

    def _pred(self, pred, layout, ndim=None):
        if not hasattr(pred, "shape"):
            raise TypeError(f"{self.name}: predictions must be an array {layout}, "
                            f"got {type(pred).__name__}")
        if ndim is not None and len(pred.shape) != ndim:
            raise self._error(f"predictions must be {layout}, got shape {tuple(pred.shape)}")


class SoftmaxCrossEntropy(Loss):
    """Softmax of the logits (N, C) and cross-entropy with integer labels (N,), fused:
    stable for any logits, and its gradient is simply (softmax - onehot) / N."""

    def forward(self, logits, labels, prepared=False):
        self.forget()
        if not prepared:
            labels = self.prepare_target(logits, labels)
        loss, probs = F.softmax_cross_entropy(
            logits, labels, out=self._buffer("probs", logits.shape, logits.dtype, logits))
        self._saved_for_backward = (probs, labels)
        return loss

    def backward(self):
        probs, labels = self._saved()
        return F.softmax_cross_entropy_backward(
            probs, labels, out=self._buffer("dx", probs.shape, probs.dtype, probs))

    def correct(self, logits, labels, into=None, prepared=False):
        if not prepared:
            labels = self.prepare_target(logits, labels)
        return F.count_correct(logits, labels, into=into)

    def _check(self, logits, labels):
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

    def prepare_target(self, logits, labels):
        """Labels as they are on the host; host labels for GPU logits go there as int32,
        the type the kernels read (so they need no conversion there, and half the bytes
        move), when they fit it."""
        self._check(logits, labels)
        dtype = None
        if backends.on_gpu(logits) and not backends.on_gpu(labels):
            labels = np.asarray(labels)
            if labels.size and -2**31 <= labels.min() and labels.max() < 2**31:
                dtype = np.int32
        return backends.place(labels, _device(logits), dtype)


class _Elementwise(Loss):
    """A loss comparing predictions with targets of the same shape."""

    op = None
    pred_name = "predictions"

    def forward(self, pred, target, prepared=False):
        self.forget()
        if not prepared:
            target = self.prepare_target(pred, target)
        self._saved_for_backward = (pred, target)
        return getattr(F, self.op)(pred, target)

    def backward(self):
        pred, target = self._saved()
        return getattr(F, self.op + "_backward")(
            pred, target, out=self._buffer("dx", pred.shape, pred.dtype, pred))

    def _check(self, pred, target):
        self._pred(pred, f"{self.pred_name} (N, ...)")
        shape = tuple(getattr(target, "shape", np.shape(target)))
        if shape != tuple(pred.shape):
            raise self._error(f"targets must have the shape of the {self.pred_name} "
                              f"{tuple(pred.shape)}, got {shape}")


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
