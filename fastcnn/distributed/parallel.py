"""Gradient averaging: the gradients as views of flat buckets, one Allreduce each, and
DataParallel, the training loop's strategy for data-parallel training."""

import os
import time

import numpy as np

from .. import backends
from ..data import DataLoader, as_dataset
from ..model.training import Strategy
from .sharding import eval_shard, shard
from .state import broadcast_state, check_same_model, sync_buffers
from .world import abort, allreduce_sum, comm, init, is_main, rank, world_size


def cuda_aware():
    """Whether MPI reads and writes GPU memory itself (CUDA-aware MPI). FASTCNN_MPI_CUDA_AWARE
    =1 or 0 overrides the answer; otherwise mpi4py's Query_cuda_support where it exists,
    else MPI 4.1's memory-kinds info ("cuda" or "cuda:device" among mpi_memory_alloc_kinds)."""
    forced = os.environ.get("FASTCNN_MPI_CUDA_AWARE")
    if forced in ("0", "1"):
        return forced == "1"
    if world_size() == 1:
        return False
    from mpi4py import MPI
    query = getattr(MPI, "Query_cuda_support", None)
    if query is not None:
        return bool(query())
    info = comm().Get_info()
    try:
        kinds = info.Get("mpi_memory_alloc_kinds") or ""
    finally:
        info.Free()
    return any(k.strip() in ("cuda", "cuda:device") for k in kinds.split(","))


class _Bucket:
    """A flat buffer of one dtype in one memory (host or GPU), holding the gradients of
    some parameters as views (layer.grads[key] is a view of it), reduced with one
    Allreduce. memory: the backends' primitives for that memory (backends.memory_of)."""

    def __init__(self, entries, dtype, memory, cuda_aware):
        self.dtype, self.memory = np.dtype(dtype), memory
        self.offsets, size = [], 0
        for layer, key in entries:
            self.offsets.append(size)
            # Start each gradient on a 64-byte boundary, for the vectorised kernels.
            size += -(-int(np.prod(layer.grads[key].shape)) // 16) * 16
        self.size = size
        self.flat = memory.zeros(size, self.dtype)
        # MPI reads host memory, and GPU memory when it is CUDA-aware; otherwise the
        # reduction goes through a host copy, pinned so that the copies run at full speed.
        self.staging = None if cuda_aware or memory.HOST_MEMORY else \
            memory.pinned_empty(size, self.dtype)
        self.entries = []
        for (layer, key), offset in zip(entries, self.offsets):
            grad = layer.grads[key]
            view = self.flat[offset:offset + int(np.prod(grad.shape))].reshape(grad.shape)
            self.entries.append((layer, key, view))
        self.attach()

    def fits(self, grad, view):
        return (tuple(grad.shape) == tuple(view.shape) and np.dtype(grad.dtype) == self.dtype
                and backends.memory_of(grad) is self.memory)

    def attach(self):
        """Make every gradient a view of this bucket again, keeping its current values.
        False when one no longer fits (moved to another device, reshaped): rebuild then."""
        for layer, key, view in self.entries:
            grad = layer.grads[key]
            if grad is view:
                continue
            if not self.fits(grad, view):
                return False
            self.memory.copy_into(view, grad)
            layer.grads[key] = view
        return True

    def mpi_buffer(self):
        """What MPI reduces: the staging copy on the host, or the buffer itself (once the
        kernels writing it have finished)."""
        if self.staging is None:
            return self.memory.mpi_buffer(self.flat)
        self.memory.copy_to_host(self.flat, self.staging)
        return self.staging

    def finish(self, world):
        """Divide the sums by the number of ranks, where MPI left them (and copy them back
        from the staging buffer)."""
        if self.staging is None:
            self.memory.scale(self.flat, 1 / world)
        else:
            backends.memory_of(self.staging).scale(self.staging, 1 / world)
            self.memory.copy_into(self.flat, self.staging)


class World(Strategy):
    """The training loop's hooks (fastcnn.model.training.Strategy) that need only the
    MPI world: rank 0 prints and writes, each rank evaluates its share of the data, sums
    are added across ranks, a failure aborts the job. evaluate(distributed=True) uses it."""

    @property
    def is_main(self):
        return is_main()

    def eval_shard(self, data, batch_size):
        return eval_shard(data, batch_size)

    def reduce(self, values):
        return list(allreduce_sum(values))

    def abort(self, error):
        abort(error)


class DataParallel(World):
    """Sets a model up for data-parallel training and averages its gradients.

    On creation (a collective: every rank must create one): checks that all ranks hold
    the same model (ValueError naming the ranks and the first difference, on every rank),
    copies rank 0's parameters and buffers to the others, gives each rank's Dropout
    layers their own masks, and makes the gradients views of flat per-dtype buckets.
    Attached to the model (model.parallel), so model.train_step averages the gradients
    between backward and the optimizer step; in a hand-written step, call
    average_gradients() there yourself.

    It is also the strategy of model.fit(distributed=True) (see for_fit): gradients
    averaged after every backward, the running statistics at the end of every epoch.

    allreduce_seconds and allreduces count the time spent in (and the calls of) the
    gradient allreduce, waiting for the slowest rank included."""

    def __init__(self, model, bucket_mb=4, check=None):
        init()
        self.model, self.bucket_bytes = model, int(bucket_mb * 2**20)
        self.rank, self.world_size = rank(), world_size()
        self.allreduce_seconds, self.allreduces = 0.0, 0
        self.buckets = []
        if self.world_size > 1:
            check_same_model(model, check)
            broadcast_state(model)
            self._decorrelate_dropout()
            self.cuda_aware = cuda_aware()
            self._build()
        model.parallel = self

    @classmethod
    def for_fit(cls, model, train, epochs, val):
        """(a DataParallel of model, this rank's shard of the DataLoader train) for
        model.fit(distributed=True): a collective. What differs across ranks would leave
        some waiting in a collective, so it is refused first, on every rank alike."""
        train = shard(train)
        val_size = None if val is None else len(
            val.dataset if isinstance(val, DataLoader) else as_dataset(val))
        return cls(model, check={"steps per epoch": len(train), "epochs": epochs,
                                 "validation examples": val_size}), train

    def after_backward(self):
        self.average_gradients()

    def end_epoch(self):
        sync_buffers(self.model)

    def detach(self):
        """Stop averaging in model.train_step (the gradients stay views of the buckets)."""
        if self.model.parallel is self:
            self.model.parallel = None

    def _decorrelate_dropout(self):
        """Ranks built from the same seed would draw the same dropout masks for their
        (different) batches: rank r > 0 mixes r into each Dropout layer's seed."""
        from ..nn.layers import Dropout
        if self.rank == 0:
            return
        for layer in self.model.layers:
            if isinstance(layer, Dropout):
                layer.seed = int(np.random.SeedSequence([layer.seed, self.rank])
                                 .generate_state(1)[0])

    def _build(self):
        """Group the gradients into buckets of one dtype and device, in model order, each
        at most bucket_bytes (a larger gradient gets a bucket of its own)."""
        groups = {}
        for layer in self.model.layers:
            for key, grad in layer.grads.items():
                where = (np.dtype(grad.dtype), backends.memory_of(grad))
                groups.setdefault(where, []).append((layer, key))
        self.buckets = []
        for (dtype, memory), entries in groups.items():
            start, nbytes = 0, 0
            for i, (layer, key) in enumerate(entries):
                size = int(np.prod(layer.grads[key].shape)) * dtype.itemsize
                if i > start and nbytes + size > self.bucket_bytes:
                    self.buckets.append(_Bucket(entries[start:i], dtype, memory,
                                                self.cuda_aware))
                    start, nbytes = i, 0
                nbytes += size
            self.buckets.append(_Bucket(entries[start:], dtype, memory, self.cuda_aware))

    def average_gradients(self):
        """Replace every rank's gradients by their mean over the ranks: one in-place
        Allreduce per bucket. (A mean loss over the union of the ranks' equal-sized
        batches has exactly this gradient.)"""
        if self.world_size == 1:
            return
        from mpi4py import MPI
        if not all(bucket.attach() for bucket in self.buckets):
            self._build()      # a gradient was replaced by one of another shape or device
        world = comm()
        for bucket in self.buckets:
            buffer = bucket.mpi_buffer()
            start = time.perf_counter()
            world.Allreduce(MPI.IN_PLACE, buffer, op=MPI.SUM)
            self.allreduce_seconds += time.perf_counter() - start
            self.allreduces += 1
            bucket.finish(self.world_size)
