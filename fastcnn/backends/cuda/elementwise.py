"""Activations, maxout and dropout: elementwise kernels (one thread per element,
grid-stride), softmax one thread per row (rows are class scores: short)."""

import math

import numpy as np
from numba import cuda

from .. import dropout_hash
from ._arrays import flat, view, views, written_indices
from ._jit import THREADS, blocks_for, i32, kernel, u64


def _unary(f):
    return (f[::1], f[::1])


def _unary_with(f):
    return (f[::1], f[::1], f)


def _backward(f):
    return (f[::1], f[::1], f[::1])


def _backward_with(f):
    return (f[::1], f[::1], f[::1], f)


@kernel(_unary)
def relu_kernel(F):
    def relu(x, y):
        for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
            y[i] = max(x[i], F(0))
    return relu


@kernel(_backward)
def relu_backward_kernel(F):
    def relu_backward(dy, y, dx):
        for i in range(cuda.grid(1), dy.size, cuda.gridsize(1)):
            dx[i] = dy[i] if y[i] > F(0) else F(0)
    return relu_backward


@kernel(_unary_with)
def leaky_relu_kernel(F):
    def leaky_relu(x, y, slope):
        for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
            y[i] = x[i] if x[i] > F(0) else x[i] * slope
    return leaky_relu


@kernel(_backward_with)
def leaky_relu_backward_kernel(F):
    def leaky_relu_backward(dy, x, dx, slope):
        for i in range(cuda.grid(1), dy.size, cuda.gridsize(1)):
            dx[i] = dy[i] if x[i] > F(0) else dy[i] * slope
    return leaky_relu_backward


@kernel(_unary_with)
def elu_kernel(F):
    def elu(x, y, alpha):
        for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
            y[i] = x[i] if x[i] > F(0) else alpha * math.expm1(min(x[i], F(0)))
    return elu


@kernel(_backward_with)
def elu_backward_kernel(F):
    def elu_backward(dy, y, dx, alpha):
        """Below zero dy/dx = alpha * exp(x) = y + alpha."""
        for i in range(cuda.grid(1), dy.size, cuda.gridsize(1)):
            dx[i] = dy[i] if y[i] > F(0) else dy[i] * (y[i] + alpha)
    return elu_backward


@cuda.jit(device=True, inline="always")
def sigmoid_of(x, half, one):
    """1 / (1 + exp(-x)) written with tanh, which never overflows."""
    return half * (one + math.tanh(half * x))


@kernel(_unary)
def sigmoid_kernel(F):
    def sigmoid(x, y):
        for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
            y[i] = sigmoid_of(x[i], F(0.5), F(1))
    return sigmoid


@kernel(_backward)
def sigmoid_backward_kernel(F):
    def sigmoid_backward(dy, y, dx):
        for i in range(cuda.grid(1), dy.size, cuda.gridsize(1)):
            dx[i] = dy[i] * y[i] * (F(1) - y[i])
    return sigmoid_backward


@kernel(_unary)
def tanh_kernel(F):
    def tanh(x, y):
        for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
            y[i] = math.tanh(x[i])
    return tanh


@kernel(_backward)
def tanh_backward_kernel(F):
    def tanh_backward(dy, y, dx):
        for i in range(cuda.grid(1), dy.size, cuda.gridsize(1)):
            dx[i] = dy[i] * (F(1) - y[i] * y[i])
    return tanh_backward


@kernel(lambda f: (f[:, ::1], f[:, ::1]))
def softmax_kernel(F):
    def softmax(x, y):
        """exp(x - max) / sum, per row."""
        for r in range(cuda.grid(1), x.shape[0], cuda.gridsize(1)):
            top = x[r, 0]
            for j in range(1, x.shape[1]):
                top = max(top, x[r, j])
            total = F(0)
            for j in range(x.shape[1]):
                y[r, j] = math.exp(x[r, j] - top)
                total += y[r, j]
            for j in range(x.shape[1]):
                y[r, j] /= total
    return softmax


@kernel(lambda f: (f[:, ::1], f[:, ::1], f[:, ::1]))
def softmax_backward_kernel(F):
    def softmax_backward(dy, y, dx):
        """y * (dy - <dy, y>), per row."""
        for r in range(cuda.grid(1), dy.shape[0], cuda.gridsize(1)):
            inner = F(0)
            for j in range(dy.shape[1]):
                inner += dy[r, j] * y[r, j]
            for j in range(dy.shape[1]):
                dx[r, j] = y[r, j] * (dy[r, j] - inner)
    return softmax_backward


def _elementwise(template, x, *args, out):
    y = view(out)
    template(x.dtype)[blocks_for(x.size), THREADS](flat(x), flat(y), *args)
    return out


def _elementwise_backward(template, dy, saved, *args, out):
    dx = view(out)
    template(dy.dtype)[blocks_for(dy.size), THREADS](flat(dy), flat(saved), flat(dx), *args)
    return out


def relu(x, *, out):
    return _elementwise(relu_kernel, x, out=out)


def relu_backward(dy, y, *, out):
    return _elementwise_backward(relu_backward_kernel, dy, y, out=out)


def leaky_relu(x, negative_slope, *, out):
    return _elementwise(leaky_relu_kernel, x, x.dtype.type(negative_slope), out=out)


def leaky_relu_backward(dy, x, negative_slope, *, out):
    return _elementwise_backward(leaky_relu_backward_kernel, dy, x, dy.dtype.type(negative_slope),
                                 out=out)


def elu(x, alpha, *, out):
    return _elementwise(elu_kernel, x, x.dtype.type(alpha), out=out)


def elu_backward(dy, y, alpha, *, out):
    return _elementwise_backward(elu_backward_kernel, dy, y, dy.dtype.type(alpha), out=out)


def sigmoid(x, *, out):
    return _elementwise(sigmoid_kernel, x, out=out)


def sigmoid_backward(dy, y, *, out):
    return _elementwise_backward(sigmoid_backward_kernel, dy, y, out=out)


def tanh(x, *, out):
    return _elementwise(tanh_kernel, x, out=out)


def tanh_backward(dy, y, *, out):
    return _elementwise_backward(tanh_backward_kernel, dy, y, out=out)


def softmax(x, *, out):
    y = view(out)
    softmax_kernel(x.dtype)[blocks_for(x.shape[0]), THREADS](x, y)
    return out


def softmax_backward(dy, y, *, out):
    dx = view(out)
    softmax_backward_kernel(dy.dtype)[blocks_for(dy.shape[0]), THREADS](dy, y, dx)
    return out


# ---------------------------------------------------------------- maxout
# x viewed as (N, G, K, R): group g of pool size K, R = the trailing positions.


@kernel(lambda f: (f[:, :, :, ::1], f[:, :, ::1], i32[:, :, ::1]))
def maxout_kernel(F):
    def maxout(x, y, indices):
        """The group's first maximum; a NaN counts as the maximum (as NumPy's argmax)."""
        _, groups, pool, rest = x.shape
        for q in range(cuda.grid(1), y.size, cuda.gridsize(1)):
            n, g, r = q // (groups * rest), (q // rest) % groups, q % rest
            best, where = x[n, g, 0, r], 0
            for k in range(1, pool):
                v = x[n, g, k, r]
                if best == best and (v > best or v != v):
                    best, where = v, k
            y[n, g, r] = best
            indices[n, g, r] = where
    return maxout


@kernel(lambda f: (f[:, :, ::1], i32[:, :, ::1], f[:, :, :, ::1]))
def maxout_backward_kernel(F):
    def maxout_backward(dy, indices, dx):
        """A gather per input element: dy where it was its group's maximum, else 0 (so an
        index outside the group, which no element matches, is never followed)."""
        _, groups, pool, rest = dx.shape
        for q in range(cuda.grid(1), dx.size, cuda.gridsize(1)):
            n, g = q // (groups * pool * rest), (q // (pool * rest)) % groups
            k, r = (q // rest) % pool, q % rest
            dx[n, g, k, r] = dy[n, g, r] if indices[n, g, r] == k else F(0)
    return maxout_backward


def _groups(shape, pool_size):
    """(N, G, R) for x's shape, G groups of pool_size along axis 1."""
    rest = 1
    for s in shape[2:]:
        rest *= s
    return shape[0], shape[1] // pool_size, rest


def maxout(x, pool_size, *, out):
    n, g, r = _groups(x.shape, pool_size)
    y, indices = views(out)
    maxout_kernel(x.dtype)[blocks_for(y.size), THREADS](
        x.reshape((n, g, pool_size, r)), y.reshape((n, g, r)), indices.reshape((n, g, r)))
    written_indices(indices, pool_size)   # its backward need not check them
    return out


def maxout_backward(dy, indices, pool_size, *, out):
    n, g = dy.shape[:2]
    r = math.prod(dy.shape[2:])   # (not dy.size // (n * g): g may be 0)
    dx = view(out)
    maxout_backward_kernel(dy.dtype)[blocks_for(dx.size), THREADS](
        dy.reshape((n, g, r)), indices.reshape((n, g, r)), dx.reshape((n, g, pool_size, r)))
    return out


# ---------------------------------------------------------------- dropout
# The mask is a hash of (seed, element index), the same on every backend (see
# backends/dropout_hash.py, whose mix32 this is as device code). Numba widens
# integer arithmetic to 64 bits, so the 32-bit hash runs in uint64 with explicit
# masks, and every constant is a uint64 (mixing signed and unsigned would turn the
# arithmetic into floating point).

_U32 = np.uint64(0xFFFFFFFF)
_M1, _M2 = np.uint64(0x7FEB352D), np.uint64(0x846CA68B)
_S8, _S15, _S16 = np.uint64(8), np.uint64(15), np.uint64(16)


@cuda.jit(device=True, inline="always")
def mix32(h):
    """lowbias32 (C. Wellons) on a 32-bit value held in a uint64."""
    h ^= h >> _S16
    h = (h * _M1) & _U32
    h ^= h >> _S15
    h = (h * _M2) & _U32
    return h ^ (h >> _S16)


@kernel(lambda f: (f[::1], f[::1], f[::1], u64, u64, f))
def dropout_kernel(F):
    def dropout(x, y, mask, key, threshold, scale):
        for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
            bits = mix32((np.uint64(i) & _U32) ^ key) >> _S8
            m = scale if bits >= threshold else F(0)
            mask[i] = m
            y[i] = x[i] * m
    return dropout


@kernel(_backward)
def multiply_kernel(F):
    def multiply(a, b, c):
        for i in range(cuda.grid(1), a.size, cuda.gridsize(1)):
            c[i] = a[i] * b[i]
    return multiply


def dropout(x, p, seed, *, out):
    y, mask = views(out)
    key = np.uint64(dropout_hash.key(seed))
    dropout_kernel(x.dtype)[blocks_for(x.size), THREADS](
        flat(x), flat(y), flat(mask), key, np.uint64(dropout_hash.threshold(p)),
        x.dtype.type(1 / (1 - p)))
    return out


def dropout_backward(dy, mask, *, out):
    return _elementwise_backward(multiply_kernel, dy, mask, out=out)
