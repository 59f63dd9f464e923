"""Monte Carlo neighbourhoods for torch: an IterableDataset sharded over ranks and workers, and an
indexed dataset whose sample k is fixed by the seed alone (so a resumed run reads what an
uninterrupted one would have read)."""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, IterableDataset, Sampler, get_worker_info

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
        return epoch_positions(self.sampler, self.seed, self.epoch, self.num_samples)

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


def epoch_positions(sampler: NeighbourhoodSampler, seed: int, epoch: int, count: int) -> np.ndarray:
    """(count, 3) (time_index, lat_start, lon_start) of one epoch, fixed by (seed, epoch)."""
    return sampler.draw_positions(np.random.default_rng([seed, epoch]), count)


class IndexedNeighbourhoods(Dataset[Sample]):
    """Sample k is position k mod n of epoch k // n (n samples per epoch, as above)."""

    def __init__(self, sampler: NeighbourhoodSampler, samples_per_epoch: int, seed: int) -> None:
        if samples_per_epoch < 1:
            raise ConfigError(f"samples_per_epoch: must be at least 1, got {samples_per_epoch}")
        self.sampler, self.samples_per_epoch, self.seed = sampler, samples_per_epoch, seed
        self._epoch: tuple[int, np.ndarray] | None = None

    def __getitem__(self, index: int) -> Sample:
        epoch, offset = divmod(index, self.samples_per_epoch)
        if self._epoch is None or self._epoch[0] != epoch:
            positions = epoch_positions(self.sampler, self.seed, epoch, self.samples_per_epoch)
            self._epoch = (epoch, positions)
        t0, lat, lon = (int(v) for v in self._epoch[1][offset])
        return self.sampler.read(t0, lat, lon, index=index)


class StepIndices(Sampler[int]):
    """The sample indices one rank reads from `first_step` on: step s covers the global indices
    s*B*W .. (s+1)*B*W - 1 (B per rank, W ranks), and rank r takes its own consecutive B."""

    def __init__(
        self, first_step: int, last_step: int, batch_size: int, rank: int, world_size: int
    ) -> None:
        super().__init__()
        self.first_step, self.last_step = first_step, last_step
        self.batch_size, self.rank, self.world_size = batch_size, rank, world_size

    def __iter__(self) -> Iterator[int]:
        per_step = self.batch_size * self.world_size
        for step in range(self.first_step, self.last_step):
            first = step * per_step + self.rank * self.batch_size
            yield from range(first, first + self.batch_size)

    def __len__(self) -> int:
        return (self.last_step - self.first_step) * self.batch_size


def make_loader(
    dataset: Dataset[Sample], batch_size: int, num_workers: int = 0, **options: Any
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
