"""The BLAS library behind the cpu kernels' gemm: NumPy's own OpenBLAS where NumPy has one,
SciPy's otherwise; threadpoolctl sees it and the kernels keep it on one thread."""

import ctypes
import os
import subprocess
import sys

import numpy as np
import pytest
from threadpoolctl import threadpool_info

from fastcnn.backends.cpu import blas_lib
from fastcnn.backends.cpu.blas_threads import single_threaded_blas

NUMPY_HAS_OPENBLAS = np.__config__.CONFIG["Build Dependencies"]["blas"]["name"] == "scipy-openblas"
FORCED = os.environ.get("FASTCNN_BLAS")


def _exports(path, symbol):
    """The address of symbol in the library at path, or None."""
    try:
        return ctypes.cast(getattr(ctypes.CDLL(path), symbol), ctypes.c_void_p).value
    except (OSError, AttributeError):
        return None


def _library_in_use():
    """threadpoolctl's entry for the library whose sgemm the kernels call."""
    found = [lib for lib in threadpool_info() if lib["user_api"] == "blas"
             and _exports(lib["filepath"], "scipy_sgemm_64_") == blas_lib.numpy_sgemm]
    assert len(found) == 1, threadpool_info()
    return found[0]


@pytest.mark.skipif(not NUMPY_HAS_OPENBLAS or FORCED, reason="NumPy has no OpenBLAS of its own")
def test_gemm_calls_numpys_openblas():
    assert blas_lib.source == "numpy"
    assert _library_in_use()["internal_api"] == "openblas"


@pytest.mark.skipif(blas_lib.source != "numpy", reason="the kernels call SciPy's BLAS")
def test_threadpoolctl_limits_the_library_in_use():
    """Inside the kernels' OpenMP loops the BLAS doing the work runs on one thread, and
    the caller's setting comes back after."""
    before = _library_in_use()["num_threads"]
    with single_threaded_blas():
        assert _library_in_use()["num_threads"] == 1
        with single_threaded_blas():  # nested users keep the limit
            assert _library_in_use()["num_threads"] == 1
        assert _library_in_use()["num_threads"] == 1
    assert _library_in_use()["num_threads"] == before


_CHILD = """
import numpy as np
import fastcnn.functional as F
from fastcnn.backends.cpu import blas_lib
rng = np.random.default_rng(0)
for dtype in (np.float32, np.float64):
    a, b = rng.standard_normal((70, 45)).astype(dtype), rng.standard_normal((45, 33)).astype(dtype)
    np.testing.assert_allclose(F.matmul(a, b), a @ b, rtol=1e-4, atol=1e-4)
    x = rng.standard_normal((3, 4, 9, 9)).astype(dtype)
    w = rng.standard_normal((5, 4, 3, 3)).astype(dtype)
    want = F.conv2d(x, w, padding=1, backend="reference")
    np.testing.assert_allclose(F.conv2d(x, w, padding=1), want, rtol=1e-4, atol=1e-4)
print(blas_lib.source)
"""


@pytest.mark.parametrize("wanted", ["numpy", "scipy"])
def test_either_library_computes_the_same(wanted, tmp_path):
    """FASTCNN_BLAS=scipy takes the fallback a NumPy without OpenBLAS gets; both agree with
    NumPy (run in a child, since the library is picked once at import; outside the checkout,
    so that the child imports the installed package)."""
    env = dict(os.environ, FASTCNN_BLAS=wanted)
    child = subprocess.run([sys.executable, "-c", _CHILD], env=env, cwd=tmp_path,
                           capture_output=True, text=True, timeout=300)
    assert child.returncode == 0, child.stderr
    expected = "numpy" if wanted == "numpy" and NUMPY_HAS_OPENBLAS else "scipy"
    assert child.stdout.split() == [expected]


def test_bad_choice_is_refused(tmp_path):
    env = dict(os.environ, FASTCNN_BLAS="mkl")
    child = subprocess.run([sys.executable, "-c", "import fastcnn.functional as F, numpy as np;"
                            "F.matmul(np.ones((2, 2)), np.ones((2, 2)))"],
                           env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert child.returncode != 0
    assert "FASTCNN_BLAS must be 'numpy' or 'scipy', got 'mkl'" in child.stderr
