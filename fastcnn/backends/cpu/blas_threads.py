"""Keep SciPy's BLAS on one thread while the compiled kernels call it from OpenMP threads.

The kernels parallelise over images and each OpenMP thread calls gemm on its
own image. If BLAS also spawned threads, the two pools would oversubscribe the
cores, and OpenBLAS warns that it may hang when called inside an OpenMP loop.
"""

import threading
from contextlib import contextmanager

from threadpoolctl import ThreadpoolController

_lock = threading.Lock()
_users = 0
_limiter = None
_controller = None


@contextmanager
def single_threaded_blas():
    """BLAS on one thread inside the block; the caller's setting is restored after the
    last concurrent user leaves."""
    global _users, _limiter, _controller
    with _lock:
        if _users == 0:
            if _controller is None:  # built once, after the kernels have loaded SciPy's BLAS
                _controller = ThreadpoolController().select(user_api="blas")
            _limiter = _controller.limit(limits=1)
        _users += 1
    try:
        yield
    finally:
        with _lock:
            _users -= 1
            if _users == 0:
                _limiter.restore_original_limits()
