"""Losses: each returns the mean over the batch, its backward that mean's gradient."""

import numpy as np

from ._common import _into
from .elementwise import sigmoid


# Each loss returns the mean over the batch as a Python float (PyTorch's
# reduction='mean'); its backward returns the gradient of that mean.


def softmax_cross_entropy(logits, labels, *, out):
    """loss = mean_n(logsumexp(z_n) - z_n[label_n]); returns (loss, probs)."""
    z = logits - logits.max(axis=1, keepdims=True)
    lse = np.log(np.exp(z).sum(axis=1, keepdims=True))
    picked = np.take_along_axis(z, labels[:, None].astype(np.intp), axis=1)
    loss = float((lse - picked).mean())
    return loss, _into(out, np.exp(z - lse))


def softmax_cross_entropy_backward(probs, labels, *, out):
    d = probs.copy()
    d[np.arange(len(labels)), labels] -= 1
    return _into(out, d / d.dtype.type(len(labels)))


def bce_with_logits(logits, targets):
    """mean(max(z, 0) - z t + log(1 + exp(-|z|))), binary cross-entropy of sigmoid(z)."""
    z, t = logits, targets
    return float((np.maximum(z, 0) - z * t + np.log1p(np.exp(-np.abs(z)))).mean())


def bce_with_logits_backward(logits, targets, *, out):
    probs = sigmoid(logits, out=np.empty_like(logits))
    return _into(out, (probs - targets) / logits.dtype.type(logits.size))


def bce(probs, targets):
    """mean(-(t log p + (1 - t) log(1 - p))), each log clamped at -100 as PyTorch."""
    p, t = probs, targets
    log_p = np.maximum(np.log(p), -100)
    log_1mp = np.maximum(np.log1p(-p), -100)
    return float((-(t * log_p + (1 - t) * log_1mp)).mean())


def bce_backward(probs, targets, *, out):
    p, t = probs, targets
    d = (p - t) / np.maximum(p * (1 - p), p.dtype.type(1e-12))
    return _into(out, d / p.dtype.type(p.size))


def mse(pred, target):
    return float(((pred - target) ** 2).mean())


def mse_backward(pred, target, *, out):
    return _into(out, 2 * (pred - target) / pred.dtype.type(pred.size))


def count_correct(scores, labels, *, into=None):
    """How many rows of scores have their maximum at the label (added to into[0], if given)."""
    hits = int((scores.argmax(axis=1) == labels).sum())
    if into is None:
        return hits
    into[0] += hits
    return into
