"""Losses and count_correct. Each loss kernel sums its terms into one partial sum
per block (shared-memory reduction); the partials come to the host in the op's
one copy and are added there in float64. Backward ops are elementwise."""

import math

import numpy as np
from numba import cuda

from ._arrays import flat, output, returned
from ._jit import THREADS, blocks_for, i32, i64, kernel
from .activations import sigmoid_of
from .reduce import block_sum, partial_sums, total


@kernel(lambda f: (f[:, ::1], i32[::1], f[:, ::1], f[::1]))
def _softmax_cross_entropy(F):
    def softmax_cross_entropy(logits, labels, probs, partials):
        """Per row (one thread each): z = logits - max, lse = log sum exp z,
        probs = exp(z - lse), loss = lse - z[label]; the losses summed per block."""
        buf = cuda.shared.array(THREADS, F)
        loss = F(0)
        for r in range(cuda.grid(1), logits.shape[0], cuda.gridsize(1)):
            top = logits[r, 0]
            for j in range(1, logits.shape[1]):
                top = max(top, logits[r, j])
            sum_exp = F(0)
            for j in range(logits.shape[1]):
                sum_exp += math.exp(logits[r, j] - top)
            lse = math.log(sum_exp)
            for j in range(logits.shape[1]):
                probs[r, j] = math.exp(logits[r, j] - top - lse)
            loss += lse - (logits[r, labels[r]] - top)
        loss = block_sum(buf, loss)
        if cuda.threadIdx.x == 0:
            partials[cuda.blockIdx.x] = loss
    return softmax_cross_entropy


@kernel(lambda f: (f[:, ::1], i32[::1], f[:, ::1]))
def _softmax_cross_entropy_backward(F):
    def softmax_cross_entropy_backward(probs, labels, grad):
        """(probs - onehot(label)) / N."""
        rows, classes = probs.shape
        for q in range(cuda.grid(1), probs.size, cuda.gridsize(1)):
            r, j = q // classes, q % classes
            target = F(1) if labels[r] == j else F(0)
            grad[r, j] = (probs[r, j] - target) / F(rows)
    return softmax_cross_entropy_backward


def softmax_cross_entropy(logits, labels, *, out=None):
    probs = output(out, logits.shape, logits.dtype)
    blocks = blocks_for(logits.shape[0])
    partials = partial_sums("loss", blocks, logits.dtype)
    _softmax_cross_entropy(logits.dtype)[blocks, THREADS](logits, labels, probs, partials)
    return total(partials) / logits.shape[0], returned(out, probs)


def softmax_cross_entropy_backward(probs, labels, *, out=None):
    grad = output(out, probs.shape, probs.dtype)
    _softmax_cross_entropy_backward(probs.dtype)[blocks_for(probs.size), THREADS](
        probs, labels, grad)
    return returned(out, grad)


# ---------------------------------------------------------------- elementwise losses
# One template makes the kernel of each: term(F) is the device function of one
# element's loss, or of its gradient times the element count.


def _loss_kernel(name, term):
    def template(F):
        element = term(F)

        def loss(pred, target, partials):
            buf = cuda.shared.array(THREADS, F)
            s = F(0)
            for i in range(cuda.grid(1), pred.size, cuda.gridsize(1)):
                s += element(pred[i], target[i])
            s = block_sum(buf, s)
            if cuda.threadIdx.x == 0:
                partials[cuda.blockIdx.x] = s
        return loss
    template.__name__ = name
    return kernel(lambda f: (f[::1], f[::1], f[::1]))(template)


def _gradient_kernel(name, term):
    def template(F):
        element = term(F)

        def gradient(pred, target, grad, inv_size):
            for i in range(cuda.grid(1), pred.size, cuda.gridsize(1)):
                grad[i] = element(pred[i], target[i]) * inv_size
        return gradient
    template.__name__ = name
    return kernel(lambda f: (f[::1], f[::1], f[::1], f))(template)


def _bce_with_logits_term(F):
    @cuda.jit(device=True, inline="always")
    def term(z, t):
        """max(z, 0) - z t + log(1 + exp(-|z|)), stable for any z."""
        return max(z, F(0)) - z * t + math.log1p(math.exp(-abs(z)))
    return term


def _bce_with_logits_grad(F):
    @cuda.jit(device=True, inline="always")
    def grad(z, t):
        return sigmoid_of(z, F(0.5), F(1)) - t
    return grad


def _bce_term(F):
    @cuda.jit(device=True, inline="always")
    def term(p, t):
        """-(t log p + (1 - t) log(1 - p)), each log clamped at -100 as PyTorch."""
        log_p = max(math.log(p), F(-100)) if p > F(0) else F(-100)
        log_1mp = max(math.log1p(-p), F(-100)) if p < F(1) else F(-100)
        return -(t * log_p + (F(1) - t) * log_1mp)
    return term


def _bce_grad(F):
    @cuda.jit(device=True, inline="always")
    def grad(p, t):
        return (p - t) / max(p * (F(1) - p), F(1e-12))
    return grad


def _mse_term(F):
    @cuda.jit(device=True, inline="always")
    def term(p, t):
        return (p - t) * (p - t)
    return term


def _mse_grad(F):
    @cuda.jit(device=True, inline="always")
    def grad(p, t):
        return F(2) * (p - t)
    return grad


_LOSSES = {
    "bce_with_logits": (_loss_kernel("bce_with_logits", _bce_with_logits_term),
                        _gradient_kernel("bce_with_logits_backward", _bce_with_logits_grad)),
    "bce": (_loss_kernel("bce", _bce_term), _gradient_kernel("bce_backward", _bce_grad)),
    "mse": (_loss_kernel("mse", _mse_term), _gradient_kernel("mse_backward", _mse_grad)),
}


def _mean_loss(name, pred, target):
    blocks = blocks_for(pred.size)
    partials = partial_sums("loss", blocks, pred.dtype)
    _LOSSES[name][0](pred.dtype)[blocks, THREADS](flat(pred), flat(target), partials)
    return total(partials) / pred.size


def _loss_gradient(name, pred, target, out):
    grad = output(out, pred.shape, pred.dtype)
    _LOSSES[name][1](pred.dtype)[blocks_for(pred.size), THREADS](
        flat(pred), flat(target), flat(grad), pred.dtype.type(1 / pred.size))
    return returned(out, grad)


def bce_with_logits(logits, targets):
    return _mean_loss("bce_with_logits", logits, targets)


def bce_with_logits_backward(logits, targets, *, out=None):
    return _loss_gradient("bce_with_logits", logits, targets, out)


def bce(probs, targets):
    return _mean_loss("bce", probs, targets)


def bce_backward(probs, targets, *, out=None):
    return _loss_gradient("bce", probs, targets, out)


def mse(pred, target):
    return _mean_loss("mse", pred, target)


def mse_backward(pred, target, *, out=None):
    return _loss_gradient("mse", pred, target, out)


# ---------------------------------------------------------------- accuracy


@kernel(lambda f: (f[:, ::1], i32[::1], i64[::1]))
def _count_correct(F):
    def count_correct(scores, labels, partials):
        """Rows whose first maximum (a NaN counts as the maximum, as NumPy's argmax) is at
        the label, counted per block."""
        buf = cuda.shared.array(THREADS, np.int64)
        hits = 0
        for r in range(cuda.grid(1), scores.shape[0], cuda.gridsize(1)):
            best, where = scores[r, 0], 0
            for j in range(1, scores.shape[1]):
                v = scores[r, j]
                if best == best and (v > best or v != v):
                    best, where = v, j
            if where == labels[r]:
                hits += 1
        hits = block_sum(buf, hits)
        if cuda.threadIdx.x == 0:
            partials[cuda.blockIdx.x] = hits
    return count_correct


def count_correct(scores, labels):
    blocks = blocks_for(scores.shape[0])
    partials = partial_sums("count", blocks, np.int64)
    _count_correct(scores.dtype)[blocks, THREADS](scores, labels, partials)
    return int(total(partials))
