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

from .parallel import DataParallel, World, cuda_aware  # noqa: F401
from .sharding import DistributedSampler, eval_shard, shard  # noqa: F401
from .state import (_first_difference, broadcast_state, check_same_model,  # noqa: F401
                    signature, sync_buffers)
from .world import (LAUNCHER_SIZE_VARIABLES, LAUNCHER_VARIABLES, abort,  # noqa: F401
                    allreduce_sum, barrier, comm, init, is_main, local_rank, rank,
                    set_threads, world_size)
