"""Data-parallel training (fastcnn.distributed).

The checks that need several processes run tests/mpi/checks.py under
``mpiexec -n 2`` (from the environment's bin folder, beside this Python, else from
PATH); when no launcher can start two ranks here, they are skipped with the reason
(pytest -ra shows it). The sampler, the data sharding and the world of one need no MPI.
"""

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fastcnn import backends, nn
from fastcnn import distributed as dist
from fastcnn.data import DataLoader
from fastcnn.model import Sequential
from fastcnn.optim import Adam
from helpers import cuda_usable

CHECKS = Path(__file__).parent / "mpi" / "checks.py"
TIMEOUT = 90       # seconds: a hung job fails the test instead of stalling the run


# ---------------------------------------------------------------- without MPI


@pytest.mark.parametrize("n, world", [(12, 2), (13, 2), (10, 3), (2, 4), (1000, 3)])
@pytest.mark.parametrize("drop_last", [False, True])
def test_sampler_shards_are_disjoint_and_cover_the_data(n, world, drop_last):
    for epoch in range(3):
        shards = [dist.DistributedSampler(n, r, world, seed=7, drop_last=drop_last)
                  .indices(epoch) for r in range(world)]
        sizes = {len(s) for s in shards}
        assert sizes == {n // world if drop_last else -(-n // world)}   # equal step counts
        every = np.concatenate(shards)
        if drop_last:       # disjoint; the tail left out is under one index a rank
            assert len(np.unique(every)) == len(every) and n - len(every) < world
        else:               # all of them; the few padded ones repeat the first indices
            assert set(every) == set(range(n)) and len(every) - n < world
            assert len(np.unique(every)) == min(n, len(every))


def test_sampler_shuffles_every_epoch_alike_on_every_rank():
    a, b = dist.DistributedSampler(100, 0, 2, seed=1), dist.DistributedSampler(100, 0, 2, seed=1)
    first, second = list(a), list(a)
    assert first != second and list(b) == first and list(b) == second
    assert sorted(dist.DistributedSampler(9, 1, 3, shuffle=False)) == [1, 4, 7]
    with pytest.raises(ValueError, match="rank must be in"):
        dist.DistributedSampler(10, 2, 2)


def test_dataloader_with_a_sampler():
    x = np.arange(10)
    loader = DataLoader((x, x), batch_size=2, sampler=dist.DistributedSampler(10, 1, 2))
    assert len(loader) == 3
    seen = np.concatenate([b[0] for b in loader])
    assert len(seen) == 5 and len(set(seen)) == 5
    with pytest.raises(ValueError, match="shuffle or a sampler"):
        DataLoader((x,), shuffle=True, sampler=dist.DistributedSampler(10, 0, 1))


def small_model(seed=0):
    model = Sequential(nn.Conv2d(1, 4, 3, padding=1, rng=seed), nn.BatchNorm2d(4), nn.ReLU(),
                       nn.MaxPool2d(2), nn.Flatten(), nn.Linear(64, 3, rng=seed + 1))
    return model.compile(Adam(model.parameters(), lr=0.01), nn.SoftmaxCrossEntropy())


def test_world_of_one_without_mpiexec():
    """No launcher: rank 0 of 1, and a distributed fit is an ordinary fit, to the bit."""
    assert (dist.rank(), dist.world_size(), dist.local_rank(), dist.comm()) == (0, 1, 0, None)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(30, 1, 8, 8)).astype(np.float32), rng.integers(0, 3, 30)
    runs = []
    for distributed in (False, True):
        model = small_model()
        history = model.fit(DataLoader((x, y), batch_size=8, shuffle=True, seed=1), epochs=2,
                            val=(x, y), verbose=0, distributed=distributed)
        runs.append(([a.copy() for layer in model for a in layer.params.values()],
                     {k: v for k, v in history.history.items() if k != "time"}))
        assert model.parallel is None
    (plain, plain_logs), (spread, spread_logs) = runs
    assert all(np.array_equal(a, b) for a, b in zip(plain, spread))
    assert plain_logs == spread_logs
    assert model.evaluate((x, y), distributed=True) == model.evaluate((x, y))


def test_eval_shards_split_the_data():
    x = np.arange(10)
    shards = [dist.eval_shard((x,), 3, r, 3) for r in range(3)]
    assert [len(s) for s in shards] == [1, 1, 2]     # batches of 3 over 3, 3, 4 examples
    assert np.array_equal(np.concatenate([b[0] for s in shards for b in s]), x)
    assert len(dist.eval_shard(DataLoader((x,), batch_size=5), 500)) == 2   # all, its batches


def test_mismatch_message_names_the_rank_and_the_difference():
    a = dist.signature(small_model())
    b = dist.signature(Sequential(nn.Conv2d(1, 5, 3, padding=1)))
    text = dist._first_difference({"parameters": b}, {"parameters": a}, 1)
    assert "(5, 1, 3, 3)" in text and "(4, 1, 3, 3)" in text and "rank 0" in text
    text = dist._first_difference({"parameters": a[:2]}, {"parameters": a}, 1)
    assert "lacks" in text and "BatchNorm2d" in text


# ---------------------------------------------------------------- gradient buckets, no MPI


def memories():
    """The array primitives of host memory, and of GPU memory where the cuda backend
    imports (Numba's simulator without a GPU)."""
    from fastcnn.backends import _numpy
    found = [pytest.param(_numpy, id="host")]
    if cuda_usable():
        from fastcnn.backends.cuda import _arrays
        found.append(pytest.param(_arrays, id="cuda"))
    return found


@pytest.mark.parametrize("memory", memories())
def test_the_primitives_buckets_use(memory):
    a = memory.zeros(6, np.float32)
    assert backends.memory_of(a) is memory
    memory.copy_into(a, np.arange(6, dtype=np.float32))
    memory.scale(a, 0.5)
    b = memory.zeros(6, np.float32)
    memory.copy_into(b, a)                          # within one memory
    host = memory.pinned_empty(6, np.float32)
    assert isinstance(host, np.ndarray) and backends.memory_of(host).HOST_MEMORY
    memory.copy_to_host(b, host)
    np.testing.assert_array_equal(host, np.arange(6) / 2)
    seen = memory.mpi_buffer(b)                     # what MPI reads: b's own memory
    if isinstance(seen, np.ndarray):
        seen[0] = 7
        memory.copy_to_host(b, host)
        assert host[0] == 7


@pytest.mark.parametrize("memory", memories())
@pytest.mark.parametrize("aware", [False, True])
def test_a_bucket_holds_the_gradients_and_averages_them(memory, aware):
    """As average_gradients runs it, with three ranks' equal sums faked in the buffer."""
    from fastcnn.distributed.parallel import _Bucket
    model = small_model()
    layers = [layer for layer in model.layers if layer.grads]
    for i, layer in enumerate(layers):
        for k, g in layer.grads.items():
            layer.grads[k] = memory.zeros(g.shape, g.dtype)
            memory.copy_into(layer.grads[k], np.full(g.shape, i + 1.0, g.dtype))
    bucket = _Bucket([(layer, k) for layer in layers for k in layer.grads], np.float32,
                     memory, aware)
    assert (bucket.staging is None) == (aware or memory.HOST_MEMORY)
    assert all(layer.grads[k] is view for layer, k, view in bucket.entries)
    buffer = bucket.mpi_buffer()        # a host array, unless MPI reads a real GPU's memory
    backends.memory_of(buffer).scale(buffer, 3)     # the sum over three ranks alike
    bucket.finish(3)
    for i, layer in enumerate(layers):
        for k, g in layer.grads.items():
            np.testing.assert_allclose(backends.to_host(g), i + 1.0, rtol=1e-6)


def test_a_failing_rank_waits_until_its_report_was_read():
    """abort's report must reach the launcher before MPI_Abort ends it: the rank waits
    until the pipe to the launcher holds nothing unread, and never past the deadline."""
    import select
    import threading
    import time

    from fastcnn.distributed.world import _wait_until_read
    read, write = os.pipe()
    try:
        report = b"Traceback (most recent call last):\n" * 100
        os.write(write, report)
        taken = []
        reader = threading.Timer(0.2, lambda: taken.append(os.read(read, 1 << 16)))
        reader.start()
        _wait_until_read(write, time.monotonic() + 30)
        assert not select.select([read], [], [], 0)[0]     # nothing left to read
        reader.join()
        assert taken == [report]
        os.write(write, b"no one reads this")
        _wait_until_read(write, time.monotonic() + 0.05)   # returns at the deadline
        assert select.select([read], [], [], 0)[0]
    finally:
        os.close(read)
        os.close(write)


# ---------------------------------------------------------------- under mpiexec


def launcher():
    """mpiexec beside this Python (pip install mpich puts it there), else on PATH."""
    beside = Path(sys.executable).parent / "mpiexec"
    if beside.exists():
        return str(beside)
    return shutil.which("mpiexec") or shutil.which("mpirun")


def mpi_env():
    env = dict(os.environ)
    # Open MPI refuses root and more ranks than cores unless told; MPICH ignores these.
    env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMPI_MCA_rmaps_base_oversubscribe="1",
               PRTE_MCA_rmaps_default_mapping_policy=":oversubscribe")
    return env


def mpirun(tmp_path, *args, timeout=TIMEOUT, hang=pytest.fail):
    """(exit status, stdout + stderr) of mpiexec -n 2 python ARGS, run in tmp_path (so
    the installed fastcnn is imported, not the checkout's sources). A job still running
    after timeout seconds is killed, with its whole process group, and fails the test
    (or what hang says)."""
    command = [launcher(), "-n", "2", sys.executable, *map(str, args)]
    job = subprocess.Popen(command, cwd=tmp_path, env=mpi_env(), stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = job.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(job.pid, signal.SIGKILL)
        out, _ = job.communicate()
        hang(f"{' '.join(command)} hung (killed after {timeout} s); output:\n{out}")
    return job.returncode, out


@pytest.fixture(scope="module")
def mpi(tmp_path_factory):
    """Skip, saying why, unless mpiexec starts two ranks that see each other."""
    if launcher() is None:
        pytest.skip("no MPI launcher: mpiexec is neither beside this Python nor on PATH "
                    "(pip install 'fastcnn[dist]')")
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        pytest.skip("mpi4py is not installed (pip install 'fastcnn[dist]')")
    probe = "import sys; from mpi4py import MPI; sys.exit(MPI.COMM_WORLD.Get_size() != 2)"
    status, out = mpirun(tmp_path_factory.mktemp("mpi"), "-c", probe, timeout=60,
                         hang=pytest.skip)
    if status != 0:
        pytest.skip(f"{launcher()} -n 2 cannot start two MPI ranks here (exit status "
                    f"{status}): {out.strip()[-500:]}")


def run_check(tmp_path, check, timeout=TIMEOUT):
    """(exit status, output, [what rank 0 reported, what rank 1 reported]) of a check
    ("name args...")."""
    status, out = mpirun(tmp_path, CHECKS, *check.split(), timeout=timeout)
    reports = [tmp_path / f"rank-{r}.txt" for r in (0, 1)]
    return status, out, [p.read_text() if p.exists() else "" for p in reports]


def test_two_ranks_train_as_one(mpi, tmp_path):
    """After steps, both ranks hold bit-identical parameters and running statistics; a
    step on batch 2B split over two ranks equals a one-process step on the 2B batch;
    logs and evaluation are over both shards; only rank 0 writes checkpoints."""
    status, out, reports = run_check(tmp_path, "train")
    assert status == 0 and reports == ["train ok\n"] * 2, out


@pytest.mark.parametrize("where", ["in_fit", "outside_fit"])
def test_a_failing_rank_ends_the_job(mpi, tmp_path, where):
    """Rank 1 raises while rank 0 waits for it in an allreduce: the job ends (no hang),
    with a non-zero status and rank 1's traceback; in fit even when the error is caught."""
    status, out, _ = run_check(tmp_path, f"fail {where}", timeout=60)
    assert status != 0, out
    assert "RuntimeError: rank 1 fails on purpose" in out, out
    assert "rank 1 of 2 stops after RuntimeError: rank 1 fails on purpose; aborting all " \
           "ranks" in out, out


def test_mismatched_models_raise_on_every_rank(mpi, tmp_path):
    """Before training, so the error can be caught: different shapes, different data."""
    status, out, reports = run_check(tmp_path, "mismatch")
    assert status == 0, out
    for report in reports:
        shapes, steps, ok = report.splitlines()
        assert shapes.startswith("ValueError: distributed: rank 1 differs from rank 0 (all "
                                 "ranks must hold the same model and take the same number of "
                                 "steps). First difference: rank 1 has layer 0 "
                                 "Conv2d(1, 5, 3, padding=1)"), report
        assert "(5, 1, 3, 3)" in shapes and "(4, 1, 3, 3)" in shapes, report
        assert steps.endswith("rank 1 has steps per epoch 4 where rank 0 has 1"), report
        assert ok == "mismatch ok", report


def test_gpu_gradients_are_averaged(mpi, tmp_path):
    """Device-array gradients, through pinned host buffers and as with CUDA-aware MPI
    (on Numba's CUDA simulator unless FASTCNN_TEST_GPU=1)."""
    pytest.importorskip("numba_cuda")
    status, out, reports = run_check(tmp_path, "gpu")
    assert status == 0 and reports == ["gpu ok\n"] * 2, out
