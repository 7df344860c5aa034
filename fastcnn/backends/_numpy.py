"""Array handling shared by the two backends that compute on NumPy arrays (reference, cpu)."""

import numpy as np

DEVICE = "cpu"


def asarray(a):
    """A C-contiguous ndarray of a (no copy when it already is one)."""
    return np.ascontiguousarray(a)


def is_array(a):
    return isinstance(a, np.ndarray)


empty = np.empty
zeros = np.zeros


def to_host(a):
    return np.asarray(a)


def check_indices(op, name, indices, size):
    """indices as int32, each in [0, size); a ValueError otherwise."""
    if indices.size:
        lo, hi = int(indices.min()), int(indices.max())
        if lo < 0 or hi >= size:
            raise ValueError(f"{op}: {name} must lie in [0, {size}), found values in "
                             f"[{lo}, {hi}]")
    return indices.astype(np.int32, copy=False)


def check_labels(op, labels, classes):
    """Class labels as int32, each in [0, classes); a ValueError otherwise."""
    return check_indices(op, "labels", labels, classes)
