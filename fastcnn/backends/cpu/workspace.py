"""Scratch buffers for the compiled kernels, reused from call to call.

A training loop calls the same kernels with the same shapes every step;
reusing their scratch memory saves the page faults of fresh allocations.
Buffers are handed out and taken back, so concurrent callers never share one.
"""

from contextlib import contextmanager

import numpy as np

_free = []


@contextmanager
def workspace(n, dtype):
    """A 1-D scratch array of at least n elements of dtype, for the duration of the block."""
    nbytes = max(int(n), 1) * np.dtype(dtype).itemsize
    buf = None
    while _free:   # list.pop/append are atomic under the GIL
        candidate = _free.pop()
        if candidate.nbytes >= nbytes:
            buf = candidate
            break
    if buf is None:
        buf = np.empty(nbytes, np.uint8)
    try:
        yield buf[:nbytes].view(dtype)
    finally:
        _free.append(buf)
