"""Dense algebra on the one GEMM kernel (gemm.py): matmul, linear and its backward."""

from ._arrays import view, views
from .gemm import BIAS_PER_COLUMN, Operand, gemm
from .reduce import sum_channels


def matmul(a, b, *, out):
    """c = a b."""
    (m, k), n = a.shape, b.shape[1]
    c = view(out)
    gemm(c, Operand(a, 0, k, 1), Operand(b, 0, n, 1), m, n, k)
    return out


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
