"""A train sampler that can resume in the middle of an epoch, DDP-aware like DistributedSampler.

Each epoch's order is a seeded permutation of ``range(n)`` (``torch.randperm`` with a generator
seeded ``seed + epoch``, as torch's ``DistributedSampler``), padded by repeating the start of the
order so that it divides evenly among replicas (or truncated with ``drop_last``), and then
strided ``order[rank::num_replicas]``. With ``pad=False`` nothing is repeated: the replicas'
shares differ by at most one sample and together hold every index exactly once (validation, where
a repeated sample would count twice in the metrics). ``set_start(k)`` skips the first ``k`` samples of this
replica's order for the NEXT iteration only (mid-epoch resume); it is reset to 0 when that
iteration starts. ``set_epoch(e)`` also calls every listener added by ``add_epoch_listener`` (the
data module uses it to tell the dataset the epoch, for the (seed, epoch, index) augmentation draw).
Written by hand because torch's DistributedSampler cannot skip a prefix of an epoch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import torch
from torch.utils.data import Sampler


def _world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_world_size(), torch.distributed.get_rank()
    return 1, 0


class ResumableSampler(Sampler[int]):
    """Indices ``0..n-1`` for one replica; see the module docstring."""

    def __init__(
        self,
        n: int,
        seed: int = 0,
        shuffle: bool = True,
        num_replicas: int | None = None,
        rank: int | None = None,
        drop_last: bool = False,
        pad: bool = True,
    ):
        world, this_rank = _world()
        self.num_replicas = world if num_replicas is None else int(num_replicas)
        self.rank = this_rank if rank is None else int(rank)
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        if self.num_replicas < 1 or not 0 <= self.rank < self.num_replicas:
            raise ValueError(
                f"rank must be in [0, num_replicas), got rank {self.rank}, num_replicas {self.num_replicas}"
            )
        self.n, self.seed, self.shuffle, self.drop_last = int(n), int(seed), shuffle, drop_last
        self.epoch, self.start = 0, 0
        self._listeners: list[Callable[[int], None]] = []
        if drop_last:
            self.num_samples = self.n // self.num_replicas
            self.total_size = self.num_samples * self.num_replicas
        elif pad:
            self.num_samples = math.ceil(self.n / self.num_replicas)
            self.total_size = self.num_samples * self.num_replicas
        else:
            self.num_samples = len(range(self.rank, self.n, self.num_replicas))
            self.total_size = self.n

    def add_epoch_listener(self, fn: Callable[[int], None]) -> None:
        """Call ``fn(epoch)`` whenever :meth:`set_epoch` is called."""
        self._listeners.append(fn)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        for fn in self._listeners:
            fn(self.epoch)

    def set_start(self, k: int) -> None:
        """Skip the first ``k`` samples (of this replica) in the next iteration."""
        if not 0 <= k <= self.num_samples:
            raise ValueError(f"start must be in [0, {self.num_samples}] for this replica, got {k}")
        self.start = int(k)

    def order(self) -> list[int]:
        """This replica's full order for the current epoch (before ``start`` is applied)."""
        if self.shuffle:
            g = torch.Generator()
            g.manual_seed(self.seed + self.epoch)
            indices = torch.randperm(self.n, generator=g).tolist()
        else:
            indices = list(range(self.n))
        if self.drop_last:
            indices = indices[: self.total_size]
        elif self.n and len(indices) < self.total_size:
            pad = self.total_size - len(indices)
            indices += (indices * math.ceil(pad / len(indices)))[:pad]
        return indices[self.rank : self.total_size : self.num_replicas]

    def __iter__(self) -> Iterator[int]:
        start, self.start = self.start, 0
        return iter(self.order()[start:])

    def __len__(self) -> int:
        return self.num_samples - self.start
