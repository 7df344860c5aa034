"""Data-parallel training on MPI: every process (rank) holds the whole model, trains on its
own shard of the data, and the ranks average their gradients before each optimizer step,
so all of them take the same step and stay identical (the scheme of Horovod and ChainerMN).

    mpiexec -n 2 python train.py            # train.py calls model.fit(..., distributed=True)

Without mpiexec (or without mpi4py) everything here behaves as a world of one process:
``rank()`` is 0, ``world_size()`` is 1, averaging and broadcasting do nothing.

What one step costs on top of the single-process step: one in-place ``Allreduce`` per
gradient bucket (a flat, preallocated buffer holding the gradients of consecutive
parameters of one dtype, at most ``bucket_mb`` MB). The layers write their gradients
straight into their bucket (``layer.grads[name]`` is a view of it), so nothing is copied
before the reduction and no MPI call is made per parameter.

BatchNorm: each rank normalises with the statistics of its own batch (no cross-rank
"sync batch norm"); the running statistics are averaged across ranks at the end of every
epoch of a distributed fit, before the evaluation and the checkpoints (``sync_buffers``).
"""

import os
import sys
import time
import traceback

import numpy as np

from . import backends
from .data import DataLoader, Subset, as_dataset

# Environment variables that launchers set in the processes they start: MPICH's and Intel
# MPI's hydra and Slurm's PMI-2 (PMI_*), Open MPI (OMPI_*), PMIx launchers, MVAPICH2.
LAUNCHER_SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE",
                           "MV2_COMM_WORLD_SIZE")
LAUNCHER_VARIABLES = LAUNCHER_SIZE_VARIABLES + ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK")

_comm = None          # mpi4py's COMM_WORLD once init() found a launcher, else None
_local = (0, 1)       # (rank among the ranks on this node, their number)
_initialised = False
_previous_excepthook = None


# ---------------------------------------------------------------- the world


def _launched():
    """True when a launcher (mpiexec, srun) started this process, or the program itself
    already imported mpi4py.MPI."""
    return "mpi4py.MPI" in sys.modules or any(v in os.environ for v in LAUNCHER_VARIABLES)


def init():
    """Join the MPI world when this process was started by mpiexec (idempotent); returns
    the world size. Called by everything below, so calling it yourself is optional.

    A plain ``python script.py`` never starts MPI: the world is this one process. With
    more than one rank, init also (1) makes an uncaught exception on any rank print its
    traceback and abort the whole job (MPI_Abort) instead of leaving the other ranks
    waiting forever, and (2) unless OMP_NUM_THREADS is set, gives each rank its share of
    this node's cores for the compiled kernels and BLAS (one thread each for two ranks
    on two cores), as ranks with all cores each would fight over them."""
    global _comm, _initialised
    if _initialised:
        return world_size()
    if _launched():
        try:
            from mpi4py import MPI
        except ImportError:
            size = next((os.environ[v] for v in LAUNCHER_SIZE_VARIABLES if v in os.environ),
                        "1")
            if size != "1":
                raise ImportError(
                    f"this process was started by an MPI launcher with {size} processes but "
                    f"mpi4py is not installed: pip install 'fastcnn[dist]' (on a cluster, "
                    f"pip install mpi4py against the cluster's MPI)") from None
        else:
            _comm = MPI.COMM_WORLD
    _initialised = True
    if world_size() > 1:
        _abort_on_uncaught_exceptions()
        _find_node()
        _share_cores()
    return world_size()


def comm():
    """The mpi4py communicator of all ranks (COMM_WORLD), or None in a world of one."""
    init()
    return _comm


def rank():
    """This process's rank: 0 .. world_size() - 1 (0 without mpiexec)."""
    init()
    return 0 if _comm is None else _comm.Get_rank()


def world_size():
    """The number of processes training together (1 without mpiexec)."""
    if not _initialised:
        init()
    return 1 if _comm is None else _comm.Get_size()


def local_rank():
    """This process's rank among the ranks on its node (machine): the GPU to pin it to,
    with one process per GPU."""
    init()
    return _local[0]


def is_main():
    """True on rank 0: the rank that prints, writes checkpoints and plots."""
    return rank() == 0


def barrier():
    if world_size() > 1:
        _comm.Barrier()


def _abort_on_uncaught_exceptions():
    """An exception no one catches ends this rank; the others would wait for it in their
    next collective forever. So print the traceback, then abort every rank."""
    global _previous_excepthook
    if _previous_excepthook is not None:
        return
    _previous_excepthook = sys.excepthook

    def abort_job(kind, value, tb):
        _previous_excepthook(kind, value, tb)
        abort(value, show=False)

    sys.excepthook = abort_job


def abort(error=None, show=True):
    """End every rank now (MPI_Abort), after printing error's traceback (with show) and
    which rank ended the job; the exit status is error's (a SystemExit's code), else 1.
    Does nothing in a world of one."""
    if world_size() == 1:
        return
    if show and error is not None:
        traceback.print_exception(error)
    code = error.code if isinstance(error, SystemExit) else 1
    code = code if isinstance(code, int) and code else 1
    why = "" if error is None else f" after {type(error).__name__}: {error}"
    sys.stdout.flush()
    sys.stderr.write(f"fastcnn.distributed: rank {rank()} of {world_size()} stops{why}; "
                     f"aborting all ranks\n")
    sys.stderr.flush()
    _comm.Abort(code)


def _find_node():
    """The ranks that share this node's memory (MPI's shared-memory split)."""
    global _local
    from mpi4py import MPI
    node = _comm.Split_type(MPI.COMM_TYPE_SHARED)
    _local = (node.Get_rank(), node.Get_size())
    node.Free()


def _share_cores():
    """Threads per rank: the cores this process may use, shared with the other ranks on
    this node; skipped when the user chose with OMP_NUM_THREADS."""
    if "OMP_NUM_THREADS" in os.environ:
        return
    local = _local[1]
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:      # no affinity masks (macOS)
        cores = os.cpu_count() or 1
    # A launcher that binds each rank to its own cores leaves fewer in the mask than the
    # node has: then all of them are this rank's.
    threads = max(1, cores // local) if cores >= (os.cpu_count() or 1) else cores
    set_threads(threads)


def set_threads(n):
    """n threads for the compiled kernels and for BLAS in this process."""
    from threadpoolctl import threadpool_limits

    from .backends.cpu.threads import set_num_threads
    from .backends import cpu  # noqa: F401  (loads SciPy's BLAS, so that the limit reaches it)
    set_num_threads(n)
    threadpool_limits(limits=n, user_api="blas")


# ---------------------------------------------------------------- the data

_this_rank, _this_world_size = rank, world_size    # for where arguments of those names hide them


class DistributedSampler:
    """Each rank's share of the indices 0 .. n-1: a disjoint shard of one permutation that
    all ranks draw alike (from seed and the epoch), so together they cover the data once
    per epoch, and every rank gets the same number of indices, hence the same number of
    steps (a rank with fewer would leave the others waiting in an allreduce).

    When n is not a multiple of the world size, the permutation is padded by repeating
    its first indices (a few examples are seen twice per epoch, as in PyTorch), or with
    drop_last=True its tail is left out (a few are not seen this epoch).

    Iterating yields one epoch's indices and moves on to the next epoch's permutation;
    set_epoch(e) picks one explicitly."""

    def __init__(self, n, rank=None, world_size=None, shuffle=True, seed=0, drop_last=False):
        self.rank = _this_rank() if rank is None else rank
        self.world_size = _this_world_size() if world_size is None else world_size
        if not (isinstance(n, (int, np.integer)) and n >= 0):
            raise ValueError(f"DistributedSampler: n must be an int >= 0, got {n!r}")
        if not 0 <= self.rank < self.world_size:
            raise ValueError(f"DistributedSampler: rank must be in [0, world_size), got rank "
                             f"{self.rank} and world_size {self.world_size}")
        self.n, self.shuffle, self.seed, self.drop_last = int(n), shuffle, seed, drop_last
        self.epoch = 0

    def __len__(self):
        w = self.world_size
        return self.n // w if self.drop_last else -(-self.n // w)

    def set_epoch(self, epoch):
        self.epoch = epoch

    def indices(self, epoch):
        """This rank's indices in the given epoch (an int array)."""
        if self.shuffle:
            order = np.random.default_rng([self.seed, epoch]).permutation(self.n)
        else:
            order = np.arange(self.n)
        total = len(self) * self.world_size
        order = np.resize(order, total)      # pads by repeating from the start, or truncates
        return order[self.rank:total:self.world_size]

    def __iter__(self):
        order = self.indices(self.epoch)
        self.epoch += 1
        return iter(order)

    def __repr__(self):
        return (f"DistributedSampler(n={self.n}, rank={self.rank}, "
                f"world_size={self.world_size}, shuffle={self.shuffle})")


def shard(loader, seed=None):
    """A DataLoader over this rank's shard of loader's dataset, with loader's batch size,
    drop_last and transform, shuffled (if loader shuffles) in an order that all ranks
    agree on: rank 0 draws the seed (from loader's generator, unless given) and
    broadcasts it. In a world of one, loader itself."""
    if world_size() == 1 or isinstance(loader.sampler, DistributedSampler):
        return loader
    if seed is None:
        seed = int(loader.rng.integers(2**63)) if rank() == 0 else None
        seed = _comm.bcast(seed, root=0)
    sampler = DistributedSampler(len(loader.dataset), shuffle=loader.shuffle, seed=seed)
    # The transform's random draws differ across ranks (they see different images).
    return DataLoader(loader.dataset, loader.batch_size, drop_last=loader.drop_last,
                      seed=[seed, rank()], transform=loader.transform, sampler=sampler)


def eval_shard(data, batch_size, rank=None, world_size=None):
    """A DataLoader over this rank's contiguous share of data (a DataLoader, a dataset or
    arrays) for an evaluation whose sums are added across ranks: disjoint, no padding,
    sizes may differ by one."""
    if isinstance(data, DataLoader):
        data, batch_size = data.dataset, data.batch_size
    dataset = as_dataset(data)
    r = _this_rank() if rank is None else rank
    w = _this_world_size() if world_size is None else world_size
    n = len(dataset)
    if w > 1:
        dataset = Subset(dataset, np.arange(r * n // w, (r + 1) * n // w))
    return DataLoader(dataset, batch_size=batch_size)


def allreduce_sum(values):
    """The sums over all ranks of a few numbers (a float64 array); values in a world of one."""
    values = np.array(values, dtype=np.float64)
    if world_size() > 1:
        from mpi4py import MPI
        _comm.Allreduce(MPI.IN_PLACE, values, op=MPI.SUM)
    return values


# ---------------------------------------------------------------- model state


def _write(a, values):
    """Write the host array values into a, in place, wherever a lives."""
    if backends.on_gpu(a):
        a.copy_to_device(np.ascontiguousarray(values.reshape(a.shape)))
    else:
        a[...] = values.reshape(a.shape)


def _state(model, kinds=("params", "buffers")):
    """(description, array) of every parameter and/or buffer, in model order."""
    return [(f"{layer.name}: {kind[:-1]} {key!r}", array)
            for layer in model.layers for kind in kinds
            for key, array in getattr(layer, kind).items()]


def _by_dtype(arrays):
    groups = {}
    for a in arrays:
        groups.setdefault(np.dtype(a.dtype), []).append(a)
    return groups


def broadcast_state(model, root=0):
    """Copy rank root's parameters and buffers (BatchNorm's running statistics) into every
    other rank's model, in place: one Bcast per dtype."""
    if world_size() == 1:
        return
    for dtype, arrays in _by_dtype([a for _, a in _state(model)]).items():
        flat = _pack(arrays, dtype)
        _comm.Bcast(flat, root=root)
        _unpack(flat, arrays)


def _pack(arrays, dtype):
    """The arrays (of one dtype, wherever they live) flattened into one new host array."""
    return np.concatenate([backends.to_host(a).reshape(-1) for a in arrays]).astype(
        dtype, copy=False)


def _unpack(flat, arrays):
    offset = 0
    for a in arrays:
        n = int(np.prod(a.shape))
        _write(a, flat[offset:offset + n])
        offset += n


def sync_buffers(model):
    """Average the buffers (BatchNorm's running mean and variance) across ranks, in place.
    The variance averaged is each rank's running variance: it leaves out the spread of
    the ranks' means, which is small when the shards are random draws of one dataset."""
    if world_size() == 1:
        return
    from mpi4py import MPI
    for dtype, arrays in _by_dtype([a for _, a in _state(model, ("buffers",))]).items():
        flat = _pack(arrays, dtype)
        _comm.Allreduce(MPI.IN_PLACE, flat, op=MPI.SUM)
        flat *= dtype.type(1 / world_size())
        _unpack(flat, arrays)


def signature(model):
    """What must be equal on every rank: each parameter's and buffer's layer, name, shape
    and dtype, in order."""
    return [(name, tuple(int(s) for s in a.shape), str(np.dtype(a.dtype)))
            for name, a in _state(model)]


def check_same_model(model, extra=None):
    """Raise ValueError on every rank unless all ranks hold the same parameters and buffers
    (names, shapes, dtypes), naming the ranks that differ from rank 0 and the first
    difference. extra: a dict of more things that must match (e.g. steps per epoch)."""
    if world_size() == 1:
        return
    mine = {"parameters": signature(model), **(extra or {})}
    everyone = _comm.allgather(mine)
    reference = everyone[0]
    differ = [r for r, theirs in enumerate(everyone) if theirs != reference]
    if not differ:
        return
    r = differ[0]
    who = f"rank {r} differs" if len(differ) == 1 else \
        f"ranks {', '.join(map(str, differ))} differ"
    raise ValueError(f"distributed: {who} from rank 0 (all ranks must hold the same model "
                     f"and take the same number of steps). First difference: rank {r} has "
                     f"{_first_difference(everyone[r], reference, r)}")


def _first_difference(theirs, ours, r):
    for key in ours:
        a, b = theirs.get(key), ours[key]
        if a == b:
            continue
        if key != "parameters":
            return f"{key} {a!r} where rank 0 has {b!r}"
        for x, y in zip(a, b):
            if x != y:
                return f"{_described(x)} where rank 0 has {_described(y)}"
        if len(a) > len(b):
            return (f"{len(a)} parameters and buffers, rank 0 {len(b)}; the first extra one: "
                    f"{_described(a[len(b)])}")
        return (f"{len(a)} parameters and buffers, rank 0 {len(b)}; the first one rank {r} "
                f"lacks: {_described(b[len(a)])}")
    return "?"


def _described(entry):
    name, shape, dtype = entry
    return f"{name} of shape {shape} {dtype}"


# ---------------------------------------------------------------- gradient averaging


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
    info = _comm.Get_info()
    try:
        kinds = info.Get("mpi_memory_alloc_kinds") or ""
    finally:
        info.Free()
    return any(k.strip() in ("cuda", "cuda:device") for k in kinds.split(","))


class _Bucket:
    """A flat buffer of one dtype on one device, holding the gradients of some parameters
    as views (layer.grads[key] is a view of it), reduced with one Allreduce."""

    def __init__(self, entries, dtype, gpu, cuda_aware):
        self.dtype, self.gpu = np.dtype(dtype), gpu
        self.offsets, size = [], 0
        for layer, key in entries:
            self.offsets.append(size)
            # Start each gradient on a 64-byte boundary, for the vectorised kernels.
            size += -(-int(np.prod(layer.grads[key].shape)) // 16) * 16
        self.size = size
        if gpu:
            from numba import cuda
            self.flat = cuda.device_array(size, self.dtype)
            # Without CUDA-aware MPI the reduction goes through host memory: pinned, so
            # the copies run at full speed.
            self.staging = None if cuda_aware else cuda.pinned_array(size, self.dtype)
        else:
            self.flat = np.zeros(size, self.dtype)
            self.staging = None
        self.entries = []
        for (layer, key), offset in zip(entries, self.offsets):
            grad = layer.grads[key]
            view = self.flat[offset:offset + int(np.prod(grad.shape))].reshape(grad.shape)
            self.entries.append((layer, key, view))
        self.attach()

    def fits(self, grad, view):
        return (tuple(grad.shape) == tuple(view.shape) and np.dtype(grad.dtype) == self.dtype
                and backends.on_gpu(grad) == self.gpu)

    def attach(self):
        """Make every gradient a view of this bucket again, keeping its current values.
        False when one no longer fits (moved to another device, reshaped): rebuild then."""
        for layer, key, view in self.entries:
            grad = layer.grads[key]
            if grad is view:
                continue
            if not self.fits(grad, view):
                return False
            if self.gpu:
                view.copy_to_device(grad)
            else:
                view[...] = grad
            layer.grads[key] = view
        return True

    def mpi_buffer(self):
        """What MPI reduces: the staging copy on the host, or the buffer itself."""
        if self.staging is not None:
            self.flat.copy_to_host(self.staging)
            return self.staging
        if self.gpu:
            from numba import cuda
            cuda.synchronize()       # the backward kernels must have finished writing
            # The simulator's device memory is host memory, readable by any MPI.
            return self.flat._ary if not hasattr(self.flat, "__cuda_array_interface__") \
                else self.flat
        return self.flat

    def finish(self, buffer, world):
        """Divide the sums by the number of ranks (and copy back from the staging buffer)."""
        scale = self.dtype.type(1 / world)
        if self.gpu and self.staging is None:
            from .backends.cuda._arrays import scale as scale_on_device
            scale_on_device(self.flat, scale)
        else:
            np.multiply(buffer, scale, out=buffer)
        if self.staging is not None:
            self.flat.copy_to_device(self.staging)


class DataParallel:
    """Sets a model up for data-parallel training and averages its gradients.

    On creation (a collective: every rank must create one): checks that all ranks hold
    the same model (ValueError naming the ranks and the first difference, on every rank),
    copies rank 0's parameters and buffers to the others, gives each rank's Dropout
    layers their own masks, and makes the gradients views of flat per-dtype buckets.
    Attached to the model (model.parallel), so model.train_step averages the gradients
    between backward and the optimizer step; in a hand-written step, call
    average_gradients() there yourself.

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

    def detach(self):
        """Stop averaging in model.train_step (the gradients stay views of the buckets)."""
        if self.model.parallel is self:
            self.model.parallel = None

    def _decorrelate_dropout(self):
        """Ranks built from the same seed would draw the same dropout masks for their
        (different) batches: rank r > 0 mixes r into each Dropout layer's seed."""
        from .nn.layers import Dropout
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
                groups.setdefault((np.dtype(grad.dtype), backends.on_gpu(grad)), []).append(
                    (layer, key))
        self.buckets = []
        for (dtype, gpu), entries in groups.items():
            start, nbytes = 0, 0
            for i, (layer, key) in enumerate(entries):
                size = int(np.prod(layer.grads[key].shape)) * dtype.itemsize
                if i > start and nbytes + size > self.bucket_bytes:
                    self.buckets.append(_Bucket(entries[start:i], dtype, gpu, self.cuda_aware))
                    start, nbytes = i, 0
                nbytes += size
            self.buckets.append(_Bucket(entries[start:], dtype, gpu, self.cuda_aware))

    def average_gradients(self):
        """Replace every rank's gradients by their mean over the ranks: one in-place
        Allreduce per bucket. (A mean loss over the union of the ranks' equal-sized
        batches has exactly this gradient.)"""
        if self.world_size == 1:
            return
        from mpi4py import MPI
        if not all(bucket.attach() for bucket in self.buckets):
            self._build()      # a gradient was replaced by one of another shape or device
        for bucket in self.buckets:
            buffer = bucket.mpi_buffer()
            start = time.perf_counter()
            _comm.Allreduce(MPI.IN_PLACE, buffer, op=MPI.SUM)
            self.allreduce_seconds += time.perf_counter() - start
            self.allreduces += 1
            bucket.finish(buffer, self.world_size)
