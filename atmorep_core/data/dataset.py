"""Monte Carlo neighbourhoods as a torch IterableDataset, sharded over ranks and workers."""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch.distributed as dist
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from atmorep_core.data.batch import Sample, collate
from atmorep_core.data.sampler import NeighbourhoodSampler
from atmorep_core.errors import ConfigError


class NeighbourhoodDataset(IterableDataset[Sample]):
    """A seeded sequence of `num_samples` Monte Carlo neighbourhoods per epoch, sharded.

    Element i of the sequence goes to shard i mod (world_size x workers), shard number
    rank x workers + worker id, so ranks and workers never read the same sample and together
    read exactly the single-process sequence. Positions are drawn in every shard from the same
    seed (cheap: a few integers per sample), so no shard needs to talk to another.
    """

    def __init__(
        self,
        sampler: NeighbourhoodSampler,
        num_samples: int,
        seed: int = 0,
        rank: int | None = None,
        world_size: int | None = None,
    ) -> None:
        super().__init__()
        if num_samples < 1:
            raise ConfigError(f"num_samples: must be at least 1, got {num_samples}")
        self.sampler, self.num_samples, self.seed, self.epoch = sampler, num_samples, seed, 0
        distributed = dist.is_available() and dist.is_initialized()
        self.rank = rank if rank is not None else (dist.get_rank() if distributed else 0)
        self.world_size = (
            world_size if world_size is not None else (dist.get_world_size() if distributed else 1)
        )
        if not 0 <= self.rank < self.world_size:
            raise ConfigError(f"rank: {self.rank} outside [0, {self.world_size})")

    def set_epoch(self, epoch: int) -> None:
        """A new sequence per epoch; call on every rank before iterating."""
        self.epoch = epoch

    def positions(self) -> np.ndarray:
        """(num_samples, 3) positions of this epoch, the same on every rank and worker."""
        rng = np.random.default_rng([self.seed, self.epoch])
        return self.sampler.draw_positions(rng, self.num_samples)

    def shard(self) -> tuple[int, int]:
        """(this shard's number, number of shards) for the calling process."""
        info = get_worker_info()
        workers, worker = (1, 0) if info is None else (info.num_workers, info.id)
        return self.rank * workers + worker, self.world_size * workers

    def __iter__(self) -> Iterator[Sample]:
        positions = self.positions()
        shard, shards = self.shard()
        for i in range(shard, self.num_samples, shards):
            t0, lat, lon = (int(v) for v in positions[i])
            yield self.sampler.read(t0, lat, lon, index=i)


def make_loader(
    dataset: NeighbourhoodDataset, batch_size: int, num_workers: int = 0, **options: Any
) -> DataLoader[Sample]:
    """A DataLoader of `Batch`es; workers start by "forkserver": tensorstore is not fork-safe."""
    if num_workers > 0 and "multiprocessing_context" not in options:
        context = multiprocessing.get_context("forkserver")
        # The server imports torch and the sampler once; each worker then forks from it quickly.
        context.set_forkserver_preload(["torch", __name__])
        options["multiprocessing_context"] = context
    return DataLoader(
        dataset, batch_size=batch_size, num_workers=num_workers, collate_fn=collate, **options
    )
