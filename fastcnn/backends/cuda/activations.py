"""Activations, maxout and dropout: elementwise kernels (one thread per element,
grid-stride), softmax one thread per row (rows are class scores: short)."""

import math

import numpy as np
from numba import cuda

from .. import reference
from ._arrays import flat, output, outputs, returned, written_indices
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
def _relu(F):
    def relu(x, y):
        for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
            y[i] = max(x[i], F(0))
    return relu


@kernel(_backward)
def _relu_backward(F):
    def relu_backward(dy, y, dx):
        for i in range(cuda.grid(1), dy.size, cuda.gridsize(1)):
            dx[i] = dy[i] if y[i] > F(0) else F(0)
    return relu_backward


@kernel(_unary_with)
def _leaky_relu(F):
    def leaky_relu(x, y, slope):
        for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
            y[i] = x[i] if x[i] > F(0) else x[i] * slope
    return leaky_relu


@kernel(_backward_with)
def _leaky_relu_backward(F):
    def leaky_relu_backward(dy, x, dx, slope):
        for i in range(cuda.grid(1), dy.size, cuda.gridsize(1)):
            dx[i] = dy[i] if x[i] > F(0) else dy[i] * slope
    return leaky_relu_backward


@kernel(_unary_with)
def _elu(F):
    def elu(x, y, alpha):
        for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
            y[i] = x[i] if x[i] > F(0) else alpha * math.expm1(min(x[i], F(0)))
    return elu


@kernel(_backward_with)
def _elu_backward(F):
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
def _sigmoid(F):
    def sigmoid(x, y):
        for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
            y[i] = sigmoid_of(x[i], F(0.5), F(1))
    return sigmoid


@kernel(_backward)
def _sigmoid_backward(F):
    def sigmoid_backward(dy, y, dx):
        for i in range(cuda.grid(1), dy.size, cuda.gridsize(1)):
            dx[i] = dy[i] * y[i] * (F(1) - y[i])
    return sigmoid_backward


@kernel(_unary)
def _tanh(F):
    def tanh(x, y):
        for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
            y[i] = math.tanh(x[i])
    return tanh


@kernel(_backward)
def _tanh_backward(F):
    def tanh_backward(dy, y, dx):
        for i in range(cuda.grid(1), dy.size, cuda.gridsize(1)):
            dx[i] = dy[i] * (F(1) - y[i] * y[i])
    return tanh_backward


@kernel(lambda f: (f[:, ::1], f[:, ::1]))
def _softmax(F):
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
def _softmax_backward(F):
    def softmax_backward(dy, y, dx):
        """y * (dy - <dy, y>), per row."""
        for r in range(cuda.grid(1), dy.shape[0], cuda.gridsize(1)):
            inner = F(0)
            for j in range(dy.shape[1]):
                inner += dy[r, j] * y[r, j]
            for j in range(dy.shape[1]):
                dx[r, j] = y[r, j] * (dy[r, j] - inner)
    return softmax_backward


def _elementwise(template, x, *args, out=None):
    y = output(out, x.shape, x.dtype)
    template(x.dtype)[blocks_for(x.size), THREADS](flat(x), flat(y), *args)
    return returned(out, y)


def _elementwise_backward(template, dy, saved, *args, out=None):
    dx = output(out, dy.shape, dy.dtype)
    template(dy.dtype)[blocks_for(dy.size), THREADS](flat(dy), flat(saved), flat(dx), *args)
    return returned(out, dx)


def relu(x, *, out=None):
    return _elementwise(_relu, x, out=out)


def relu_backward(dy, y, *, out=None):
    return _elementwise_backward(_relu_backward, dy, y, out=out)


def leaky_relu(x, negative_slope, *, out=None):
    return _elementwise(_leaky_relu, x, x.dtype.type(negative_slope), out=out)


def leaky_relu_backward(dy, x, negative_slope, *, out=None):
    return _elementwise_backward(_leaky_relu_backward, dy, x, dy.dtype.type(negative_slope),
                                 out=out)


def elu(x, alpha, *, out=None):
    return _elementwise(_elu, x, x.dtype.type(alpha), out=out)


def elu_backward(dy, y, alpha, *, out=None):
    return _elementwise_backward(_elu_backward, dy, y, dy.dtype.type(alpha), out=out)


def sigmoid(x, *, out=None):
    return _elementwise(_sigmoid, x, out=out)


def sigmoid_backward(dy, y, *, out=None):
    return _elementwise_backward(_sigmoid_backward, dy, y, out=out)


def tanh(x, *, out=None):
    return _elementwise(_tanh, x, out=out)


def tanh_backward(dy, y, *, out=None):
    return _elementwise_backward(_tanh_backward, dy, y, out=out)


def softmax(x, *, out=None):
    y = output(out, x.shape, x.dtype)
    _softmax(x.dtype)[blocks_for(x.shape[0]), THREADS](x, y)
    return returned(out, y)


def softmax_backward(dy, y, *, out=None):
    dx = output(out, dy.shape, dy.dtype)
    _softmax_backward(dy.dtype)[blocks_for(dy.shape[0]), THREADS](dy, y, dx)
    return returned(out, dx)


# ---------------------------------------------------------------- maxout
# x viewed as (N, G, K, R): group g of pool size K, R = the trailing positions.


@kernel(lambda f: (f[:, :, :, ::1], f[:, :, ::1], i32[:, :, ::1]))
def _maxout(F):
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
def _maxout_backward(F):
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


def maxout(x, pool_size, *, out=None):
    n, g, r = _groups(x.shape, pool_size)
    y_shape = (n, g) + tuple(x.shape[2:])
    y, indices = outputs(out, [(y_shape, x.dtype), (y_shape, np.int32)])
    _maxout(x.dtype)[blocks_for(y.size), THREADS](
        x.reshape((n, g, pool_size, r)), y.reshape((n, g, r)), indices.reshape((n, g, r)))
    written_indices(indices, pool_size)   # its backward need not check them
    return returned(out, (y, indices))


def maxout_backward(dy, indices, pool_size, *, out=None):
    n, g = dy.shape[:2]
    r = math.prod(dy.shape[2:])   # (not dy.size // (n * g): g may be 0)
    dx = output(out, (n, g * pool_size) + tuple(dy.shape[2:]), dy.dtype)
    _maxout_backward(dy.dtype)[blocks_for(dx.size), THREADS](
        dy.reshape((n, g, r)), indices.reshape((n, g, r)), dx.reshape((n, g, pool_size, r)))
    return returned(out, dx)


# ---------------------------------------------------------------- dropout
# The mask is a hash of (seed, element index), the same on every backend (see
# reference.py). Numba widens integer arithmetic to 64 bits, so the 32-bit hash
# runs in uint64 with explicit masks, and every constant is a uint64 (mixing
# signed and unsigned would turn the arithmetic into floating point).

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
def _dropout(F):
    def dropout(x, y, mask, key, threshold, scale):
        for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
            bits = mix32((np.uint64(i) & _U32) ^ key) >> _S8
            m = scale if bits >= threshold else F(0)
            mask[i] = m
            y[i] = x[i] * m
    return dropout


@kernel(_backward)
def _multiply(F):
    def multiply(a, b, c):
        for i in range(cuda.grid(1), a.size, cuda.gridsize(1)):
            c[i] = a[i] * b[i]
    return multiply


def dropout(x, p, seed, *, out=None):
    y, mask = outputs(out, [(x.shape, x.dtype), (x.shape, x.dtype)])
    key = np.uint64(reference._mix32(np.uint32(seed)))
    _dropout(x.dtype)[blocks_for(x.size), THREADS](
        flat(x), flat(y), flat(mask), key, np.uint64(reference.dropout_threshold(p)),
        x.dtype.type(1 / (1 - p)))
    return returned(out, (y, mask))


def dropout_backward(dy, mask, *, out=None):
    return _elementwise_backward(_multiply, dy, mask, out=out)
