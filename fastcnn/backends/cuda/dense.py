"""Dense algebra on the one GEMM kernel (gemm.py): matmul, linear and its backward."""

from ._arrays import output, outputs, returned
from .gemm import BIAS_PER_COLUMN, Operand, gemm
from .reduce import sum_channels


def matmul(a, b, *, out=None):
    """c = a b."""
    (m, k), n = a.shape, b.shape[1]
    c = output(out, (m, n), a.dtype)
    gemm(c, Operand(a, 0, k, 1), Operand(b, 0, n, 1), m, n, k)
    return returned(out, c)


def linear(x, weight, bias, *, out=None):
    """y = x weight^T + bias, weight read transposed through its strides."""
    (batch, fin), fout = x.shape, weight.shape[0]
    y = output(out, (batch, fout), x.dtype)
    gemm(y, Operand(x, 0, fin, 1), Operand(weight, 0, 1, fin), batch, fout, fin,
         bias=bias, bias_per=BIAS_PER_COLUMN)
    return returned(out, y)


def linear_backward(dy, x, weight, *, out=None):
    """(dx, dweight, dbias) = (dy weight, dy^T x, dy summed over the batch)."""
    (batch, fin), fout = x.shape, weight.shape[0]
    dx, dweight, dbias = outputs(out, [(x.shape, x.dtype), (weight.shape, x.dtype),
                                       ((fout,), x.dtype)])
    gemm(dx, Operand(dy, 0, fout, 1), Operand(weight, 0, fin, 1), batch, fin, fout)
    gemm(dweight, Operand(dy, 0, 1, fout), Operand(x, 0, fin, 1), fout, fin, batch)
    sum_channels(dy.reshape((batch, fout, 1)), dbias)
    return returned(out, (dx, dweight, dbias))
