"""Thread control of the compiled kernels, and safety after fork()."""

import multiprocessing
import os
import signal
import time
import warnings

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


def _in_forked_child(work, timeout=30):
    """Run work() in a child made by os.fork(); its exit status, or a failure if it hangs.
    work returns a message, empty when all went well."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:   # the child: never return into pytest
        status = 1
        try:
            os.close(read_end)
            message = work()
            os.write(write_end, message.encode())
            status = 0 if not message else 1
        except BaseException as e:   # noqa: B902 - reported to the parent, whatever it is
            os.write(write_end, f"{type(e).__name__}: {e}".encode())
        finally:
            os._exit(status)
    os.close(write_end)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.05)
    else:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(read_end)
        pytest.fail("the forked child hung")
    with os.fdopen(read_end, "rb") as f:
        message = f.read().decode()
    assert os.waitstatus_to_exitcode(status) == 0, message
    return message


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_set_num_threads_in_a_forked_child_keeps_one_thread_and_warns_once():
    """GNU OpenMP cannot start a thread pool in a child forked after the parent ran one: a
    conv2d there after set_num_threads(2) used to hang. Now the child stays on one thread
    and is told why, once."""
    x, w = np.ones((4, 2, 6, 6), np.float32), np.ones((3, 2, 3, 3), np.float32)
    before = fastcnn.get_num_threads()
    fastcnn.set_num_threads(2)
    try:
        F.conv2d(x, w)   # the parent's pool is up

        def work():
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                fastcnn.set_num_threads(2)
                fastcnn.set_num_threads(3)
            if fastcnn.get_num_threads() != 1:
                return f"{fastcnn.get_num_threads()} threads in the child"
            if [w.category for w in caught] != [RuntimeWarning] or "spawn" not in str(
                    caught[0].message):
                return f"expected one RuntimeWarning naming 'spawn', got {caught}"
            if float(F.conv2d(x, w).sum()) != 4 * 3 * 16 * 18:
                return "wrong conv2d result in the child"
            fastcnn.set_num_threads(1)   # no warning for what is possible
            return ""

        _in_forked_child(work)
        assert fastcnn.get_num_threads() == 2   # the parent is untouched
    finally:
        fastcnn.set_num_threads(before)


@pytest.mark.parametrize("given", [None, "50000"])
def test_the_short_openmp_spin_is_set_for_libgomp_alone(given):
    """fastcnn loads libgomp with GOMP_SPINCOUNT=1000 unless the caller set an OpenMP wait
    setting, and leaves the environment as it found it (for libraries loaded later)."""
    import subprocess
    import sys
    env = {k: v for k, v in os.environ.items()
           if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    if given:
        env["GOMP_SPINCOUNT"] = given
    code = ("import os, fastcnn, fastcnn.functional as F, numpy as np; "
            "F.relu(np.ones(4, np.float32)); print(os.environ.get('GOMP_SPINCOUNT'))")
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=os.path.dirname(__file__),
                         capture_output=True, text=True, check=True).stdout.split()
    assert out == [str(given)]
