"""Backends: one module per place the arithmetic runs, all with the same op names and signatures.

- ``reference``: NumPy, every op written from its definition (the test oracle).
- ``cpu``: the compiled Cython kernels (OpenMP, BLAS), NumPy arrays in and out.
- ``cuda``: Numba CUDA kernels, device arrays in and out (needs numba-cuda and a GPU).

``fastcnn.functional`` checks the arguments and then calls ``get(name).op(...)``. Padding
reaches a backend as (top, bottom, left, right); output shapes as the out= arrays' shapes.
"""

import importlib

import numpy as np

NAMES = ("reference", "cpu", "cuda")


def output_size(size, kernel, stride, padding=(0, 0), dilation=1, ceil_mode=False):
    """The length of a sliding window's output along one axis (conv, pool, im2col):
    floor((size + lo + hi - d(k-1) - 1) / s) + 1 for padding (lo, hi), or with ceil_mode
    (pools) rounded up instead, minus the last window if it would start in the right
    padding (PyTorch's rule: every window starts inside the input or the left padding).
    The one place this rule is written."""
    lo, hi = padding
    span = size + lo + hi - dilation * (kernel - 1) - 1
    if not ceil_mode:
        return span // stride + 1
    out = -(-span // stride) + 1
    if (out - 1) * stride >= size + lo:
        out -= 1
    return out


def transposed_output_size(size, kernel, stride, padding=(0, 0), dilation=1,
                           output_padding=0):
    """The length of a transposed convolution's output along one axis (PyTorch's and
    ONNX's rule): (size - 1) * s - lo - hi + d(k-1) + output_padding + 1. For
    output_padding < stride, output_size of this length is size again: the transposed
    convolution runs a convolution's window backwards."""
    lo, hi = padding
    return (size - 1) * stride - lo - hi + dilation * (kernel - 1) + output_padding + 1


def get(name):
    """The backend module called name."""
    if name not in NAMES:
        raise ValueError(f"backend must be one of {NAMES}, got {name!r}")
    return importlib.import_module(f"{__name__}.{name}")


def on_gpu(a):
    """True for arrays that live in GPU memory (Numba, CuPy, PyTorch CUDA: anything
    exposing __cuda_array_interface__; also the arrays of Numba's CUDA simulator,
    which lack the interface but are marked __cuda_ndarray__)."""
    return hasattr(a, "__cuda_array_interface__") or bool(getattr(a, "__cuda_ndarray__", False))


def _of(a):
    """The backend module holding array a: cuda for GPU arrays, else the NumPy ones."""
    return get("cuda" if on_gpu(a) else "cpu")


def memory_of(a):
    """The module that moves and scales whole arrays in the memory a lives in (allocate,
    a pinned host buffer, copy to and from the host, scale in place, the buffer MPI may
    read): ``cuda._arrays`` for GPU arrays, ``_numpy`` for the others. Both have the
    same names, so code using them never asks where an array lives."""
    return importlib.import_module(f"{__name__}.cuda._arrays" if on_gpu(a)
                                   else f"{__name__}._numpy")


def zeros_like(a):
    """A zero array of a's shape and dtype, where a lives."""
    return _of(a).zeros(a.shape, a.dtype)


def to_device(a):
    """a copied to the GPU (a Numba device array); GPU arrays come back as they are.

    Needs numba-cuda (pip install 'fastcnn[gpu]') and a CUDA GPU."""
    return get("cuda").to_device(a)


def to_host(a):
    """a as a NumPy array, copied from the GPU if it lives there."""
    return _of(a).to_host(a)


def place(a, device, dtype=None):
    """Data a caller hands in (a batch, a target), where the arrays it meets live: a GPU
    array as it is; anything else as a NumPy array, cast to dtype (when given) and moved
    to device ("cpu" or "cuda"). The one host-to-device rule of fit, predict and losses."""
    if on_gpu(a):
        return a
    a = np.asarray(a)
    if dtype is not None and a.dtype != dtype:
        a = a.astype(dtype)
    return to_device(a) if device == "cuda" else a


def mover(device):
    """The function that moves an array to device ("cpu" or "cuda")."""
    if device == "cpu":
        return to_host
    if device == "cuda":
        return to_device
    raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
