"""Device arrays: creating them, adopting other libraries' CUDA arrays, checking indices.

Arrays are Numba device arrays. Anything exposing ``__cuda_array_interface__``
(CuPy, PyTorch CUDA tensors) is adopted as a view, without a copy when it is
C-contiguous. All kernels run on the CUDA default stream; adopted arrays are
not synchronised on their own stream (that would stall the host on every op),
so work queued on another library's *non-default* stream must be finished
before its arrays are handed to fastcnn.
"""

import ctypes
import math
import threading
import weakref

import numpy as np
from numba import cuda

from .. import _numpy, on_gpu
from ._jit import SIMULATOR, THREADS, blocks_for, boolean, i32, kernel

DEVICE = "cuda"

_gpu_found = None


def _require_gpu():
    """Fail clearly, once, when there is no GPU to put arrays on."""
    global _gpu_found
    if _gpu_found is None:
        _gpu_found = cuda.is_available()
    if not _gpu_found:
        raise RuntimeError(
            "no CUDA GPU was found (numba.cuda.is_available() is False): check the NVIDIA "
            "driver with nvidia-smi; drivers older than CUDA 13 need "
            'pip install "fastcnn[gpu-cu12]"; to run the kernels on the CPU instead, set '
            "NUMBA_ENABLE_CUDASIM=1 before numba is imported (Numba's CUDA simulator, slow)")


def is_array(a):
    """True for arrays in GPU memory (Numba's, also the simulator's; CuPy; PyTorch CUDA)."""
    return on_gpu(a)


def asarray(a):
    """a as a C-contiguous Numba device array: a itself, a view of another library's
    CUDA array, or a contiguous device copy of a strided one. Host data is refused
    (moving it is fastcnn.to_device's job, so copies are never silent)."""
    if not is_array(a):
        raise TypeError(f"a {type(a).__name__} is not a CUDA array; move host data to the "
                        f"GPU with fastcnn.to_device")
    _require_gpu()
    if not getattr(a, "__cuda_ndarray__", False):
        a = _adopt(a)
    return a if a.is_c_contiguous() else _contiguous_copy(a)


def _adopt(a):
    """A Numba view of another library's CUDA array (no copy, no synchronisation)."""
    if not SIMULATOR:
        return cuda.as_cuda_array(a, sync=False)
    # The simulator has no as_cuda_array; its "device" memory is host memory, so the
    # interface's pointer is read as such (this lets the tests stand in for CuPy/PyTorch).
    interface = a.__cuda_array_interface__
    dtype, shape = np.dtype(interface["typestr"]), tuple(interface["shape"])
    strides = interface.get("strides") or tuple(
        dtype.itemsize * math.prod(shape[i + 1:]) for i in range(len(shape)))
    extent = sum((n - 1) * s for n, s in zip(shape, strides)) + dtype.itemsize
    memory = (ctypes.c_char * extent).from_address(interface["data"][0])
    host = np.lib.stride_tricks.as_strided(np.frombuffer(memory, dtype), shape, strides)
    from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray
    return FakeCUDAArray(host)


def empty(shape, dtype):
    _require_gpu()
    return cuda.device_array(shape, np.dtype(dtype))


def zeros(shape, dtype):
    a = empty(shape, dtype)
    fill(a, 0)
    return a


def to_device(a):
    """a copied to the GPU as a Numba device array; CUDA arrays come back as they are."""
    if is_array(a):
        return a
    _require_gpu()
    a = np.asarray(a)   # in native byte order: the kernels read no other
    return cuda.to_device(np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("=")))


def to_host(a):
    """a as a NumPy array (one copy from the GPU)."""
    if not is_array(a):
        return np.asarray(a)
    return asarray(a).copy_to_host()


def view(out):
    """A Numba view of an out= array (no copy): fastcnn.functional hands every op the
    arrays to fill, which may be CuPy arrays or PyTorch tensors. The op returns out
    itself, so that op(..., out=o) is o."""
    return asarray(out)


def views(out):
    """view() of each array of a multi-result op's out tuple (None stays None)."""
    return [None if o is None else asarray(o) for o in out]


def flat(a):
    """A contiguous device array as 1-D (a view)."""
    return a.reshape(a.size)


@kernel(lambda f: (f[::1], f))
def fill_kernel(F):
    def fill(a, value):
        for i in range(cuda.grid(1), a.size, cuda.gridsize(1)):
            a[i] = value
    return fill


def fill(a, value):
    """Set every element of the contiguous device array a to value."""
    fill_kernel(a.dtype)[blocks_for(a.size), THREADS](flat(a), a.dtype.type(value))


@kernel(lambda f: (f[::1], f))
def scale_kernel(F):
    def scale(a, factor):
        for i in range(cuda.grid(1), a.size, cuda.gridsize(1)):
            a[i] *= factor
    return scale


def scale(a, factor):
    """a *= factor on the contiguous device array a (fastcnn.distributed averages the
    summed gradients with it where CUDA-aware MPI leaves them on the GPU)."""
    scale_kernel(a.dtype)[blocks_for(a.size), THREADS](flat(a), a.dtype.type(factor))


# ---------------------------------------------------------------- whole-array moves
# What fastcnn.distributed's gradient buckets need, under the names the NumPy backends'
# _numpy has: they never ask where an array lives.

HOST_MEMORY = False    # MPI reads device memory only when it is CUDA-aware


def pinned_empty(shape, dtype):
    """A page-locked host array: copies between it and the GPU run at full speed."""
    _require_gpu()
    return cuda.pinned_array(shape, np.dtype(dtype))


def copy_into(dst, src):
    """dst[...] = src: dst a device array, src a contiguous host or device array of its
    shape."""
    asarray(dst).copy_to_device(src.reshape(dst.shape))


def copy_to_host(src, out):
    """out[...] = src: src a device array, out a host array of its shape."""
    asarray(src).copy_to_host(out)


def mpi_buffer(a):
    """a as a CUDA-aware MPI may read and write it: once the kernels writing it have
    finished (they all run on the default stream); on the simulator, its host memory."""
    cuda.synchronize()
    return a._ary if SIMULATOR else a


# ---------------------------------------------------------------- strided arrays


@kernel(lambda f: (f[:, :, :, :], f[:, :, :, ::1]))
def copy4_kernel(F):
    def copy4(src, dst):
        """dst[...] = src for 4-D arrays, src with any strides."""
        n0, n1, n2, n3 = dst.shape
        for i in range(cuda.grid(1), dst.size, cuda.gridsize(1)):
            i3 = i % n3
            i2 = (i // n3) % n2
            i1 = (i // (n3 * n2)) % n1
            i0 = i // (n3 * n2 * n1)
            dst[i0, i1, i2, i3] = src[i0, i1, i2, i3]
    return copy4


def _contiguous_copy(a):
    if a.ndim > 4:
        raise ValueError(f"a non-contiguous CUDA array of {a.ndim} dimensions (shape "
                         f"{tuple(a.shape)}) is not supported; make it contiguous first")
    extra = 4 - a.ndim
    shape, strides = (1,) * extra + tuple(a.shape), (0,) * extra + tuple(a.strides)
    if SIMULATOR:   # the simulator's arrays wrap NumPy, whose views take these strides
        src = type(a)(np.lib.stride_tricks.as_strided(a._ary, shape, strides))
    else:
        src = cuda.devicearray.DeviceNDArray(shape, strides, a.dtype, gpu_data=a.gpu_data)
    out = empty(shape, a.dtype)
    copy4_kernel(a.dtype)[blocks_for(a.size), THREADS](src, out)
    return out.reshape(a.shape)


# ---------------------------------------------------------------- scratch buffers

_scratch = threading.local()


def scratch(name, shape, dtype):
    """A device array for intermediate results (im2col workspace, per-block partial
    sums), kept between calls and grown on demand so ops do not allocate each time.
    Every kernel runs on the one default stream, so the next op's use of the buffer
    is queued after this op's. Per host thread, so threads do not share them."""
    dtype = np.dtype(dtype)
    nbytes = max(math.prod(shape) * dtype.itemsize, 1)
    buffers = _scratch.__dict__.setdefault("buffers", {})
    buf = buffers.get(name)
    if buf is None or buf.size < nbytes:
        buf = buffers[name] = empty(nbytes, np.uint8)
    return buf[:math.prod(shape) * dtype.itemsize].view(dtype).reshape(shape)


# ---------------------------------------------------------------- index checks
# An index array can only be range-checked by looking at it, and on the GPU the
# answer has to come back to the host to raise: one reduction kernel (min and max
# per block) and one copy, which makes the host wait for the GPU. A training step
# would pay that for every pooling layer, so the indices fastcnn's own kernels
# wrote (in range by construction) are remembered and not checked again; any
# other index array is, so bad input still gets a ValueError naming the values.
# Either way the kernels that read indices skip out-of-range ones: an array
# changed after it was written can give a wrong gradient but never a write out
# of bounds. (Labels are checked by the loss kernels as they read them: see
# check_labels.)

_written = {}   # id(indices) -> (weak reference to it, bound its values lie below)


def written_indices(indices, bound):
    """Remember that a kernel has just filled indices with values in [0, bound)."""
    key = id(indices)
    # A weak reference: the array's lifetime is not extended, and its entry goes with it.
    _written[key] = (weakref.ref(indices, lambda _: _written.pop(key, None)), bound)


def _trusted(indices, size):
    ref, bound = _written.get(id(indices), (None, None))
    return ref is not None and ref() is indices and bound <= size


@kernel(lambda f: (f[::1], f[::1], i32[::1], boolean), dtypes=(np.int32, np.int64))
def min_max_kernel(F):
    def min_max(indices, partials, as_int32, convert):
        """Per block b: the min and max of indices into partials[2b], partials[2b + 1];
        if convert, also indices as int32 into as_int32."""
        lo_buf = cuda.shared.array(THREADS, F)
        hi_buf = cuda.shared.array(THREADS, F)
        t = cuda.threadIdx.x
        lo = indices[0]
        hi = indices[0]
        for i in range(cuda.grid(1), indices.size, cuda.gridsize(1)):
            v = indices[i]
            lo = min(lo, v)
            hi = max(hi, v)
            if convert:
                as_int32[i] = v
        lo_buf[t] = lo
        hi_buf[t] = hi
        cuda.syncthreads()
        step = THREADS // 2
        while step > 0:
            if t < step:
                lo_buf[t] = min(lo_buf[t], lo_buf[t + step])
                hi_buf[t] = max(hi_buf[t], hi_buf[t + step])
            cuda.syncthreads()
            step //= 2
        if t == 0:
            partials[2 * cuda.blockIdx.x] = lo_buf[0]
            partials[2 * cuda.blockIdx.x + 1] = hi_buf[0]
    return min_max


def check_indices(op, name, indices, size):
    """indices as a contiguous int32 device array, each in [0, size); a ValueError
    naming the range found otherwise. Indices written by max_pool2d or maxout are
    returned as they are (no kernel, no copy)."""
    return indices if _trusted(indices, size) else check_range(op, name, indices, size)


def check_range(op, name, indices, size):
    """check_indices for any index array: one reduction kernel and one copy."""
    convert = indices.dtype != np.int32
    # The int32 copy only lives for the op that asked (the next check reuses it).
    as_int32 = scratch("indices_int32", indices.shape, np.int32) if convert else indices
    if indices.size == 0:
        return as_int32
    blocks = blocks_for(indices.size)
    partials = scratch("index_range", (2 * blocks,), indices.dtype)
    min_max_kernel(indices.dtype)[blocks, THREADS](flat(indices), partials, flat(as_int32), convert)
    # The partials hold each block's min and max: their range is the indices' range.
    _numpy.check_indices(op, name, partials.copy_to_host(), size)
    return as_int32
