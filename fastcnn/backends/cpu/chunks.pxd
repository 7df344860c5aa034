"""Cutting flat arrays into chunks that OpenMP threads take in turn (elementwise kernels).

A chunk is big enough to amortise the scheduling and small enough to stay in cache.
"""

from openmp cimport omp_get_max_threads

cdef enum:
    CHUNK = 1 << 15   # elements per task


cdef inline int threads_for(Py_ssize_t chunks) noexcept nogil:
    """No more threads than chunks (tasks), and at least one: a small array, or a batch of
    one image, runs on the calling thread alone."""
    return <int>max(1, min(<Py_ssize_t>omp_get_max_threads(), chunks))


cdef inline int threads_for_pixels(Py_ssize_t pixels) noexcept nogil:
    """Threads for a loop over this many pixels: one per CHUNK of them (at least one), so a
    small image (a batch of one) is not split over threads that cost more to wake than it
    takes to compute."""
    return threads_for(pixels // CHUNK + 1)
