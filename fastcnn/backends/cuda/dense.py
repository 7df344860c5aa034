"""Dense algebra on the one GEMM kernel (gemm.py): matmul, linear and its backward.

A batched matmul's batch axes are merged into as few as the broadcasting allows
(``_axes``); the innermost becomes the GEMM's batch (or its reduction, for the
gradient of an operand broadcast along it), the others are looped over here, one
launch each: one launch in the common cases (a batch of matrices times one, or two
batches of the same shape).
"""

import itertools
import math

from ._arrays import fill, flat, view, views
from .gemm import BIAS_PER_COLUMN, Operand, gemm, gemm_sum
from .reduce import sum_channels


def matmul(a, b, *, out):
    """c = a b, for batches of matrices too (a (..., M, K), b (..., K, N), their batch
    axes broadcast)."""
    (m, k), n = tuple(a.shape)[-2:], tuple(b.shape)[-1]
    c = view(out)
    if a.ndim == 2:
        gemm(c, Operand(a, 0, k, 1), Operand(b, 0, n, 1), m, n, k)
    else:
        _batched((c, a, b), (m * n, m * k, k * n), ((k, 1), (n, 1)), m, n, k)
    return out


def matmul_backward(dc, a, b, *, out):
    """(da, db) = (dc b^T, a^T dc), each summed over its operand's broadcast axes."""
    (m, k), n = tuple(a.shape)[-2:], tuple(b.shape)[-1]
    da, db = views(out)
    _batched((da, dc, b), (m * k, m * n, k * n), ((n, 1), (1, n)), m, k, n)
    _batched((db, a, dc), (k * n, m * k, m * n), ((1, k), (n, 1)), k, n, m)
    return out


def _steps(shape):
    """Each batch axis's step, in matrices, through an operand of this batch shape (0 where
    it is broadcast)."""
    return [math.prod(shape[i + 1:]) if shape[i] != 1 else 0 for i in range(len(shape))]


def _axes(batch, shapes):
    """The batch axes as few as they go: (size, [step per operand]), axes of size 1 left
    out, neighbours merged where every operand steps through them as through one."""
    axes, steps = [], [_steps(shape) for shape in shapes]
    for i, size in enumerate(batch):
        if size == 1:
            continue
        here = [s[i] for s in steps]
        if axes and all(outer == step * size for outer, step in zip(axes[-1][1], here)):
            axes[-1] = (axes[-1][0] * size, here)
        else:
            axes.append((size, here))
    return axes


def _batched(arrays, sizes, strides, m, n, k):
    """target[t] = the sum of first[z] second[z] over the z of the batch that map to t.

    arrays: (target, first, second), each (..., rows, cols) with the batch's number of
    axes (1 where broadcast; the target is broadcast where the products are summed);
    sizes: their matrices' sizes; strides: the (row, column) strides through a matrix
    of first and second (transposed ones are read through swapped strides).
    """
    batch = tuple(next((s for s in axis if s != 1), 1)
                  for axis in zip(*(tuple(a.shape)[:-2] for a in arrays)))
    target = arrays[0]
    if target.size == 0:
        return
    if math.prod(batch) == 0:   # no products: a broadcast operand's gradient is 0
        fill(target, 0)
        return
    axes = _axes(batch, [tuple(a.shape)[:-2] for a in arrays])
    size, steps = axes.pop() if axes else (1, [0, 0, 0])
    flats = [flat(a) for a in arrays]
    for index in itertools.product(*(range(s) for s, _ in axes)):
        start = [sizes[o] * sum(i * st[o] for i, (_, st) in zip(index, axes)) for o in range(3)]
        a, b = (Operand(flats[o][start[o]:], steps[o] * sizes[o], *strides[o - 1])
                for o in (1, 2))
        again = any(i > 0 and st[0] == 0 for i, (_, st) in zip(index, axes))  # add to it
        if steps[0] == 0 and size > 1:   # summed over the inner axis
            c = flats[0][start[0]: start[0] + m * n]
            gemm_sum(c, a, b, m, n, k, size, accumulate=again)
        else:
            c = flats[0][start[0]: start[0] + (size - 1) * steps[0] * sizes[0] + m * n]
            gemm(c, a, b, m, n, k, size, steps[0] * sizes[0], accumulate=again)


def linear(x, weight, bias, *, out):
    """y = x weight^T + bias, weight read transposed through its strides."""
    (batch, fin), fout = x.shape, weight.shape[0]
    y = view(out)
    gemm(y, Operand(x, 0, fin, 1), Operand(weight, 0, 1, fin), batch, fout, fin,
         bias=bias, bias_per=BIAS_PER_COLUMN)
    return out


def linear_backward(dy, x, weight, need_dx, *, out):
    """(dx, dweight, dbias) = (dy weight, dy^T x, dy summed over the batch); dx None unless
    need_dx."""
    (batch, fin), fout = x.shape, weight.shape[0]
    dx, dweight, dbias = views(out)
    if need_dx:
        gemm(dx, Operand(dy, 0, fout, 1), Operand(weight, 0, fin, 1), batch, fin, fout)
    gemm(dweight, Operand(dy, 0, 1, fout), Operand(x, 0, fin, 1), fout, fin, batch)
    sum_channels(dy.reshape((batch, fout, 1)), dbias)
    return out
