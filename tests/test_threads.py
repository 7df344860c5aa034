"""Thread control of the compiled kernels, and safety after fork()."""

import multiprocessing
import os

import numpy as np
import pytest

import fastcnn
import fastcnn.functional as F


def test_set_and_get_num_threads():
    before = fastcnn.get_num_threads()
    try:
        fastcnn.set_num_threads(1)
        assert fastcnn.get_num_threads() == 1
        x = np.random.default_rng(0).standard_normal((8, 3, 9, 9)).astype(np.float32)
        w = np.random.default_rng(1).standard_normal((5, 3, 3, 3)).astype(np.float32)
        one = F.conv2d(x, w, padding=1), F.conv2d_backward(np.ones((8, 5, 9, 9), np.float32),
                                                           x, w, padding=1)
        fastcnn.set_num_threads(2)
        two = F.conv2d(x, w, padding=1), F.conv2d_backward(np.ones((8, 5, 9, 9), np.float32),
                                                           x, w, padding=1)
        np.testing.assert_array_equal(one[0], two[0])
        np.testing.assert_allclose(one[1][1], two[1][1], rtol=1e-5, atol=1e-4)
    finally:
        fastcnn.set_num_threads(before)
    with pytest.raises(ValueError, match="n must be >= 1"):
        fastcnn.set_num_threads(0)


def _conv_in_child(queue):
    x = np.ones((4, 2, 6, 6), np.float32)
    queue.put(float(F.conv2d(x, np.ones((3, 2, 3, 3), np.float32)).sum()))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_kernels_run_in_a_forked_child():
    """OpenMP's pool does not survive fork(); children fall back to one thread, no hang."""
    F.conv2d(np.ones((4, 2, 6, 6), np.float32), np.ones((3, 2, 3, 3), np.float32))  # pool up
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_conv_in_child, args=(queue,))
    child.start()
    child.join(timeout=60)
    if child.is_alive():
        child.kill()
        pytest.fail("the forked child hung in the conv kernel")
    assert child.exitcode == 0
    assert queue.get(timeout=5) == 4 * 3 * 16 * 18
