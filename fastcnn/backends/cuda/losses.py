"""Losses and count_correct. Each loss kernel sums its terms into one partial sum
per block (shared-memory reduction); the partials come to the host in the op's
one copy and are added there in float64. Backward ops are elementwise.

Labels are range-checked by the kernels that read them, not beforehand: a check
of its own would make the host wait for the GPU and copy once more, three times
a training step. A label outside [0, C) is skipped and counted; the count comes
to the host in the op's one copy, and the op raises the same ValueError as the
CPU (only then looking at the labels again for the range they span).
softmax_cross_entropy_backward copies nothing, so it marks the gradient rows of
bad labels with NaN instead; count_correct(into=) likewise copies nothing and
does not count them.
"""

import math

import numpy as np
from numba import cuda

from ._arrays import asarray, check_range, flat, scratch, view
from ._jit import THREADS, blocks_for, boolean, i32, i64, kernel
from .elementwise import sigmoid_of
from .reduce import block_sum, total


# ---------------------------------------------------------------- labels


@kernel(lambda f: (f[::1], i32[::1]), dtypes=(np.int64, np.uint8))
def labels_as_int32_kernel(F):
    lo, hi = max(np.iinfo(F).min, -2**31), min(np.iinfo(F).max, 2**31 - 1)

    def labels_as_int32(labels, out):
        """out = labels, those beyond int32 clamped to it (still outside any class range)."""
        for i in range(cuda.grid(1), labels.size, cuda.gridsize(1)):
            out[i] = min(max(labels[i], F(lo)), F(hi))
    return labels_as_int32


def check_labels(op, labels, classes):
    """labels as the int32 array the loss kernels read, whose range they check (so none
    is checked here: no copy, no wait). Only used until the next call (a scratch buffer)."""
    if labels.dtype == np.int32:
        return labels
    as_int32 = scratch("labels_int32", labels.shape, np.int32)
    labels_as_int32_kernel(labels.dtype)[blocks_for(labels.size), THREADS](labels, as_int32)
    return as_int32


def _raise_if_bad(op, bad, labels, classes):
    """When a kernel found labels outside [0, classes): the CPU's ValueError, naming the
    range they span (looked up only now, on this error path)."""
    if bad:
        check_range(op, "labels", labels, classes)


# ---------------------------------------------------------------- softmax cross-entropy


@kernel(lambda f: (f[:, ::1], i32[::1], f[:, ::1], f[:, ::1]))
def softmax_cross_entropy_kernel(F):
    def softmax_cross_entropy(logits, labels, probs, partials):
        """Per row (one thread each): z = logits - max, lse = log sum exp z,
        probs = exp(z - lse), loss = lse - z[label]; the losses summed per block into
        partials[0], the labels outside [0, C) counted into partials[1]."""
        buf = cuda.shared.array(THREADS, F)
        classes = logits.shape[1]
        loss, bad = F(0), F(0)
        for r in range(cuda.grid(1), logits.shape[0], cuda.gridsize(1)):
            top = logits[r, 0]
            for j in range(1, classes):
                top = max(top, logits[r, j])
            sum_exp = F(0)
            for j in range(classes):
                sum_exp += math.exp(logits[r, j] - top)
            lse = math.log(sum_exp)
            for j in range(classes):
                probs[r, j] = math.exp(logits[r, j] - top - lse)
            label = labels[r]
            if 0 <= label < classes:
                loss += lse - (logits[r, label] - top)
            else:
                bad += F(1)
        loss = block_sum(buf, loss)
        bad = block_sum(buf, bad)
        if cuda.threadIdx.x == 0:
            partials[0, cuda.blockIdx.x] = loss
            partials[1, cuda.blockIdx.x] = bad
    return softmax_cross_entropy


@kernel(lambda f: (f[:, ::1], i32[::1], f[:, ::1]))
def softmax_cross_entropy_backward_kernel(F):
    def softmax_cross_entropy_backward(probs, labels, grad):
        """(probs - onehot(label)) / N; NaN across a row whose label is outside [0, C)."""
        rows, classes = probs.shape
        for q in range(cuda.grid(1), probs.size, cuda.gridsize(1)):
            r, j = q // classes, q % classes
            label = labels[r]
            if 0 <= label < classes:
                target = F(1) if label == j else F(0)
                grad[r, j] = (probs[r, j] - target) / F(rows)
            else:
                grad[r, j] = F(math.nan)
    return softmax_cross_entropy_backward


def softmax_cross_entropy(logits, labels, *, out):
    op = "softmax_cross_entropy"
    probs = view(out)
    blocks = blocks_for(logits.shape[0])
    partials = scratch("loss", (2, blocks), logits.dtype)
    softmax_cross_entropy_kernel(logits.dtype)[blocks, THREADS](logits, labels, probs, partials)
    losses, bad = partials.copy_to_host()   # the op's one copy
    _raise_if_bad(op, bad.any(), labels, logits.shape[1])
    return math.fsum(losses.astype(np.float64)) / logits.shape[0], out


def softmax_cross_entropy_backward(probs, labels, *, out):
    grad = view(out)
    softmax_cross_entropy_backward_kernel(probs.dtype)[blocks_for(probs.size), THREADS](
        probs, labels, grad)
    return out


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
    template.__name__ = name + "_kernel"
    return kernel(lambda f: (f[::1], f[::1], f[::1]))(template)


def _gradient_kernel(name, term):
    def template(F):
        element = term(F)

        def gradient(pred, target, grad, inv_size):
            for i in range(cuda.grid(1), pred.size, cuda.gridsize(1)):
                grad[i] = element(pred[i], target[i]) * inv_size
        return gradient
    template.__name__ = name + "_kernel"
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
    def clamped_log(v, log_v):
        """log_v (the log of v) clamped at -100 as PyTorch: -100 at v = 0, NaN for a v
        below 0 or NaN (as the reference's NumPy), not a finite -100."""
        if v > F(0):
            return max(log_v, F(-100))
        return F(-100) if v == F(0) else F(math.nan)

    @cuda.jit(device=True, inline="always")
    def term(p, t):
        """-(t log p + (1 - t) log(1 - p)), each log clamped at -100."""
        log_p = clamped_log(p, math.log(p) if p > F(0) else F(0))
        log_1mp = clamped_log(F(1) - p, math.log1p(-p) if p < F(1) else F(0))
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
    partials = scratch("loss", (blocks,), pred.dtype)
    _LOSSES[name][0](pred.dtype)[blocks, THREADS](flat(pred), flat(target), partials)
    return total(partials) / pred.size


def _loss_gradient(name, pred, target, out):
    grad = view(out)
    _LOSSES[name][1](pred.dtype)[blocks_for(pred.size), THREADS](
        flat(pred), flat(target), flat(grad), pred.dtype.type(1 / pred.size))
    return out


def bce_with_logits(logits, targets):
    return _mean_loss("bce_with_logits", logits, targets)


def bce_with_logits_backward(logits, targets, *, out):
    return _loss_gradient("bce_with_logits", logits, targets, out)


def bce(probs, targets):
    return _mean_loss("bce", probs, targets)


def bce_backward(probs, targets, *, out):
    return _loss_gradient("bce", probs, targets, out)


def mse(pred, target):
    return _mean_loss("mse", pred, target)


def mse_backward(pred, target, *, out):
    return _loss_gradient("mse", pred, target, out)


# ---------------------------------------------------------------- accuracy


@kernel(lambda f: (f[:, ::1], i32[::1], i64[:, ::1], i64[::1], boolean))
def count_correct_kernel(F):
    def count_correct(scores, labels, partials, into, add_into):
        """Rows whose first maximum (a NaN counts as the maximum, as NumPy's argmax) is at
        the label, counted per block into partials[0] and the labels outside [0, C) into
        partials[1]; with add_into, the blocks' counts are added to into[0] instead."""
        buf = cuda.shared.array(THREADS, np.int64)
        hits, bad = 0, 0
        for r in range(cuda.grid(1), scores.shape[0], cuda.gridsize(1)):
            best, where = scores[r, 0], 0
            for j in range(1, scores.shape[1]):
                v = scores[r, j]
                if best == best and (v > best or v != v):
                    best, where = v, j
            label = labels[r]
            if where == label:
                hits += 1
            if not 0 <= label < scores.shape[1]:
                bad += 1
        hits = block_sum(buf, hits)
        bad = block_sum(buf, bad)
        if cuda.threadIdx.x == 0:
            if add_into:   # integers: the order of the blocks' additions does not matter
                cuda.atomic.add(into, 0, hits)
            else:
                partials[0, cuda.blockIdx.x] = hits
                partials[1, cuda.blockIdx.x] = bad
    return count_correct


def count_correct(scores, labels, *, into=None):
    blocks = blocks_for(scores.shape[0])
    partials = scratch("count", (2, blocks), np.int64)
    add_into = into is not None
    count_correct_kernel(scores.dtype)[blocks, THREADS](
        scores, labels, partials, asarray(into) if add_into else partials[0], add_into)
    if add_into:
        return into
    hits, bad = partials.copy_to_host()   # the op's one copy
    _raise_if_bad("count_correct", bad.any(), labels, scores.shape[1])
    return int(hits.sum())
