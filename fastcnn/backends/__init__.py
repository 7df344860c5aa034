"""Backends: one module per place the arithmetic runs, all with the same op names and signatures.

- ``reference``: NumPy, every op written from its definition (the test oracle).
- ``cpu``: the compiled Cython kernels (OpenMP, BLAS), NumPy arrays in and out.
- ``cuda``: Numba CUDA kernels, device arrays in and out (needs numba-cuda and a GPU).

``fastcnn.functional`` checks the arguments and then calls ``get(name).op(...)``.
"""

import importlib

NAMES = ("reference", "cpu", "cuda")


def get(name):
    """The backend module called name."""
    if name not in NAMES:
        raise ValueError(f"backend must be one of {NAMES}, got {name!r}")
    return importlib.import_module(f"{__name__}.{name}")


def on_gpu(a):
    """True for arrays that live in GPU memory (Numba, CuPy, PyTorch CUDA: anything
    exposing __cuda_array_interface__)."""
    return hasattr(a, "__cuda_array_interface__")
