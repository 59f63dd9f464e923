"""Neighbourhood sampler benchmark: bytes read per sample and samples per second.

Builds (or reuses) a global 0.25-degree store (721 x 1440, 5 levels, hourly, smooth travelling
waves written as ERA5-like GRIB and ingested with `prepare`) and samples the seed's default
neighbourhood, 12 x 6 x 12 tokens of 3 x 9 x 9 points, with local normalisation.

(a) Bytes: the store is opened through a LocalStore that counts the bytes every read returns,
    split into data and statistics; decoded bytes are the inner chunks a window touches times
    the chunk size. Both are divided by the bytes of the neighbourhood itself.
(b) Speed: samples per second from the IterableDataset in this process, and through a
    DataLoader with 2 workers.

    PYTHONPATH=benchmarks .venv/bin/python benchmarks/sampler_bench.py --store bench.zarr
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import zarr
from synthetic import LEVELS, write_era5_like
from zarr.abc.store import ByteRequest
from zarr.core.buffer import Buffer, BufferPrototype
from zarr.storage import LocalStore

from atmorep_core.data.dataset import NeighbourhoodDataset, make_loader
from atmorep_core.data.neighbourhood import ReaderKind, lon_pieces
from atmorep_core.data.prepare import prepare
from atmorep_core.data.sampler import FieldConfig, NeighbourhoodSampler, SamplerConfig
from atmorep_core.io.store import INNER_CHUNK, Store

RESULTS = Path(__file__).parent / "results"


class CountingStore(LocalStore):
    """A LocalStore that adds up the bytes each read returns, per kind of key."""

    def __init__(self, root: Path | str, *, read_only: bool = True) -> None:
        super().__init__(root, read_only=read_only)
        self.counts: dict[str, int] = {"data": 0, "stats": 0, "other": 0}

    def _count(self, key: str, buffer: Buffer | None) -> None:
        kind = "stats" if "/stats/" in key else "data" if "/data/" in key else "other"
        self.counts[kind] += 0 if buffer is None else len(buffer)

    async def get(
        self,
        key: str,
        prototype: BufferPrototype | None = None,
        byte_range: ByteRequest | None = None,
    ) -> Buffer | None:
        buffer = await super().get(key, prototype, byte_range)
        self._count(key, buffer)
        return buffer

    def get_sync(self, key: str, *args: Any, **kwargs: Any) -> Buffer | None:
        buffer = super().get_sync(key, *args, **kwargs)  # type: ignore[misc]
        self._count(key, buffer)
        return buffer  # type: ignore[no-any-return]

    async def get_partial_values(
        self, prototype: BufferPrototype, key_ranges: Iterable[tuple[str, ByteRequest | None]]
    ) -> list[Buffer | None]:
        pairs = list(key_ranges)
        buffers = await super().get_partial_values(prototype, pairs)
        for (key, _), buffer in zip(pairs, buffers, strict=True):
            self._count(key, buffer)
        return buffers

    def reset(self) -> None:
        self.counts = dict.fromkeys(self.counts, 0)


def build_store(path: Path, days: int) -> None:
    """A global 0.25-degree store with one field, made the way users make theirs: GRIB ->
    `prepare`."""
    with tempfile.TemporaryDirectory() as folder:
        grib = write_era5_like(Path(folder) / "era5_temperature.grib", 0.25, 24 * days)
        prepare([grib], path)


def chunks_touched(start: int, length: int, chunk: int) -> int:
    return (start + length - 1) // chunk - start // chunk + 1


def decoded_bytes(sampler: NeighbourhoodSampler, position: np.ndarray) -> tuple[int, int]:
    """Bytes of the inner chunks one window decodes (longitude split where it wraps), of the
    data and of the month's local statistics (mean and m2, float64, chunks of 1 x 1 x 18 x 18;
    assuming the window stays in one month, as nearly all do)."""
    t_len, lat_len, lon_len = sampler.extent
    t0, lat0, lon0 = (int(v) for v in position)
    nlon = sampler.grid.nlon
    lon_pieces = [(lon0, min(lon_len, nlon - lon0))]
    if lon0 + lon_len > nlon:
        lon_pieces.append((0, lon0 + lon_len - nlon))
    ct, _, cy, cx = INNER_CHUNK
    lon_chunks = sum(chunks_touched(s, n, cx) for s, n in lon_pieces)
    spatial = chunks_touched(lat0, lat_len, cy) * lon_chunks * len(LEVELS)
    data = chunks_touched(t0, t_len, ct) * spatial * math.prod(INNER_CHUNK) * 4
    return data, 2 * spatial * cy * cx * 8


def default_config(reader: ReaderKind = "auto") -> SamplerConfig:
    return SamplerConfig(fields=(FieldConfig(name="temperature"),), reader=reader)


def measure_bytes(path: Path, n: int, seed: int) -> dict[str, float]:
    # Counted through zarr-python; tensorstore decodes the same chunks (its reads bypass zarr).
    counting = CountingStore(path)
    store = Store(path, zarr.open_group(counting, mode="r"))
    sampler = NeighbourhoodSampler(store, default_config("zarr"))
    sampler.read(0, 0, 0)  # loads the array metadata once
    counting.reset()
    positions = sampler.draw_positions(np.random.default_rng(seed), n)
    for position in positions:
        sampler.read(*(int(v) for v in position))
    window = math.prod(sampler.extent) * len(LEVELS) * 4
    decoded = np.array([decoded_bytes(sampler, p) for p in positions]).sum(axis=0) / n
    read = (counting.counts["data"] + counting.counts["stats"]) / n
    return {
        "neighbourhood_bytes": window,
        "compressed_data_read_per_sample": counting.counts["data"] / n,
        "compressed_statistics_read_per_sample": counting.counts["stats"] / n,
        "compressed_ratio": read / window,
        "decoded_data_bytes_per_sample": float(decoded[0]),
        "decoded_statistics_bytes_per_sample": float(decoded[1]),
        "decoded_ratio": float(decoded.sum()) / window,
        "other_bytes_per_sample": counting.counts["other"] / n,
    }


def syscall_bytes_tensorstore(path: Path, n: int, seed: int) -> float | None:
    """Bytes tensorstore reads per sample, from the kernel's count of read() bytes (Linux)."""
    io = Path("/proc/self/io")
    if not io.exists():
        return None

    def rchar() -> int:
        return int(io.read_text().split("rchar:")[1].split()[0])

    sampler = NeighbourhoodSampler(Store.open(path), default_config("tensorstore"))
    sampler.read(0, 0, 0)
    positions = sampler.draw_positions(np.random.default_rng(seed), n).tolist()
    before = rchar()
    for position in positions:
        sampler.read(*position)
    return (rchar() - before) / n


def samples_per_second(path: Path, n: int, seed: int, workers: int, reader: ReaderKind) -> float:
    """Samples per second out of the dataset, after a warm-up (statistics cached, workers up)."""
    sampler = NeighbourhoodSampler(Store.open(path), default_config(reader))
    warm = 2 * max(workers, 1)
    dataset = NeighbourhoodDataset(sampler, n + warm, seed=seed, rank=0, world_size=1)
    if workers == 0:
        iterator: Iterator[object] = iter(dataset)
    else:
        loader = make_loader(dataset, batch_size=1, num_workers=workers, prefetch_factor=4)
        iterator = iter(loader)
    for _ in range(warm):
        next(iterator)
    begin = time.perf_counter()
    for _ in range(n):
        next(iterator)
    return n / (time.perf_counter() - begin)


def seconds_per_stage(path: Path, n: int, seed: int, reader: ReaderKind) -> dict[str, float]:
    """Where a sample's time goes: the array read alone against the whole `read`."""
    sampler = NeighbourhoodSampler(Store.open(path), default_config(reader))
    source = sampler._sources[0]  # the benchmark looks inside on purpose
    positions = sampler.draw_positions(np.random.default_rng(seed), n).tolist()
    sampler.read(*positions[0])
    begin = time.perf_counter()
    for t0, lat0, lon0 in positions:
        lons = lon_pieces(lon0 % sampler.grid.nlon, sampler.extent[2], sampler.grid.nlon)
        rows = slice(lat0, lat0 + sampler.extent[1])
        source.reader.read(slice(t0, t0 + sampler.extent[0]), source.level_index, rows, lons)
    read = (time.perf_counter() - begin) / n
    begin = time.perf_counter()
    for position in positions:
        sampler.read(*position)
    return {"array_read": read, "whole_sample": (time.perf_counter() - begin) / n}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--store", type=Path, required=True, help="built here unless it exists")
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if not args.store.exists():
        begin = time.perf_counter()
        build_store(args.store, args.days)
        print(f"built {args.store} in {time.perf_counter() - begin:.0f} s")
    result: dict[str, Any] = {
        "store": "synthetic global 0.25 deg, 721 x 1440, 5 levels, hourly",
        "days": args.days,
        "neighbourhood": "12 x 6 x 12 tokens of 3 x 9 x 9, local normalisation",
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "zarr_version": zarr.__version__,
        "bytes": measure_bytes(args.store, args.samples, args.seed),
    }
    readers: tuple[ReaderKind, ...] = ("zarr", "tensorstore")
    for reader in readers:
        n = args.samples if reader == "tensorstore" else max(args.samples // 4, 8)
        result.setdefault("readers", {})[reader] = {
            "samples": n,
            "samples_per_s_single_process": samples_per_second(args.store, n, args.seed, 0, reader),
            "samples_per_s_2_workers": samples_per_second(args.store, n, args.seed, 2, reader),
            "seconds_per_sample": seconds_per_stage(args.store, n, args.seed, reader),
        }
    result["bytes"]["tensorstore_syscall_bytes_per_sample"] = syscall_bytes_tensorstore(
        args.store, args.samples, args.seed
    )
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "sampler.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
