"""The model's state across ranks: rank 0's copied to the others, buffers averaged, and
the check that every rank holds the same model."""

import numpy as np

from .. import backends
from .world import comm, world_size


def _write(a, values):
    """Write the host array values into a, in place, wherever a lives."""
    backends.memory_of(a).copy_into(a, np.ascontiguousarray(values).reshape(a.shape))


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
        comm().Bcast(flat, root=root)
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
        comm().Allreduce(MPI.IN_PLACE, flat, op=MPI.SUM)
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
    everyone = comm().allgather(mine)
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
