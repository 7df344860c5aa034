"""Each rank's share of the data: a sampler that shards one permutation, the training
loader of a rank, the share of an evaluation."""

import numpy as np

from ..data import DataLoader, Subset, as_dataset
from .world import comm, rank, world_size

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
        seed = comm().bcast(seed, root=0)
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
