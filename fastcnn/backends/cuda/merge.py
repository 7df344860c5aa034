"""Merging arrays (Add, Multiply, Concat and a graph's gradient sums): elementwise kernels,
one thread per element with grid strides; a join along the channels copies each input's
block of every image, an image's channels being one contiguous row."""

from numba import cuda

from ._arrays import flat, view, views
from ._jit import THREADS, blocks_for, i64, kernel
from .elementwise import multiply_kernel   # (dropout's backward: the same product)


def _binary(f):
    return (f[::1], f[::1], f[::1])


@kernel(_binary)
def add_kernel(F):
    def add(a, b, y):
        for i in range(cuda.grid(1), y.size, cuda.gridsize(1)):
            y[i] = a[i] + b[i]
    return add


@kernel(lambda f: (f[:, ::1], f[:, ::1], i64, i64, i64))
def copy_columns_kernel(F):
    def copy_columns(src, dst, src_start, dst_start, width):
        """dst[n, dst_start + j] = src[n, src_start + j] for every row n and j < width."""
        for i in range(cuda.grid(1), src.shape[0] * width, cuda.gridsize(1)):
            n, j = i // width, i % width
            dst[n, dst_start + j] = src[n, src_start + j]
    return copy_columns


def _elementwise(template, a, b, out):
    y = view(out)
    template(y.dtype)[blocks_for(y.size), THREADS](flat(a), flat(b), flat(y))
    return out


def add(a, b, *, out):
    return _elementwise(add_kernel, a, b, out)


def multiply(a, b, *, out):
    return _elementwise(multiply_kernel, a, b, out)


def _rows(a):
    """a (N, C, ...) as (N, C * ...): each image one row."""
    return a.reshape((a.shape[0], a.size // a.shape[0]))


def _copy(src, dst, src_start, dst_start, width):
    copy_columns_kernel(dst.dtype)[blocks_for(src.shape[0] * width), THREADS](
        src, dst, src_start, dst_start, width)


def concat(xs, *, out):
    y = _rows(view(out))
    start = 0
    for x in xs:
        x = _rows(x)
        _copy(x, y, 0, start, x.shape[1])
        start += x.shape[1]
    return out


def concat_backward(dy, channels, *, out):
    rows, start = _rows(dy), 0
    for dx in views(out):
        dx = _rows(dx)
        _copy(rows, dx, start, 0, dx.shape[1])
        start += dx.shape[1]
    return out
