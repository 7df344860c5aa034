"""Checks that need several MPI processes; tests/test_distributed.py runs them as

    mpiexec -n 2 python tests/mpi/checks.py CHECK [ARGS]

Each rank writes what it found to rank-R.txt in the current folder, ending with
"CHECK ok" when its part passed (files, as the ranks' printed lines can interleave); a
failed assertion is an uncaught exception, which aborts the job (fastcnn.distributed's
excepthook), so a failing check ends with a non-zero exit and its traceback.
"""

import os
import sys

import numpy as np

import fastcnn
from fastcnn import distributed as dist
from fastcnn import nn
from fastcnn.data import DataLoader
from fastcnn.model import Input, Model, ModelCheckpoint, Sequential
from fastcnn.optim import SGD, Adam


def plain_cnn(seed, dtype=np.float64, channels=4):
    """No BatchNorm, no Dropout: a step on a batch split over ranks equals a step on the
    whole batch (per-rank batch statistics would differ from the whole batch's)."""
    model = Sequential(nn.Conv2d(1, channels, 3, padding=1, dtype=dtype, rng=seed), nn.ReLU(),
                       nn.MaxPool2d(2), nn.Flatten(),
                       nn.Linear(channels * 16, 3, dtype=dtype, rng=seed + 1))
    return model.compile(SGD(model.parameters(), lr=0.1), nn.SoftmaxCrossEntropy())


def full_cnn(seed):
    model = Sequential(nn.Conv2d(1, 4, 3, padding=1, rng=seed), nn.BatchNorm2d(4), nn.ReLU(),
                       nn.MaxPool2d(2), nn.Flatten(), nn.Dropout(0.25, rng=seed),
                       nn.Linear(64, 3, rng=seed + 1))
    return model.compile(Adam(model.parameters(), lr=0.01), nn.SoftmaxCrossEntropy())


def data(n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(0, 1, (n, 1, 8, 8)).astype(np.float32), rng.integers(0, 3, n)


def state(model):
    return [np.array(fastcnn.to_host(a)) for layer in model.layers
            for d in (layer.params, layer.buffers) for a in d.values()]


def check_train():
    r, world = dist.rank(), dist.world_size()
    assert world == 2 and dist.local_rank() == r, (world, dist.local_rank())
    if "OMP_NUM_THREADS" not in os.environ:     # init() shares the cores out
        assert fastcnn.get_num_threads() == 1, fastcnn.get_num_threads()

    # One step on batch 2B split over two ranks equals one step on the whole batch.
    # Each rank starts from different weights: the broadcast makes them rank 0's.
    x, y = data(8, seed=1)
    x = x.astype(np.float64)
    b = len(x) // world
    model = plain_cnn(seed=10 + r)
    dist.DataParallel(model)
    model.train_step(x[r * b:(r + 1) * b], y[r * b:(r + 1) * b])
    if r == 0:
        whole = plain_cnn(seed=10)
        whole.train_step(x, y)
        for layer, ref in zip(model.layers, whole.layers):
            for k in layer.params:
                np.testing.assert_allclose(layer.grads[k], ref.grads[k], rtol=1e-12,
                                           atol=1e-14, err_msg=f"{layer.name} grad {k}")
                np.testing.assert_allclose(layer.params[k], ref.params[k], rtol=1e-12,
                                           atol=1e-14, err_msg=f"{layer.name} {k}")

    # A distributed fit (BatchNorm, Dropout, Adam; 50 examples: the shards are padded)
    # leaves bit-identical parameters and running statistics on both ranks, the same logs,
    # and only rank 0 writes the checkpoint.
    model = full_cnn(seed=20 + r)
    saved = []
    model.save = saved.append
    x, y = data(50, seed=2)
    loader = DataLoader((x, y), batch_size=8, shuffle=True, seed=3)
    history = model.fit(loader, epochs=2, val=data(21, seed=4), verbose=0, distributed=True,
                        callbacks=[ModelCheckpoint("unused.npz")])
    assert model.parallel is None
    theirs = dist.comm().allgather(state(model))
    for a, b in zip(theirs[0], theirs[1]):
        assert a.dtype == b.dtype and np.array_equal(a, b), "the ranks' models differ"
    logs = {k: v for k, v in history.history.items() if k != "time"}
    assert dist.comm().allgather(logs) == [logs, logs]
    assert len(saved) == (2 if r == 0 else 0), saved
    # 25 examples a rank in batches of 8: 4 steps an epoch, the loss over all 50 (+ pad).
    assert model.optimizer.steps == 8, model.optimizer.steps
    scores = model.evaluate(data(21, seed=4), distributed=True)
    assert scores == {"loss": logs["val_loss"][-1], "accuracy": logs["val_accuracy"][-1]}


def check_fail(where):
    """Rank 1 raises while rank 0 goes on to an allreduce: in its third training step
    (and catches the error: fit aborts the job anyway), or outside fit (uncaught)."""
    if where == "outside_fit":
        dist.init()
        if dist.rank() == 1:
            raise RuntimeError("rank 1 fails on purpose")
        dist.allreduce_sum([1.0])
        return
    model = full_cnn(seed=0)
    steps = []

    def fail_on_rank_1(x, rng):
        steps.append(1)
        if dist.rank() == 1 and len(steps) == 3:
            raise RuntimeError("rank 1 fails on purpose")
        return x

    loader = DataLoader(data(64), batch_size=8, shuffle=True, transform=fail_on_rank_1)
    try:
        model.fit(loader, epochs=1, verbose=0, distributed=True)
    except RuntimeError:
        pass
    dist.allreduce_sum([1.0])


def check_mismatch():
    """Rank 1 builds a convolution with one channel more, then the same model with more
    data than rank 0 (more steps an epoch): both ranks raise, clearly, both times."""
    for channels, n in ((4 + dist.rank(), 16), (4, 16 + 40 * dist.rank())):
        model = plain_cnn(seed=0, dtype=np.float32, channels=channels)
        try:
            model.fit(data(n), epochs=1, batch_size=8, verbose=0, distributed=True)
        except ValueError as e:
            report(f"ValueError: {e}")
        else:
            raise AssertionError("a mismatch went unnoticed")


def check_gpu():
    """Gradient averaging with device arrays, through pinned host buffers and (as a
    CUDA-aware MPI would) on the device buffers themselves, with a bucket size that
    splits the gradients. On Numba's CUDA simulator without a GPU."""
    from numba import cuda
    r = dist.rank()
    for aware in ("0", "1"):
        os.environ["FASTCNN_MPI_CUDA_AWARE"] = aware
        model = plain_cnn(seed=0)
        for i, layer in enumerate(model.layers):
            for k, g in layer.grads.items():
                layer.grads[k] = cuda.to_device(np.full(g.shape, 10.0 * i + r, g.dtype))
        parallel = dist.DataParallel(model, bucket_mb=400 / 2**20)
        # conv weight and bias (288 + 32 bytes), linear weight (1536), linear bias (24)
        assert [len(b.entries) for b in parallel.buckets] == [2, 1, 1]
        assert all(b.memory.DEVICE == "cuda" for b in parallel.buckets)
        assert (parallel.buckets[0].staging is None) == (aware == "1")
        for _ in range(2):      # the second time, the gradients already are bucket views
            parallel.average_gradients()
            for i, layer in enumerate(model.layers):
                for k, g in layer.grads.items():
                    np.testing.assert_array_equal(g.copy_to_host(), 10.0 * i + 0.5)
            for i, layer in enumerate(model.layers):   # back to each rank's own values
                for k, g in layer.grads.items():
                    g.copy_to_device(np.full(g.shape, 10.0 * i + r, g.dtype))


def residual_graph(seed, frozen=True):
    """A graph with a skip connection and (frozen) a frozen first convolution, float64,
    no BatchNorm: a step on a split batch equals the step on the whole batch."""
    rng = np.random.default_rng(seed)
    x = Input((1, 8, 8))
    h = nn.ReLU()(nn.Conv2d(1, 4, 3, padding=1, dtype=np.float64, rng=rng)(x, name="stem"))
    body = Sequential(nn.Conv2d(4, 4, 3, padding=1, dtype=np.float64, rng=rng), nn.Tanh())
    y = nn.Flatten()(nn.MaxPool2d(2)(nn.Residual(body)(h)))
    model = Model(x, nn.Linear(64, 3, dtype=np.float64, rng=rng)(y))
    if frozen:
        model["stem"].freeze()
    return model.compile(Adam(model.parameters(), lr=0.01), nn.SoftmaxCrossEntropy())


def check_graph():
    r, world = dist.rank(), dist.world_size()
    x, y = data(8, seed=5)
    x = x.astype(np.float64)
    b = len(x) // world
    model = residual_graph(seed=30 + r)
    dist.DataParallel(model)
    model.train_step(x[r * b:(r + 1) * b], y[r * b:(r + 1) * b])
    if r == 0:
        whole = residual_graph(seed=30)
        whole.train_step(x, y)
        for layer, ref in zip(model.layers, whole.layers):
            for k in layer.params:
                np.testing.assert_allclose(layer.params[k], ref.params[k], rtol=1e-12,
                                           atol=1e-14, err_msg=f"{layer.name} {k}")
        stem = residual_graph(seed=30)["stem"]
        for k in stem.params:      # frozen: untouched by the step
            np.testing.assert_array_equal(model["stem"].params[k], stem.params[k])
    model = residual_graph(seed=40 + r, frozen=False)
    history = model.fit(DataLoader(data(40, seed=6), batch_size=8, shuffle=True, seed=1),
                        epochs=2, verbose=0, distributed=True)
    theirs = dist.comm().allgather(state(model))
    for a, b in zip(theirs[0], theirs[1]):
        assert np.array_equal(a, b), "the ranks' graph models differ"
    assert history["loss"][-1] < history["loss"][0], history["loss"]


def report(line):
    with open(f"rank-{dist.rank()}.txt", "a") as f:
        f.write(line + "\n")


if __name__ == "__main__":
    name = sys.argv[1]
    globals()[f"check_{name}"](*sys.argv[2:])
    report(f"{name} ok")
