"""Nearest-neighbour upsampling: one thread per output value forward, one per input
value backward (a gather of its block, no atomics)."""

from numba import cuda

from ._arrays import view
from ._jit import THREADS, i64, image_grid, kernel


@kernel(lambda f: (f[:, :, :, ::1], f[:, :, :, ::1], i64, i64))
def upsample_kernel(F):
    def upsample(x, y, sh, sw):
        """y[n, c, h, w] = x[n, c, h // sh, w // sw]."""
        images, channels, height, width = y.shape
        for n in range(cuda.blockIdx.z, images, cuda.gridDim.z):
            for c in range(cuda.blockIdx.y, channels, cuda.gridDim.y):
                for q in range(cuda.grid(1), height * width, cuda.gridsize(1)):
                    h, w = q // width, q % width
                    y[n, c, h, w] = x[n, c, h // sh, w // sw]
    return upsample


@kernel(lambda f: (f[:, :, :, ::1], f[:, :, :, ::1], i64, i64))
def upsample_backward_kernel(F):
    def upsample_backward(dy, dx, sh, sw):
        """dx[n, c, h, w] = the sum of dy over the sh x sw block it was copied to."""
        images, channels, height, width = dx.shape
        for n in range(cuda.blockIdx.z, images, cuda.gridDim.z):
            for c in range(cuda.blockIdx.y, channels, cuda.gridDim.y):
                for q in range(cuda.grid(1), height * width, cuda.gridsize(1)):
                    h, w = q // width, q % width
                    total = F(0)
                    for i in range(sh):
                        for j in range(sw):
                            total += dy[n, c, h * sh + i, w * sw + j]
                    dx[n, c, h, w] = total
    return upsample_backward


def upsample_nearest2d(x, scale_factor, *, out):
    (n, c, h, w), (sh, sw) = x.shape, scale_factor
    y = view(out)
    upsample_kernel(x.dtype)[image_grid(h * sh * w * sw, c, n), THREADS](x, y, sh, sw)
    return out


def upsample_nearest2d_backward(dy, scale_factor, *, out):
    (n, c, h, w), (sh, sw) = dy.shape, scale_factor
    dx = view(out)
    upsample_backward_kernel(dy.dtype)[image_grid(h // sh * (w // sw), c, n), THREADS](
        dy, dx, sh, sw)
    return out
