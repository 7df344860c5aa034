"""The losses (softmax cross-entropy, BCE, MSE) and count_correct."""

import numpy as np

from ._checks import (
    _backend, _checked_out, _floats, _integers, _ndim, _nonempty_batch, _out, _same_shape)


# ---------------------------------------------------------------- losses


def _labels(op, be, logits, labels):
    """Integer labels (N,) for logits (N, C); their range is be.check_labels' affair (on the
    GPU, the loss kernels': see the module's docstring)."""
    _ndim(op, "logits", logits, 2, "(N, C)")
    _nonempty_batch(op, "logits", logits)
    labels = _integers(op, be, "labels", labels)
    if tuple(labels.shape) != (logits.shape[0],):
        raise ValueError(f"{op}: labels must have shape ({logits.shape[0]},) for "
                         f"logits.shape={tuple(logits.shape)}, got {tuple(labels.shape)}")
    return be.check_labels(op, labels, logits.shape[1])


def softmax_cross_entropy(logits, labels, *, backend=None, out=None):
    """Fused, stable softmax + cross-entropy with integer labels -> (mean loss, probs)."""
    op = "softmax_cross_entropy"
    be = _backend(op, backend, {"logits": logits, "labels": labels})
    (logits,) = _floats(op, be, logits=logits)
    labels = _labels(op, be, logits, labels)
    out = _out(op, be, out, logits.shape, logits.dtype,
               reads={"logits": logits, "labels": labels})
    return be.softmax_cross_entropy(logits, labels, out=out)


def softmax_cross_entropy_backward(probs, labels, *, backend=None, out=None):
    """d(mean loss)/d(logits) = (probs - onehot(labels)) / N. On the GPU a label outside
    [0, C) gives a row of NaN instead of an error (the forward op reports it)."""
    op = "softmax_cross_entropy_backward"
    be = _backend(op, backend, {"probs": probs, "labels": labels})
    (probs,) = _floats(op, be, probs=probs)
    labels = _labels(op, be, probs, labels)
    out = _out(op, be, out, probs.shape, probs.dtype, reads={"probs": probs, "labels": labels})
    return be.softmax_cross_entropy_backward(probs, labels, out=out)


def _pred_target(op, backend, pred, target, names):
    be = _backend(op, backend, {names[0]: pred, names[1]: target})
    pred, target = _floats(op, be, **{names[0]: pred, names[1]: target})
    _same_shape(op, names, (pred, target))
    if pred.size == 0:
        raise ValueError(f"{op}: {names[0]} is empty ({names[0]}.shape={tuple(pred.shape)})")
    return be, pred, target


def bce_with_logits(logits, targets, *, backend=None):
    """Mean binary cross-entropy of sigmoid(logits) against targets in [0, 1]."""
    op = "bce_with_logits"
    be, logits, targets = _pred_target(op, backend, logits, targets, ("logits", "targets"))
    return be.bce_with_logits(logits, targets)


def _pred_target_backward(op, backend, out, pred, target, names):
    """The gradient of an elementwise loss with respect to its predictions."""
    be, pred, target = _pred_target(op, backend, pred, target, names)
    out = _out(op, be, out, pred.shape, pred.dtype, reads=dict(zip(names, (pred, target))))
    return getattr(be, op)(pred, target, out=out)


def bce_with_logits_backward(logits, targets, *, backend=None, out=None):
    return _pred_target_backward("bce_with_logits_backward", backend, out, logits, targets,
                                 ("logits", "targets"))


def bce(probs, targets, *, backend=None):
    """Mean binary cross-entropy of probabilities against targets (logs clamped at -100)."""
    op = "bce"
    be, probs, targets = _pred_target(op, backend, probs, targets, ("probs", "targets"))
    return be.bce(probs, targets)


def bce_backward(probs, targets, *, backend=None, out=None):
    return _pred_target_backward("bce_backward", backend, out, probs, targets,
                                 ("probs", "targets"))


def mse(pred, target, *, backend=None):
    """Mean squared error over all elements."""
    be, pred, target = _pred_target("mse", backend, pred, target, ("pred", "target"))
    return be.mse(pred, target)


def mse_backward(pred, target, *, backend=None, out=None):
    return _pred_target_backward("mse_backward", backend, out, pred, target, ("pred", "target"))


def count_correct(scores, labels, *, backend=None, into=None):
    """How many rows of scores (N, C) have their maximum at the label.

    into: a one-element int64 array where scores live, to add the count to instead of
    returning it (into itself is returned): a running total that stays on the GPU, so
    counting costs no copy to the host. There, labels outside [0, C) are not counted
    rather than reported (nothing comes back to raise from); fit counts the labels its
    loss has just checked.
    """
    op = "count_correct"
    be = _backend(op, backend, {"scores": scores, "labels": labels, "into": into})
    (scores,) = _floats(op, be, scores=scores)
    labels = _labels(op, be, scores, labels)
    if into is not None:
        into = _checked_out(op, be, into, (1,), np.dtype(np.int64), "into",
                            reads={"scores": scores, "labels": labels})
    return be.count_correct(scores, labels, into=into)
