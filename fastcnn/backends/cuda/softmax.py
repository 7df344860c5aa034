"""Softmax and log-softmax over any axis, and their backward.

The array is viewed as (outer, C, inner), the axis in the middle. Where inner > 1
(softmax over the channels of images, say) one thread takes one line of C values;
neighbouring threads read neighbouring addresses. Where the axis is the last one
(inner == 1) and long, one block takes one row: its threads share the row's values
and combine their maxima and sums in shared memory (a fixed tree, so the result is
the same on every run); short rows (class scores) keep one thread each. Each kernel
serves both ops: `log` picks log-softmax.
"""

import math

from numba import cuda

from ._arrays import view
from ._jit import MAX_BLOCKS, THREADS, blocks_for, boolean, kernel

# Rows at least this long get a block each (where the axis is the last one).
ROW_BLOCK = 64


def _lines(f):
    return (f[:, :, ::1], f[:, :, ::1], boolean)


def _lines_backward(f):
    return (f[:, :, ::1], f[:, :, ::1], f[:, :, ::1], boolean)


@kernel(_lines)
def softmax_lines_kernel(F):
    def softmax_lines(x, y, log):
        outer, classes, inner = x.shape
        for q in range(cuda.grid(1), outer * inner, cuda.gridsize(1)):
            o, j = q // inner, q % inner
            top = x[o, 0, j]
            for c in range(1, classes):
                top = max(top, x[o, c, j])
            total = F(0)
            for c in range(classes):
                total += math.exp(x[o, c, j] - top)
            if log:
                shift = top + math.log(total)
                for c in range(classes):
                    y[o, c, j] = x[o, c, j] - shift
            else:
                for c in range(classes):
                    y[o, c, j] = math.exp(x[o, c, j] - top) / total
    return softmax_lines


@kernel(_lines_backward)
def softmax_lines_backward_kernel(F):
    def softmax_lines_backward(dy, y, dx, log):
        """softmax: y * (dy - sum(dy * y)); log-softmax: dy - exp(y) * sum(dy)."""
        outer, classes, inner = dy.shape
        for q in range(cuda.grid(1), outer * inner, cuda.gridsize(1)):
            o, j = q // inner, q % inner
            total = F(0)
            for c in range(classes):
                total += dy[o, c, j] if log else dy[o, c, j] * y[o, c, j]
            for c in range(classes):
                if log:
                    dx[o, c, j] = dy[o, c, j] - math.exp(y[o, c, j]) * total
                else:
                    dx[o, c, j] = y[o, c, j] * (dy[o, c, j] - total)
    return softmax_lines_backward


@cuda.jit(device=True, inline="always")
def block_combine(buf, value, maximum):
    """The maximum (or the sum) of value over the block's threads, to every thread."""
    t = cuda.threadIdx.x
    cuda.syncthreads()   # every thread has read buf's previous result
    buf[t] = value
    cuda.syncthreads()
    step = THREADS // 2
    while step > 0:
        if t < step:
            buf[t] = max(buf[t], buf[t + step]) if maximum else buf[t] + buf[t + step]
        cuda.syncthreads()
        step //= 2
    return buf[0]


@kernel(lambda f: (f[:, ::1], f[:, ::1], boolean))
def softmax_rows_kernel(F):
    def softmax_rows(x, y, log):
        buf = cuda.shared.array(THREADS, F)
        t = cuda.threadIdx.x
        rows, classes = x.shape
        for r in range(cuda.blockIdx.x, rows, cuda.gridDim.x):
            top = x[r, 0]
            for c in range(t, classes, THREADS):
                top = max(top, x[r, c])
            top = block_combine(buf, top, True)
            total = F(0)
            for c in range(t, classes, THREADS):
                total += math.exp(x[r, c] - top)
            total = block_combine(buf, total, False)
            if log:
                shift = top + math.log(total)
                for c in range(t, classes, THREADS):
                    y[r, c] = x[r, c] - shift
            else:
                for c in range(t, classes, THREADS):
                    y[r, c] = math.exp(x[r, c] - top) / total
    return softmax_rows


@kernel(lambda f: (f[:, ::1], f[:, ::1], f[:, ::1], boolean))
def softmax_rows_backward_kernel(F):
    def softmax_rows_backward(dy, y, dx, log):
        buf = cuda.shared.array(THREADS, F)
        t = cuda.threadIdx.x
        rows, classes = dy.shape
        for r in range(cuda.blockIdx.x, rows, cuda.gridDim.x):
            total = F(0)
            for c in range(t, classes, THREADS):
                total += dy[r, c] if log else dy[r, c] * y[r, c]
            total = block_combine(buf, total, False)
            for c in range(t, classes, THREADS):
                if log:
                    dx[r, c] = dy[r, c] - math.exp(y[r, c]) * total
                else:
                    dx[r, c] = y[r, c] * (dy[r, c] - total)
    return softmax_rows_backward


def _split(shape, dim):
    """(outer, C, inner) for an axis dim of shape."""
    return (math.prod(shape[:dim]), shape[dim], math.prod(shape[dim + 1:]))


def _run(arrays, dim, log, lines, rows):
    """The kernel for this shape: one block per row, or one thread per line."""
    outer, classes, inner = _split(arrays[0].shape, dim)
    if outer * classes * inner == 0:
        return
    if inner == 1 and classes >= ROW_BLOCK:
        rows(arrays[0].dtype)[min(outer, MAX_BLOCKS), THREADS](
            *(a.reshape((outer, classes)) for a in arrays), log)
    else:
        lines(arrays[0].dtype)[blocks_for(outer * inner), THREADS](
            *(a.reshape((outer, classes, inner)) for a in arrays), log)


def _forward(x, dim, log, out):
    _run((x, view(out)), dim, log, softmax_lines_kernel, softmax_rows_kernel)
    return out


def _backward(dy, y, dim, log, out):
    _run((dy, y, view(out)), dim, log, softmax_lines_backward_kernel,
         softmax_rows_backward_kernel)
    return out


def softmax(x, dim, *, out):
    return _forward(x, dim, False, out)


def softmax_backward(dy, y, dim, *, out):
    return _backward(dy, y, dim, False, out)


def log_softmax(x, dim, *, out):
    return _forward(x, dim, True, out)


def log_softmax_backward(dy, y, dim, *, out):
    return _backward(dy, y, dim, True, out)
