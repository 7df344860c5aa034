"""Reductions: per-channel sums (bias gradients), batch normalisation, and the
per-block partial sums behind the losses.

A block sums in two stages: each thread adds up a strided share of the values
in a register, then the block's THREADS partial sums are halved pairwise in
shared memory (log2(THREADS) steps). Per-channel work gets one block per
channel; whole-array sums write one partial per block, added up on the host,
in float64, after the one small copy a loss needs anyway.
"""

import math

import numpy as np
from numba import cuda

from ._arrays import asarray, outputs, returned, scratch
from ._jit import MAX_GRID_YZ, THREADS, blocks_for, boolean, kernel, target_blocks


@cuda.jit(device=True, inline="always")
def block_sum(buf, value):
    """The sum of value over the block's threads, returned to every thread; buf is a
    THREADS-long shared array (free again on return)."""
    t = cuda.threadIdx.x
    buf[t] = value
    cuda.syncthreads()
    step = THREADS // 2
    while step > 0:
        if t < step:
            buf[t] += buf[t + step]
        cuda.syncthreads()
        step //= 2
    total = buf[0]
    cuda.syncthreads()
    return total


# ---------------------------------------------------------------- per-channel sums
# Arrays are viewed as (N, C, P): channel c's values are x[:, c, :] (P = H*W for
# images, 1 for (N, C) features).


@kernel(lambda f: (f[:, ::1], f[::1], boolean))
def _sum_splits(F):
    def sum_splits(partials, out, accumulate):
        """out (+)= the sum of the rows of partials, in order (deterministic, no atomics)."""
        for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
            total = F(0)
            for split in range(partials.shape[0]):
                total += partials[split, i]
            out[i] = out[i] + total if accumulate else total
    return sum_splits


def sum_splits(partials, out, accumulate=False):
    """out (+)= partials summed over axis 0 (partial results of split work)."""
    _sum_splits(out.dtype)[blocks_for(out.size), THREADS](partials, out, accumulate)


@kernel(lambda f: (f[:, :, ::1], f[:, ::1]))
def _sum_channels(F):
    def sum_channels(x, partials):
        """Block (c, s) sums its share of channel c (every splits-th run of THREADS
        values) into partials[s, c]."""
        buf = cuda.shared.array(THREADS, F)
        c, s = cuda.blockIdx.x, cuda.blockIdx.y
        _, _, p_size = x.shape
        total = F(0)
        for i in range(s * THREADS + cuda.threadIdx.x, x.shape[0] * p_size,
                       cuda.gridDim.y * THREADS):
            total += x[i // p_size, c, i % p_size]
        total = block_sum(buf, total)
        if cuda.threadIdx.x == 0:
            partials[s, c] = total
    return sum_channels


def sum_channels(x3, out, splits=None):
    """out[c] = the sum of x3[:, c, :] (bias gradients). Few channels would leave the
    GPU idle, so each is split over several blocks (at least 8 values a thread),
    their partial sums added in order after."""
    n, c, p = x3.shape
    if c == 0:   # no channels, no sums
        return
    if splits is None:
        splits = min(math.ceil(n * p / (8 * THREADS)), target_blocks() // c)
    splits = max(1, min(splits, MAX_GRID_YZ))
    if splits == 1:
        partials = out.reshape((1, c))
    else:
        partials = scratch("channel_sums", (splits, c), out.dtype)
    _sum_channels(x3.dtype)[(c, splits), THREADS](x3, partials)
    if splits > 1:
        sum_splits(partials, out)


def as_channels(x):
    """An (N, C) or (N, C, H, W) array as (N, C, P)."""
    return x.reshape((x.shape[0], x.shape[1], math.prod(x.shape[2:])))   # (also for C = 0)


# ---------------------------------------------------------------- batch normalisation


@kernel(lambda f: (f[:, :, ::1], f[::1], f[::1], f[::1], f[::1], f[:, :, ::1], f[::1], f[::1],
                   f, f, boolean, boolean))
def _batch_norm(F):
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
def _batch_norm_backward(F):
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
               out=None):
    c, dtype = x.shape[1], x.dtype
    y, mean, invstd = outputs(out, [(x.shape, dtype), ((c,), dtype), ((c,), dtype)])
    update = running_mean is not None
    if update:
        running_mean, running_var = asarray(running_mean), asarray(running_var)
    else:   # never read: training without running statistics
        running_mean = running_var = mean
    f = dtype.type
    _batch_norm(dtype)[c, THREADS](as_channels(x), gamma, beta, running_mean, running_var,
                                   as_channels(y), mean, invstd, f(momentum), f(eps),
                                   training, update and training)
    return returned(out, (y, mean, invstd))


def batch_norm_backward(dy, x, gamma, mean, invstd, training, *, out=None):
    c, dtype = x.shape[1], x.dtype
    dx, dgamma, dbeta = outputs(out, [(x.shape, dtype), ((c,), dtype), ((c,), dtype)])
    _batch_norm_backward(dtype)[c, THREADS](as_channels(dy), as_channels(x), gamma, mean,
                                            invstd, as_channels(dx), dgamma, dbeta, training)
    return returned(out, (dx, dgamma, dbeta))


# ---------------------------------------------------------------- whole-array sums


def total(partials):
    """The float partial sums' total, as a Python float (the one copy to the host)."""
    return math.fsum(partials.copy_to_host().astype(np.float64))
