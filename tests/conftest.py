"""Test setup: the backends to parametrise over, hypothesis profiles, numerical helpers.

The CUDA backend joins BACKENDS when numba-cuda imports. Without a GPU its
kernels run on Numba's CUDA simulator, which must be switched on before numba
is first imported, hence here, at the very top. FASTCNN_TEST_GPU=1 runs them
on a real GPU instead.
"""

import os
import sys

if os.environ.get("FASTCNN_TEST_GPU") != "1":
    os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")
SIMULATOR = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"
if SIMULATOR:
    # The simulator runs each CUDA thread as a Python thread and polls them at every
    # syncthreads; a shorter GIL switch interval than 5 ms makes it several times faster.
    sys.setswitchinterval(5e-4)

import pytest  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

settings.register_profile(
    "default", max_examples=40, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile(
    "thorough", max_examples=400, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


from helpers import cuda_usable  # noqa: E402

# Every fast backend; each is compared with the reference.
BACKENDS = ["cpu"] + (["cuda"] if cuda_usable() else [])
# The reference too, for the tests that hold for every backend (gradients, errors).
ALL_BACKENDS = ["reference"] + BACKENDS


@pytest.fixture(params=BACKENDS, scope="session")
def backend(request):
    return request.param


@pytest.fixture(autouse=True)
def _fewer_examples_on_the_simulator(request):
    """Property tests of the cuda backend on the simulator draw a quarter of the examples
    (it runs kernels about a million times slower than a GPU). Hypothesis has no per-
    parameter settings, so the test's settings are swapped for the duration of the run."""
    test = request.function
    callspec = getattr(request.node, "callspec", None)
    simulated = SIMULATOR and callspec is not None and any(
        isinstance(v, str) and v == "cuda" for v in callspec.params.values())
    own = getattr(test, "_hypothesis_internal_use_settings", None)
    if not simulated or own is None:
        yield
        return
    test._hypothesis_internal_use_settings = settings(own,
                                                      max_examples=max(5, own.max_examples // 4))
    try:
        yield
    finally:
        test._hypothesis_internal_use_settings = own


@pytest.fixture(params=ALL_BACKENDS, scope="session")
def any_backend(request):
    return request.param
