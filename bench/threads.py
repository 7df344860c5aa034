"""One thread count for every implementation: fastcnn's OpenMP, PyTorch, and the BLAS
and OpenMP pools NumPy and SciPy use (through threadpoolctl)."""

import os


def available_cores():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def set_all(n, torch=True):
    """n threads everywhere; torch=False leaves PyTorch unimported (for a process that
    does not run it). Returns a function that puts every setting back."""
    import fastcnn
    import fastcnn.backends.cpu  # noqa: F401 -- loads SciPy's BLAS, so threadpoolctl sees it
    from threadpoolctl import threadpool_limits

    undo = [fastcnn.set_num_threads, fastcnn.get_num_threads()]
    fastcnn.set_num_threads(n)
    if torch:
        try:
            import torch
            undo += [torch.set_num_threads, torch.get_num_threads()]
            torch.set_num_threads(n)
        except ImportError:
            pass
    limits = threadpool_limits(limits=n)

    def restore():
        limits.restore_original_limits()
        for setter, value in zip(undo[::2], undo[1::2]):
            setter(value)
    return restore
