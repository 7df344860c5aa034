"""Convolution as im2col + GEMM, in a bounded workspace.

Forward: the images are unfolded a chunk at a time into a workspace,
cols[n] (C*kh*kw, OH*OW), and y[n] = W (K, C*kh*kw) cols[n] + b is one batched
GEMM over the chunk. The workspace holds as many images as fit in
WORKSPACE_BYTES (at least one), so memory stays bounded whatever the batch.

Backward, per chunk: dW += sum_n dy[n] cols[n]^T (a batch-summed GEMM, cols read
transposed through strides), then the workspace is reused for
dcols[n] = W^T dy[n] and folded back into dx by col2im. col2im is a gather: one
thread per input pixel sums the column entries that came from it, so nothing is
written twice and no atomics are needed.

A 1x1 kernel with stride 1 and no padding needs no unfolding: cols[n] is x[n].
"""

from numba import cuda

from .. import output_size
from ._arrays import scratch, view, views
from ._jit import THREADS, i64, image_grid, kernel
from .gemm import BIAS_PER_ROW, Operand, gemm, gemm_sum
from .reduce import sum_channels

WORKSPACE_BYTES = 256 << 20


def _geometry_signature(f):
    return (f[:, :, :, ::1], f[:, :, ::1]) + (i64,) * 9


@kernel(_geometry_signature)
def im2col_kernel(F):
    def im2col(x, cols, kh, kw, sh, sw, ph, pw, dh, dw, ow):
        """cols[n, (c, i, j), (oh, ow)] = x[n, c, oh*sh - ph + i*dh, ow*sw - pw + j*dw],
        0 in the padding. One thread per column entry, consecutive threads along the
        pixels, so the writes are coalesced."""
        images, channels, height, width = x.shape
        pixels = cols.shape[2]
        for n in range(cuda.blockIdx.z, images, cuda.gridDim.z):
            for row in range(cuda.blockIdx.y, channels * kh * kw, cuda.gridDim.y):
                c, i, j = row // (kh * kw), (row // kw) % kh, row % kw
                for p in range(cuda.grid(1), pixels, cuda.gridsize(1)):
                    h = (p // ow) * sh - ph + i * dh
                    w = (p % ow) * sw - pw + j * dw
                    inside = 0 <= h < height and 0 <= w < width
                    cols[n, row, p] = x[n, c, h, w] if inside else F(0)
    return im2col


@kernel(_geometry_signature)
def col2im_kernel(F):
    def col2im(x, cols, kh, kw, sh, sw, ph, pw, dh, dw, ow):
        """x[n, c, h, w] = the sum of the column entries im2col took from (h, w): tap (i, j)
        saw it from output (oh, ow) where oh*sh = h + ph - i*dh (and likewise for w)."""
        images, channels, height, width = x.shape
        oh_size = cols.shape[2] // ow
        for n in range(cuda.blockIdx.z, images, cuda.gridDim.z):
            for c in range(cuda.blockIdx.y, channels, cuda.gridDim.y):
                for q in range(cuda.grid(1), height * width, cuda.gridsize(1)):
                    h, w = q // width, q % width
                    total = F(0)
                    for i in range(kh):
                        hs = h + ph - i * dh
                        if hs >= 0 and hs % sh == 0 and hs // sh < oh_size:
                            for j in range(kw):
                                ws = w + pw - j * dw
                                if ws >= 0 and ws % sw == 0 and ws // sw < ow:
                                    row = (c * kh + i) * kw + j
                                    total += cols[n, row, (hs // sh) * ow + ws // sw]
                    x[n, c, h, w] = total
    return col2im


def _geometry(x_shape, kernel_size, stride, padding, dilation):
    """(kh, kw, sh, sw, ph, pw, dh, dw) and the output's (OH, OW); ph, pw are the leading
    pads (top, left)."""
    (kh, kw), (sh, sw), (dh, dw) = kernel_size, stride, dilation
    ph, pw = padding[0], padding[2]
    oh = output_size(x_shape[2], kh, sh, padding[:2], dh)
    ow = output_size(x_shape[3], kw, sw, padding[2:], dw)
    return (kh, kw, sh, sw, ph, pw, dh, dw), (oh, ow)


def _unfold(x, cols, geometry, ow):
    n, c = x.shape[:2]
    im2col_kernel(x.dtype)[image_grid(cols.shape[2], c * geometry[0] * geometry[1], n), THREADS](
        x, cols, *geometry, ow)


def _fold(cols, x, geometry, ow):
    n, c, h, w = x.shape
    col2im_kernel(x.dtype)[image_grid(h * w, c, n), THREADS](x, cols, *geometry, ow)


def im2col(x, kernel_size, stride, padding, dilation, *, out):
    geometry, (_, ow) = _geometry(x.shape, kernel_size, stride, padding, dilation)
    cols = view(out)
    _unfold(x, cols, geometry, ow)
    return out


def col2im(cols, input_shape, kernel_size, stride, padding, dilation, *, out):
    geometry, (_, ow) = _geometry(input_shape, kernel_size, stride, padding, dilation)
    x = view(out)
    _fold(cols, x, geometry, ow)
    return out


class _Columns:
    """The unfolded input of a convolution, a chunk of images at a time."""

    def __init__(self, x, weight, stride, padding, dilation):
        self.x = x
        self.geometry, (oh, self.ow) = _geometry(x.shape, weight.shape[2:], stride, padding,
                                                 dilation)
        self.rows = weight.shape[1] * weight.shape[2] * weight.shape[3]
        self.pixels = oh * self.ow
        # A 1x1 kernel at stride 1 without padding sees x itself.
        self.identity = weight.shape[2:] == (1, 1) and stride == (1, 1) and padding == (0, 0, 0, 0)
        per_image = max(1, self.rows * self.pixels * x.dtype.itemsize)   # 0 channels: 0
        self.chunk = x.shape[0] if self.identity else max(1, WORKSPACE_BYTES // per_image)

    def chunks(self, unfold=True):
        """(start, stop, cols) for each chunk; cols is the workspace (or x), holding the
        chunk's columns (unless unfold is False: then only room for them)."""
        for start in range(0, self.x.shape[0], self.chunk):
            stop = min(start + self.chunk, self.x.shape[0])
            x = self.x[start:stop]
            if self.identity:
                yield start, stop, x.reshape((stop - start, self.rows, self.pixels))
            else:
                cols = scratch("conv_workspace", (stop - start, self.rows, self.pixels),
                               x.dtype)
                if unfold:
                    _unfold(x, cols, self.geometry, self.ow)
                yield start, stop, cols

    def fold(self, dcols, dx):
        """dx (a chunk of it) from the columns' gradient."""
        _fold(dcols, dx, self.geometry, self.ow)


def conv2d(x, weight, bias, stride, padding, dilation, *, out):
    k = weight.shape[0]
    columns = _Columns(x, weight, stride, padding, dilation)
    rows, pixels = columns.rows, columns.pixels
    y = view(out)
    w2 = Operand(weight, 0, rows, 1)                      # W as (K, C*kh*kw)
    for start, stop, cols in columns.chunks():
        gemm(y[start:stop], w2, Operand(cols, rows * pixels, pixels, 1), k, pixels, rows,
             batches=stop - start, c_z=k * pixels, bias=bias, bias_per=BIAS_PER_ROW)
    return out


def conv2d_backward(dy, x, weight, stride, padding, dilation, need_dx, *, out):
    k = weight.shape[0]
    columns = _Columns(x, weight, stride, padding, dilation)
    rows, pixels = columns.rows, columns.pixels
    dx, dweight, dbias = views(out)     # dweight and dbias None: not asked for
    if dweight is not None:
        sum_channels(dy.reshape((dy.shape[0], k, pixels)), dbias)
    for start, stop, cols in columns.chunks(unfold=dweight is not None):
        images = stop - start
        dy_chunk = Operand(dy[start:stop], k * pixels, pixels, 1)      # dy[n] as (K, OH*OW)
        # dW += sum_n dy[n] cols[n]^T
        if dweight is not None:
            gemm_sum(dweight, dy_chunk, Operand(cols, rows * pixels, 1, pixels), k, rows,
                     pixels, images, accumulate=start > 0)
        if need_dx:
            # dcols[n] = W^T dy[n], into the workspace cols no longer needs, then folded.
            # (For a 1x1 kernel cols is x itself and dcols is dx.)
            dcols = dx[start:stop] if columns.identity else cols
            gemm(dcols, Operand(weight, 0, 1, rows), dy_chunk, rows, pixels, k,
                 batches=images, c_z=rows * pixels)
            if not columns.identity:
                columns.fold(cols, dx[start:stop])
    return out
