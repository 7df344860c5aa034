"""One thread count for every implementation: fastcnn's OpenMP, PyTorch, and the BLAS
and OpenMP pools NumPy and SciPy use (through threadpoolctl)."""

import os

_limits = None  # threadpoolctl's limiter, kept alive for the whole run


def available_cores():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def set_all(n, torch=True):
    """n threads everywhere; torch=False leaves PyTorch unimported (a process that does
    not run it)."""
    global _limits
    import fastcnn
    import fastcnn.backends.cpu  # noqa: F401 -- loads SciPy's BLAS, so threadpoolctl sees it
    from threadpoolctl import threadpool_limits

    fastcnn.set_num_threads(n)
    if torch:
        try:
            import torch
            torch.set_num_threads(n)
        except ImportError:
            pass
    _limits = threadpool_limits(limits=n)
