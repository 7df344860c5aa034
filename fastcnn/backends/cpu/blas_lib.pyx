# cython: boundscheck=False, wraparound=False
"""The BLAS library behind every kernel's gemm, picked once at import.

NumPy's wheels carry their own OpenBLAS (``libscipy_openblas64_``: 64-bit
integers, symbols named ``scipy_<routine>_64_``), loaded before fastcnn runs.
The kernels call it through function pointers looked up here: the very library
behind numpy.matmul, following NumPy's upgrades, with no BLAS of fastcnn's own
and without loading SciPy's (a second OpenBLAS with a thread pool of its own).
Where NumPy was built against another BLAS (MKL,
Accelerate, a system library) the lookup finds nothing and the kernels call
SciPy's BLAS instead, through ``scipy.linalg.cython_blas``; so do they when
the environment variable ``FASTCNN_BLAS`` is ``scipy`` at import.

``source`` names the library in use (``"numpy"`` or ``"scipy"``); blas_threads
keeps it on one thread inside the kernels' OpenMP loops, through ``get_threads`` /
``set_threads`` (OpenBLAS's own calls, about a microsecond) where NumPy's library
is in use.
"""

import ctypes
import os

import numpy._core._multiarray_umath as _numpy_core

from cpython.pycapsule cimport PyCapsule_GetName, PyCapsule_GetPointer
from libc.stdint cimport int64_t, uintptr_t

# Fortran BLAS signatures: everything by pointer, 64-bit integers in NumPy's
# library, 32-bit ones in SciPy's.
ctypedef void (*sgemm64_t)(const char*, const char*, const int64_t*, const int64_t*,
                           const int64_t*, const float*, const float*, const int64_t*,
                           const float*, const int64_t*, const float*, float*,
                           const int64_t*) noexcept nogil
ctypedef void (*dgemm64_t)(const char*, const char*, const int64_t*, const int64_t*,
                           const int64_t*, const double*, const double*, const int64_t*,
                           const double*, const int64_t*, const double*, double*,
                           const int64_t*) noexcept nogil
ctypedef void (*sgemm32_t)(const char*, const char*, const int*, const int*, const int*,
                           const float*, const float*, const int*, const float*, const int*,
                           const float*, float*, const int*) noexcept nogil
ctypedef void (*dgemm32_t)(const char*, const char*, const int*, const int*, const int*,
                           const double*, const double*, const int*, const double*,
                           const int*, const double*, double*, const int*) noexcept nogil

cdef sgemm64_t sgemm64 = NULL
cdef dgemm64_t dgemm64 = NULL
cdef sgemm32_t sgemm32 = NULL
cdef dgemm32_t dgemm32 = NULL


cdef void sgemm(char transa, char transb, int m, int n, int k, float alpha, const float* a,
                int lda, const float* b, int ldb, float beta, float* c,
                int ldc) noexcept nogil:
    cdef int64_t m_ = m, n_ = n, k_ = k, lda_ = lda, ldb_ = ldb, ldc_ = ldc
    if sgemm64 is not NULL:
        sgemm64(&transa, &transb, &m_, &n_, &k_, &alpha, a, &lda_, b, &ldb_, &beta, c, &ldc_)
    else:
        sgemm32(&transa, &transb, &m, &n, &k, &alpha, a, &lda, b, &ldb, &beta, c, &ldc)


cdef void dgemm(char transa, char transb, int m, int n, int k, double alpha, const double* a,
                int lda, const double* b, int ldb, double beta, double* c,
                int ldc) noexcept nogil:
    cdef int64_t m_ = m, n_ = n, k_ = k, lda_ = lda, ldb_ = ldb, ldc_ = ldc
    if dgemm64 is not NULL:
        dgemm64(&transa, &transb, &m_, &n_, &k_, &alpha, a, &lda_, b, &ldb_, &beta, c, &ldc_)
    else:
        dgemm32(&transa, &transb, &m, &n, &k, &alpha, a, &lda, b, &ldb, &beta, c, &ldc)


def _numpy_blas(name):
    """The address of NumPy's OpenBLAS routine `name`, or None. NumPy's core module
    links the library, and a symbol lookup in a loaded module searches its
    dependencies too."""
    try:
        return ctypes.cast(getattr(ctypes.CDLL(_numpy_core.__file__), name),
                           ctypes.c_void_p).value
    except (OSError, AttributeError):
        return None


def _scipy_blas(name):
    """The address of `name` in scipy.linalg.cython_blas (what a cimport would fetch)."""
    from scipy.linalg import cython_blas
    capsule = cython_blas.__pyx_capi__[name]
    return <uintptr_t>PyCapsule_GetPointer(capsule, PyCapsule_GetName(capsule))


_wanted = os.environ.get("FASTCNN_BLAS", "numpy")
if _wanted not in ("numpy", "scipy"):
    raise ValueError(f"FASTCNN_BLAS must be 'numpy' or 'scipy', got {_wanted!r}")
numpy_sgemm, numpy_dgemm = _numpy_blas("scipy_sgemm_64_"), _numpy_blas("scipy_dgemm_64_")
if _wanted == "numpy" and numpy_sgemm and numpy_dgemm:
    sgemm64, dgemm64 = <sgemm64_t><uintptr_t>numpy_sgemm, <dgemm64_t><uintptr_t>numpy_dgemm
    source = "numpy"
else:
    sgemm32 = <sgemm32_t><uintptr_t>_scipy_blas("sgemm")
    dgemm32 = <dgemm32_t><uintptr_t>_scipy_blas("dgemm")
    source = "scipy"


# OpenBLAS's thread count, set directly (threadpoolctl takes ~30 us a limit and restore,
# paid by every kernel call otherwise). None where SciPy's BLAS is in use.
_get = _numpy_blas("scipy_openblas_get_num_threads64_") if source == "numpy" else None
_set = _numpy_blas("scipy_openblas_set_num_threads64_") if source == "numpy" else None
get_threads = ctypes.CFUNCTYPE(ctypes.c_int)(_get) if _get and _set else None
set_threads = ctypes.CFUNCTYPE(None, ctypes.c_int)(_set) if _get and _set else None
