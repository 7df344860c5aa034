"""Where the tests find the real MNIST digits (never committed to the repository).

FASTCNN_MNIST_DIR names the folder; otherwise shared/data/mnist is looked for
beside the repository and beside each folder above it (the project keeps it at
../shared/data/mnist). Without it the tests that need digits are skipped, and
the reason shows in pytest's summary (-ra).
"""

import functools
import os
from pathlib import Path

import pytest

from fastcnn.data import load_mnist

ROOT = Path(__file__).resolve().parent.parent


def mnist_dir():
    named = os.environ.get("FASTCNN_MNIST_DIR")
    if named:
        return Path(named)
    for folder in [ROOT] + list(ROOT.parents):
        candidate = folder.parent / "shared" / "data" / "mnist"
        if (candidate / "t10k-labels-idx1-ubyte.gz").exists():
            return candidate
    return None


@functools.lru_cache(maxsize=1)
def _load():
    return load_mnist(mnist_dir())


def mnist():
    """(x, y): the 10,000 real test-set digits, x float32 (N, 1, 28, 28) in [0, 1]."""
    if mnist_dir() is None:
        message = ("real MNIST digits not found: set FASTCNN_MNIST_DIR or put them in "
                   "../shared/data/mnist")
        pytest.skip(message)
    return _load()
