"""a *= factor on a 1-D device array: the one GPU kernel of fastcnn.distributed, for
CUDA-aware MPI, where the summed gradients never leave the GPU. Its own module so that
numba is imported only when it is needed (and so the simulator can run it: it swaps
the module-level name ``cuda`` for its own inside kernels)."""

from numba import cuda

THREADS = 256


@cuda.jit
def _scale(a, factor):
    for i in range(cuda.grid(1), a.size, cuda.gridsize(1)):
        a[i] *= factor


def scale(a, factor):
    """a *= factor, queued on the default stream."""
    _scale[min(-(-a.size // THREADS), 1024), THREADS](a, a.dtype.type(factor))
