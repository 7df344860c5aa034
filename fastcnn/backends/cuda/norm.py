"""Batch normalisation: one block per channel computes its statistics and normalises it
(forward), or sums its two gradient terms and applies them (backward); the block
sums are reduce.block_sum's."""

import math

from numba import cuda

from ._arrays import asarray, views
from ._jit import THREADS, boolean, kernel
from .reduce import as_channels, block_sum


@kernel(lambda f: (f[:, :, ::1], f[::1], f[::1], f[::1], f[::1], f[:, :, ::1], f[::1], f[::1],
                   f, f, boolean, boolean))
def batch_norm_kernel(F):
    def batch_norm(x, gamma, beta, running_mean, running_var, y, mean_out, invstd_out,
                   momentum, eps, training, update_running):
        """One block per channel: its statistics (two passes: mean, then the mean squared
        deviation, which does not cancel as E[x^2] - E[x]^2 would), then y."""
        buf = cuda.shared.array(THREADS, F)
        c, t = cuda.blockIdx.x, cuda.threadIdx.x
        n_size, _, p_size = x.shape
        count = n_size * p_size
        if training:
            total = F(0)
            for i in range(t, count, THREADS):
                total += x[i // p_size, c, i % p_size]
            mean = block_sum(buf, total) / F(count)
            total = F(0)
            for i in range(t, count, THREADS):
                d = x[i // p_size, c, i % p_size] - mean
                total += d * d
            var = block_sum(buf, total) / F(count)
            if update_running and t == 0:
                unbiased = var * (F(count) / F(count - 1))
                running_mean[c] = (F(1) - momentum) * running_mean[c] + momentum * mean
                running_var[c] = (F(1) - momentum) * running_var[c] + momentum * unbiased
        else:
            mean, var = running_mean[c], running_var[c]
        invstd = F(1) / math.sqrt(var + eps)
        if t == 0:
            mean_out[c] = mean
            invstd_out[c] = invstd
        scale = gamma[c] * invstd
        for i in range(t, count, THREADS):
            n, p = i // p_size, i % p_size
            y[n, c, p] = (x[n, c, p] - mean) * scale + beta[c]
    return batch_norm


@kernel(lambda f: (f[:, :, ::1], f[:, :, ::1], f[::1], f[::1], f[::1], f[:, :, ::1], f[::1],
                   f[::1], boolean))
def batch_norm_backward_kernel(F):
    def batch_norm_backward(dy, x, gamma, mean, invstd, dx, dgamma, dbeta, training):
        """One block per channel: dbeta = sum dy, dgamma = sum dy * xhat, then dx."""
        buf = cuda.shared.array(THREADS, F)
        c, t = cuda.blockIdx.x, cuda.threadIdx.x
        n_size, _, p_size = x.shape
        count = n_size * p_size
        mu, inv = mean[c], invstd[c]
        sum_dy, sum_dy_xhat = F(0), F(0)
        for i in range(t, count, THREADS):
            n, p = i // p_size, i % p_size
            sum_dy += dy[n, c, p]
            sum_dy_xhat += dy[n, c, p] * ((x[n, c, p] - mu) * inv)
        sum_dy = block_sum(buf, sum_dy)
        sum_dy_xhat = block_sum(buf, sum_dy_xhat)
        if t == 0:
            dbeta[c] = sum_dy
            dgamma[c] = sum_dy_xhat
        scale = gamma[c] * inv
        mean_dy, mean_dy_xhat = sum_dy / F(count), sum_dy_xhat / F(count)
        for i in range(t, count, THREADS):
            n, p = i // p_size, i % p_size
            if training:   # the batch statistics depend on x too
                xhat = (x[n, c, p] - mu) * inv
                dx[n, c, p] = scale * (dy[n, c, p] - mean_dy - xhat * mean_dy_xhat)
            else:
                dx[n, c, p] = scale * dy[n, c, p]
    return batch_norm_backward


def batch_norm(x, gamma, beta, running_mean, running_var, momentum, eps, training, *,
               out):
    c, dtype = x.shape[1], x.dtype
    y, mean, invstd = views(out)
    update = running_mean is not None
    if update:
        running_mean, running_var = asarray(running_mean), asarray(running_var)
    else:   # never read: training without running statistics
        running_mean = running_var = mean
    f = dtype.type
    batch_norm_kernel(dtype)[c, THREADS](
        as_channels(x), gamma, beta, running_mean, running_var, as_channels(y), mean, invstd,
        f(momentum), f(eps), training, update and training)
    return out


def batch_norm_backward(dy, x, gamma, mean, invstd, training, *, out):
    c, dtype = x.shape[1], x.dtype
    dx, dgamma, dbeta = views(out)
    batch_norm_backward_kernel(dtype)[c, THREADS](
        as_channels(dy), as_channels(x), gamma, mean, invstd, as_channels(dx), dgamma, dbeta,
        training)
    return out
