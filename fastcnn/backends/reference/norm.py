"""Batch normalisation, from its formulas."""

import numpy as np

from ._common import _into_all


def _channel_view(v, ndim):
    """A per-channel vector shaped to broadcast over (N, C) or (N, C, H, W)."""
    return v.reshape((1, -1) + (1,) * (ndim - 2))


def batch_norm(x, gamma, beta, running_mean, running_var, momentum, eps, training, *, out):
    """y = (x - mean) / sqrt(var + eps) * gamma + beta, statistics per channel (axis 1).

    Training uses the batch's statistics and moves the running ones towards
    them in place (the running variance is the unbiased one, as PyTorch);
    evaluation uses the running ones. Returns (y, mean, invstd).
    """
    axes = (0,) + tuple(range(2, x.ndim))
    if training:
        mean = x.mean(axis=axes)
        var = x.var(axis=axes)
        if running_mean is not None:
            count = x.size // x.shape[1]
            running_mean[...] = (1 - momentum) * running_mean + momentum * mean
            running_var[...] = (1 - momentum) * running_var + momentum * var * (count / (count - 1))
    else:
        mean, var = running_mean.copy(), running_var
    invstd = 1 / np.sqrt(var + eps)
    xhat = (x - _channel_view(mean, x.ndim)) * _channel_view(invstd, x.ndim)
    y = xhat * _channel_view(gamma, x.ndim) + _channel_view(beta, x.ndim)
    return _into_all(out, (y, mean.astype(x.dtype), invstd.astype(x.dtype)))


def batch_norm_backward(dy, x, gamma, mean, invstd, training, *, out):
    """(dx, dgamma, dbeta); in training the batch statistics depend on x too."""
    axes = (0,) + tuple(range(2, x.ndim))
    count = x.size // x.shape[1]
    xhat = (x - _channel_view(mean, x.ndim)) * _channel_view(invstd, x.ndim)
    dbeta = dy.sum(axis=axes)
    dgamma = (dy * xhat).sum(axis=axes)
    scale = _channel_view(gamma * invstd, x.ndim)
    if training:
        dx = scale * (dy - _channel_view(dbeta / count, x.ndim)
                      - xhat * _channel_view(dgamma / count, x.ndim))
    else:
        dx = scale * dy
    return _into_all(out, (dx, dgamma, dbeta))
