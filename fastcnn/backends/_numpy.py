"""Array handling shared by the two backends that compute on NumPy arrays (reference, cpu)."""

import numpy as np

DEVICE = "cpu"


def asarray(a):
    """A C-contiguous ndarray of a (no copy when it already is one)."""
    return np.ascontiguousarray(a)


def is_array(a):
    return isinstance(a, np.ndarray)


empty = np.empty
zeros = np.zeros


def to_host(a):
    return np.asarray(a)


# ---- moving and scaling whole arrays (fastcnn.distributed's gradient buckets); the cuda
# backend's _arrays has the same names. Host memory is what MPI reads and writes itself.

HOST_MEMORY = True


def pinned_empty(shape, dtype):
    """A host array for fast copies to and from this memory: any host array is one."""
    return np.empty(shape, dtype)


def copy_into(dst, src):
    """dst[...] = src: dst in this memory, src a host array (or one in this memory) of its
    shape."""
    np.copyto(dst, np.reshape(src, dst.shape))


def copy_to_host(src, out):
    """out[...] = src, out a host array of src's shape."""
    np.copyto(out, src)


def scale(a, factor):
    """a *= factor, in place."""
    np.multiply(a, a.dtype.type(factor), out=a)


def mpi_buffer(a):
    """a as MPI may read and write it once every op writing it has finished: itself."""
    return a


def check_indices(op, name, indices, size):
    """indices as int32, each in [0, size); a ValueError otherwise."""
    if indices.size:
        lo, hi = int(indices.min()), int(indices.max())
        if lo < 0 or hi >= size:
            raise ValueError(f"{op}: {name} must lie in [0, {size}), found values in "
                             f"[{lo}, {hi}]")
    return indices.astype(np.int32, copy=False)


def check_labels(op, labels, classes):
    """Class labels as int32, each in [0, classes); a ValueError otherwise."""
    return check_indices(op, "labels", labels, classes)
