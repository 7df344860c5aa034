"""Test setup: the backends to parametrise over, hypothesis profiles, numerical helpers.

The CUDA backend joins BACKENDS when numba-cuda imports. Without a GPU its
kernels run on Numba's CUDA simulator, which must be switched on before numba
is first imported, hence here, at the very top. FASTCNN_TEST_GPU=1 runs them
on a real GPU instead.
"""

import os

if os.environ.get("FASTCNN_TEST_GPU") != "1":
    os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")

import pytest  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

settings.register_profile(
    "default", max_examples=40, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile(
    "thorough", max_examples=400, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


def _cuda_usable():
    try:
        from fastcnn.backends import cuda  # noqa: F401
    except ImportError:
        return False
    return True


# Every fast backend; each is compared with the reference.
BACKENDS = ["cpu"] + (["cuda"] if _cuda_usable() else [])
# The reference too, for the tests that hold for every backend (gradients, errors).
ALL_BACKENDS = ["reference"] + BACKENDS


@pytest.fixture(params=BACKENDS, scope="session")
def backend(request):
    return request.param


@pytest.fixture(params=ALL_BACKENDS, scope="session")
def any_backend(request):
    return request.param
