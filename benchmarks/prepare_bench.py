"""Prepare throughput against plain eccodes decoding of the same files.

Writes ERA5-like GRIB (global 0.25 degree, hybrid levels, hourly, 16-bit packing like ERA5) into a
temporary folder, then times (a) a plain eccodes loop that opens every message and decodes its
values, and (b) `prepare` of the same files into a new store (checksums, header scan, checks,
writes, statistics). Also times both on the real ERA5 2 m temperature sample when it is present.

    .venv/bin/python benchmarks/prepare_bench.py [--hours 12] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import eccodes
from synthetic import LEVELS, write_era5_like

from atmorep_core.data.prepare import prepare

REAL_SAMPLE = (
    Path(__file__).resolve().parents[2] / "shared/data/era5/era5-t2m-uk-2019-03-01to24.grib"
)


def plain_decode(paths: list[Path]) -> float:
    started = time.perf_counter()
    for path in paths:
        with open(path, "rb") as stream:
            while (handle := eccodes.codes_grib_new_from_file(stream)) is not None:
                eccodes.codes_get_values(handle)
                eccodes.codes_release(handle)
    return time.perf_counter() - started


def timed_prepare(paths: list[Path], folder: Path) -> float:
    store = folder / "bench.zarr"
    shutil.rmtree(store, ignore_errors=True)
    started = time.perf_counter()
    prepare(paths, store)
    elapsed = time.perf_counter() - started
    shutil.rmtree(store)
    return elapsed


def measure(name: str, paths: list[Path], folder: Path, repeats: int) -> dict[str, object]:
    plain_decode(paths)  # warm the page cache and eccodes' definitions
    decode = statistics.median(plain_decode(paths) for _ in range(repeats))
    ingest = statistics.median(timed_prepare(paths, folder) for _ in range(repeats))
    size = sum(p.stat().st_size for p in paths)
    return {
        "case": name,
        "grib_bytes": size,
        "eccodes_decode_s": round(decode, 3),
        "prepare_s": round(ingest, 3),
        "throughput_ratio": round(decode / ingest, 3),
        "prepare_mb_per_s": round(size / ingest / 1e6, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hours", type=int, default=12)
    parser.add_argument("--resolution", type=float, default=0.25)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/prepare.json"))
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        paths = [write_era5_like(folder / "t.grib", args.resolution, args.hours)]
        label = f"ERA5-like {args.resolution} deg, {args.hours} h x {len(LEVELS)} levels"
        results.append(measure(label, paths, folder, args.repeats))
        if REAL_SAMPLE.exists():
            results.append(measure("real ERA5 t2m UK 33 x 49, 576 h", [REAL_SAMPLE], folder, 3))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print("| case | GRIB MB | eccodes decode s | prepare s | ratio |")
    print("| --- | --- | --- | --- | --- |")
    for r in results:
        print(
            f"| {r['case']} | {int(r['grib_bytes']) / 1e6:.0f} | {r['eccodes_decode_s']} | "
            f"{r['prepare_s']} | {r['throughput_ratio']} |"
        )


if __name__ == "__main__":
    main()
