"""How many OpenMP threads the compiled kernels use (OMP_NUM_THREADS sets the default)."""

import os

from openmp cimport omp_get_max_threads, omp_set_num_threads


def set_num_threads(int n):
    """Use n threads in the compiled kernels (n >= 1)."""
    if n < 1:
        raise ValueError(f"set_num_threads: n must be >= 1, got {n}")
    omp_set_num_threads(n)


def get_num_threads():
    """The number of threads the compiled kernels use."""
    return omp_get_max_threads()


# OpenMP's thread pool does not survive fork(): a forked child that entered a
# parallel region would hang, so children run the kernels on one thread.
os.register_at_fork(after_in_child=lambda: omp_set_num_threads(1))
