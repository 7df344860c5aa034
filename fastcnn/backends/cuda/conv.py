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

With groups, each product is one GEMM per group over the chunk's images, on group
g's block of the columns and of the weight's rows, read in place through offsets and
strides. Depthwise convolutions (groups == C) run on direct kernels (depthwise.py).

A 1x1 kernel with stride 1 and no padding needs no unfolding: cols[n] is x[n].
"""

from numba import cuda

from .. import output_size
from . import depthwise
from ._arrays import flat, scratch, view, views
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
    """The unfolded input of a convolution, a chunk of images at a time: cols[n] holds
    every channel's rows (C*kh*kw), group g's block of them at g*rows."""

    def __init__(self, x, weight, stride, padding, dilation, groups, out_hw):
        self.x = x
        self.geometry, _ = _geometry(x.shape, weight.shape[2:], stride, padding, dilation)
        self.ow = out_hw[1]   # the output's extent is the caller's (conv_transpose2d's dx)
        self.rows = weight.shape[1] * weight.shape[2] * weight.shape[3]   # one group's
        self.all_rows = groups * self.rows
        self.pixels = out_hw[0] * out_hw[1]
        # A 1x1 kernel at stride 1 without padding sees x itself (when the output is x's
        # size: a transposed conv's output_padding can make x a row or column larger).
        self.identity = (weight.shape[2:] == (1, 1) and stride == (1, 1)
                         and padding == (0, 0, 0, 0) and tuple(out_hw) == x.shape[2:])
        per_image = max(1, self.all_rows * self.pixels * x.dtype.itemsize)   # 0 channels: 0
        self.chunk = x.shape[0] if self.identity else max(1, WORKSPACE_BYTES // per_image)

    def chunks(self, unfold=True):
        """(start, stop, cols) for each chunk; cols is the workspace (or x), holding the
        chunk's columns (unless unfold is False: then only room for them)."""
        for start in range(0, self.x.shape[0], self.chunk):
            stop = min(start + self.chunk, self.x.shape[0])
            x = self.x[start:stop]
            if self.identity:
                yield start, stop, x.reshape((stop - start, self.all_rows, self.pixels))
            else:
                cols = scratch("conv_workspace", (stop - start, self.all_rows, self.pixels),
                               x.dtype)
                if unfold:
                    _unfold(x, cols, self.geometry, self.ow)
                yield start, stop, cols

    def group(self, cols, g):
        """Group g's rows of every image of a chunk's cols, as a GEMM operand (rows x pixels)."""
        return Operand(flat(cols)[g * self.rows * self.pixels:], self.all_rows * self.pixels,
                       self.pixels, 1)

    def fold(self, dcols, dx):
        """dx (a chunk of it) from the columns' gradient."""
        _fold(dcols, dx, self.geometry, self.ow)


def _group_rows(a, g, count, per_image=None):
    """Group g's block of count channels of an (N, C, ...) array (its images per_image
    apart), or of count rows of a weight (K, ...) when per_image is None, as a GEMM
    operand (count x the rest)."""
    row = a.size // (a.shape[0] * a.shape[1]) if per_image is not None else a.size // a.shape[0]
    return Operand(flat(a)[g * count * row:], per_image or 0, row, 1)


def _forward(columns, weight, bias, groups, y):
    """y[n, group] = W[group] cols[n, group] (+ bias), each chunk of columns and group."""
    k, rows, pixels = weight.shape[0], columns.rows, columns.pixels
    kg = k // groups
    for start, stop, cols in columns.chunks():
        for g in range(groups):
            gemm(flat(y[start:stop])[g * kg * pixels:], _group_rows(weight, g, kg),
                 columns.group(cols, g), kg, pixels, rows, batches=stop - start,
                 c_z=k * pixels, bias=None if bias is None else bias[g * kg:(g + 1) * kg],
                 bias_per=BIAS_PER_ROW)
        yield start, stop, cols


def _input_grad(columns, cols, dy, weight, groups, start, stop, dx):
    """dx[start:stop] from dy[start:stop]: dcols[n, group] = W[group]^T dy[n, group] into
    the workspace cols, folded back (for a 1x1 kernel cols is x itself and dcols is dx)."""
    k, rows, pixels = weight.shape[0], columns.rows, columns.pixels
    kg = k // groups
    dcols = dx[start:stop] if columns.identity else cols
    for g in range(groups):
        w_t = Operand(flat(weight)[g * kg * rows:], 0, 1, rows)
        gemm(flat(dcols)[g * rows * pixels:], w_t,
             _group_rows(dy[start:stop], g, kg, k * pixels), rows, pixels, kg,
             batches=stop - start, c_z=columns.all_rows * pixels)
    if not columns.identity:
        columns.fold(cols, dx[start:stop])


def _weight_grad(columns, cols, dy, groups, start, stop, dweight):
    """dweight[group] (+)= sum_n dy[n, group] cols[n, group]^T over a chunk."""
    k, rows, pixels = dweight.shape[0], columns.rows, columns.pixels
    kg = k // groups
    for g in range(groups):
        cols_t = Operand(flat(cols)[g * rows * pixels:], columns.all_rows * pixels, 1, pixels)
        gemm_sum(flat(dweight)[g * kg * rows:(g + 1) * kg * rows],
                 _group_rows(dy[start:stop], g, kg, k * pixels), cols_t, kg, rows, pixels,
                 stop - start, accumulate=start > 0)


def conv2d(x, weight, bias, stride, padding, dilation, groups, *, out):
    y = view(out)
    if depthwise.applies(x.shape, weight.shape, groups):
        depthwise.conv2d(x, weight, bias, stride, padding, dilation, y)
        return out
    columns = _Columns(x, weight, stride, padding, dilation, groups, y.shape[2:])
    for _ in _forward(columns, weight, bias, groups, y):
        pass
    return out


def conv2d_backward(dy, x, weight, stride, padding, dilation, groups, need_dx, *, out):
    dx, dweight, dbias = views(out)     # dweight and dbias None: not asked for
    k = weight.shape[0]
    if dweight is not None:
        sum_channels(dy.reshape((dy.shape[0], k, dy.size // (dy.shape[0] * k))), dbias)
    if depthwise.applies(x.shape, weight.shape, groups):
        if dweight is not None:
            depthwise.weight_grad(dy, x, stride, padding, dilation, dweight)
        if need_dx:
            depthwise.input_grad(dy, weight, None, stride, padding, dilation, dx)
        return out
    columns = _Columns(x, weight, stride, padding, dilation, groups, dy.shape[2:])
    for start, stop, cols in columns.chunks(unfold=dweight is not None):
        if dweight is not None:
            _weight_grad(columns, cols, dy, groups, start, stop, dweight)
        if need_dx:   # into the workspace cols no longer needs
            _input_grad(columns, cols, dy, weight, groups, start, stop, dx)
    return out


# ---------------------------------------------------------------- transposed convolution
# conv_transpose2d is conv2d run backwards, with the same weight, stride, padding and
# dilation: its forward is the dx of the conv2d from its output's shape to its input's,
# its dx that conv2d's forward of dy, its dweight that conv2d's weight gradient with x
# and dy in each other's roles.


@kernel(lambda f: (f[:, :, ::1], f[::1]))
def add_bias_kernel(F):
    def add_bias(y, bias):
        """y[n, c, p] += bias[c]."""
        for n in range(cuda.blockIdx.z, y.shape[0], cuda.gridDim.z):
            for c in range(cuda.blockIdx.y, y.shape[1], cuda.gridDim.y):
                for p in range(cuda.grid(1), y.shape[2], cuda.gridsize(1)):
                    y[n, c, p] += bias[c]
    return add_bias


def conv_transpose2d(x, weight, bias, stride, padding, groups, dilation, *, out):
    y = view(out)
    if depthwise.applies(y.shape, weight.shape, groups):
        depthwise.input_grad(x, weight, bias, stride, padding, dilation, y)
        return out
    columns = _Columns(y, weight, stride, padding, dilation, groups, x.shape[2:])
    for start in range(0, y.shape[0], columns.chunk):
        stop = min(start + columns.chunk, y.shape[0])
        cols = None if columns.identity else scratch(
            "conv_workspace", (stop - start, columns.all_rows, columns.pixels), y.dtype)
        _input_grad(columns, cols, x, weight, groups, start, stop, y)
    if bias is not None:
        n, k, h, w = y.shape
        add_bias_kernel(y.dtype)[image_grid(h * w, k, n), THREADS](
            y.reshape((n, k, h * w)), bias)
    return out


def conv_transpose2d_backward(dy, x, weight, stride, padding, groups, dilation, need_dx, *,
                              out):
    dx, dweight, dbias = views(out)
    k = dy.shape[1]
    sum_channels(dy.reshape((dy.shape[0], k, dy.size // (dy.shape[0] * k))), dbias)
    if depthwise.applies(dy.shape, weight.shape, groups):
        depthwise.weight_grad(x, dy, stride, padding, dilation, dweight)
        if need_dx:
            depthwise.conv2d(dy, weight, None, stride, padding, dilation, dx)
        return out
    # dx and dweight from one unfolding of dy
    columns = _Columns(dy, weight, stride, padding, dilation, groups, x.shape[2:])
    chunks = (_forward(columns, weight, None, groups, dx) if need_dx else columns.chunks())
    for start, stop, cols in chunks:
        _weight_grad(columns, cols, x, groups, start, stop, dweight)
    return out
