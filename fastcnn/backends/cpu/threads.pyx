"""How many OpenMP threads the compiled kernels use (OMP_NUM_THREADS sets the default)."""

import os
import warnings

from openmp cimport omp_get_max_threads, omp_set_num_threads

_forked = False        # this process is a fork() child: one thread, whatever is asked
_warned = False


def set_num_threads(int n):
    """Use n threads in the compiled kernels (n >= 1); in a forked child, always 1."""
    global _warned
    if n < 1:
        raise ValueError(f"set_num_threads: n must be >= 1, got {n}")
    if _forked and n > 1:
        if not _warned:
            _warned = True
            warnings.warn(
                f"set_num_threads({n}) in a process made by fork(): the compiled kernels "
                f"stay on 1 thread, because GNU OpenMP cannot start a thread pool in a "
                f"forked child (its kernels would hang). Start worker processes with the "
                f'"spawn" start method (multiprocessing.get_context("spawn")) to use '
                f"several threads in them.", RuntimeWarning, stacklevel=2)
        n = 1
    omp_set_num_threads(n)


def get_num_threads():
    """The number of threads the compiled kernels use."""
    return omp_get_max_threads()


def _after_fork_in_child():
    global _forked
    _forked = True
    omp_set_num_threads(1)


# OpenMP's thread pool does not survive fork(): a forked child that entered a
# parallel region would hang, so children run the kernels on one thread.
os.register_at_fork(after_in_child=_after_fork_in_child)
