"""Reductions: per-channel sums (bias gradients, batch norm's statistics in norm.py) and
the per-block partial sums behind the losses.

A block sums in two stages: each thread adds up a strided share of the values
in a register, then the block's THREADS partial sums are halved pairwise in
shared memory (log2(THREADS) steps). Per-channel work gets one block per
channel; whole-array sums write one partial per block, added up on the host,
in float64, after the one small copy a loss needs anyway.
"""

import math

import numpy as np
from numba import cuda

from ._arrays import scratch
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
def sum_splits_kernel(F):
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
    sum_splits_kernel(out.dtype)[blocks_for(out.size), THREADS](partials, out, accumulate)


@kernel(lambda f: (f[:, :, ::1], f[:, ::1]))
def sum_channels_kernel(F):
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
    sum_channels_kernel(x3.dtype)[(c, splits), THREADS](x3, partials)
    if splits > 1:
        sum_splits(partials, out)


def as_channels(x):
    """An (N, C) or (N, C, H, W) array as (N, C, P)."""
    return x.reshape((x.shape[0], x.shape[1], math.prod(x.shape[2:])))   # (also for C = 0)


# ---------------------------------------------------------------- whole-array sums


def total(partials):
    """The float partial sums' total, as a Python float (the one copy to the host)."""
    return math.fsum(partials.copy_to_host().astype(np.float64))
