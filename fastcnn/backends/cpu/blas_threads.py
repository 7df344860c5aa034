"""Keep BLAS on one thread while the compiled kernels call it from OpenMP threads.

The kernels parallelise over images and each OpenMP thread calls gemm on its
own image. If BLAS also spawned threads, the two pools would oversubscribe the
cores, and OpenBLAS warns that it may hang when called inside an OpenMP loop.
A single large product (matmul) is the exception: there BLAS's own threads, set
to fastcnn's thread count, beat cutting the output over OpenMP threads.
The library doing the work is the one blas_lib picked: NumPy's OpenBLAS, set
through its own calls, or SciPy's, limited with threadpoolctl (every BLAS it finds).
"""

import threading
from contextlib import contextmanager

from threadpoolctl import ThreadpoolController

from fastcnn.backends.cpu import blas_lib   # (loads the kernels' BLAS first)

_lock = threading.Lock()
_users = 0
_restore = None
_controller = None


def _limit(threads):
    """Set the kernels' BLAS to `threads` threads; returns what undoes it."""
    global _controller
    if blas_lib.set_threads is not None:
        before = blas_lib.get_threads()
        blas_lib.set_threads(threads)
        return lambda: blas_lib.set_threads(before)
    if _controller is None:  # built once, after blas_lib has loaded its BLAS
        _controller = ThreadpoolController().select(user_api="blas")
    return _controller.limit(limits=threads).restore_original_limits


@contextmanager
def blas_threads(threads):
    """BLAS on `threads` threads inside the block; the caller's setting is restored after
    the last concurrent user leaves (concurrent users share the first one's limit)."""
    global _users, _restore
    with _lock:
        if _users == 0:
            _restore = _limit(threads)
        _users += 1
    try:
        yield
    finally:
        with _lock:
            _users -= 1
            if _users == 0:
                _restore()


def single_threaded_blas():
    """BLAS on one thread: for gemms called from the kernels' OpenMP threads."""
    return blas_threads(1)
