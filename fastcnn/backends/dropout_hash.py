"""The dropout mask's hash, shared by every backend so all draw the very same mask.

An element is kept or dropped by a counter-based hash of (seed, element index):
no random state to carry, and a GPU thread can draw its element's bit alone.
The cuda backend runs the same mix32 as device code (cuda/elementwise.py).
"""

import numpy as np


def mix32(h):
    """lowbias32 (C. Wellons): a bijective uint32 hash with good avalanche."""
    with np.errstate(over="ignore"):   # the products wrap modulo 2**32 by design
        h = h ^ (h >> np.uint32(16))
        h = h * np.uint32(0x7FEB352D)
        h = h ^ (h >> np.uint32(15))
        h = h * np.uint32(0x846CA68B)
        return h ^ (h >> np.uint32(16))


def key(seed):
    """The per-call key the element indices are mixed with."""
    return mix32(np.uint32(seed))


def threshold(p):
    """An element is kept iff the top 24 bits of its hash are >= this threshold."""
    return int(p * (1 << 24))


def kept(seed, size, p):
    """Which of size elements (flat) dropout keeps: a boolean array."""
    bits = mix32(np.arange(size, dtype=np.uint32) ^ key(seed)) >> np.uint32(8)
    return bits >= threshold(p)
