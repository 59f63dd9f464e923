"""The neighbourhood sampler on small synthetic stores whose values encode their own index."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from atmorep_core.data.batch import Sample, collate
from atmorep_core.data.dataset import NeighbourhoodDataset, make_loader
from atmorep_core.data.neighbourhood import ALPHA_KEYS, TimeAxis
from atmorep_core.data.sampler import FieldConfig, NeighbourhoodSampler, SamplerConfig
from atmorep_core.errors import ConfigError
from atmorep_core.grid import LatLonGrid
from atmorep_core.io.store import FieldMeta, Store, seconds_since_epoch
from atmorep_core.model.tokens import detokenize
from tests.helpers import shared_file

GRID = LatLonGrid.global_grid(9.0)  # 21 x 40, 90N..90S, 0E..351E
HOUR = np.timedelta64(3600, "s")
Z_START = np.datetime64("2021-01-30T00:00", "s")  # 60 hours: crosses into February at hour 48
T_START = Z_START + 2 * HOUR  # a second field starting later: the sampler uses the overlap
N_TIMES = 60
Z_LEVELS, T_LEVELS = (500, 850), (500, 700, 850)
T_OFFSET = 1_000_000.0  # keeps the fields' codes apart; all codes stay exact in float32


def codes(n_time: int, n_level: int, grid: LatLonGrid, offset: float = 0.0) -> np.ndarray:
    """(time, level, lat, lon) float32 values equal to their own flat index (+ offset)."""
    shape = (n_time, n_level, *grid.shape)
    return (np.arange(np.prod(shape), dtype=np.float64).reshape(shape) + offset).astype(np.float32)


def month_of(times: np.ndarray) -> np.ndarray:
    m = times.astype("datetime64[M]").astype(np.int64)
    return (1970 + m // 12) * 100 + m % 12 + 1


def write_field(
    store: Store, name: str, levels: tuple[int, ...], times: np.ndarray, values: np.ndarray
) -> None:
    """A field with data, times and honest moments (count, mean, m2) per month and per level."""
    meta = FieldMeta(name, name, 0, "1", "isobaricInhPa", "0")
    arrays = store.add_field(meta, np.asarray(levels))
    group = arrays.group
    arrays.data.resize(values.shape)
    arrays.data[:] = values
    group["time"].resize((len(times),))  # type: ignore[union-attr]
    group["time"][:] = seconds_since_epoch(times)  # type: ignore[index]
    group.attrs["time_step_s"] = 3600
    months = month_of(times)
    unique = np.unique(months)
    stats = group["stats"]
    for key in ("month", "local_count"):
        stats[key].resize((len(unique),))  # type: ignore[union-attr]
    for key in ("local_mean", "local_m2"):
        stats[key].resize((len(unique), *values.shape[1:]))  # type: ignore[union-attr]
    stats["month"][:] = unique  # type: ignore[index]
    for row, month in enumerate(unique):
        block = values[months == month].astype(np.float64)
        stats["local_count"][row] = len(block)  # type: ignore[index]
        stats["local_mean"][row] = block.mean(axis=0)  # type: ignore[index]
        stats["local_m2"][row] = ((block - block.mean(axis=0)) ** 2).sum(axis=0)  # type: ignore[index]
    every = values.astype(np.float64)
    level_mean = every.mean(axis=(0, 2, 3))
    stats["global_count"][:] = every[:, 0].size  # type: ignore[index]
    stats["global_mean"][:] = level_mean  # type: ignore[index]
    stats["global_m2"][:] = ((every - level_mean[:, None, None]) ** 2).sum(axis=(0, 2, 3))  # type: ignore[index]


@pytest.fixture(scope="module")
def store_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sampler") / "store.zarr"
    store = Store.create(path, GRID)
    z_times = Z_START + HOUR * np.arange(N_TIMES)
    t_times = T_START + HOUR * np.arange(N_TIMES)
    write_field(store, "z", Z_LEVELS, z_times, codes(N_TIMES, 2, GRID))
    write_field(store, "t", T_LEVELS, t_times, codes(N_TIMES, 3, GRID, T_OFFSET))
    return path


def two_fields(**overrides: object) -> SamplerConfig:
    """z: 2 x 2 x 3 tokens of 3 x 3 x 4; t: 1 x 3 x 2 tokens of 6 x 2 x 6; both 6 x 6 x 12."""
    z = {"name": "z", "token_count": (2, 2, 3), "token_size": (3, 3, 4)}
    t = {
        "name": "t",
        "levels": (850, 500),  # not in store order: the reader selects levels by index
        "token_count": (1, 3, 2),
        "token_size": (6, 2, 6),
        "normalisation": "global",
    }
    return SamplerConfig.from_dict({"fields": [z, t], **overrides})


@pytest.fixture(scope="module")
def sampler(store_path: Path) -> NeighbourhoodSampler:
    return NeighbourhoodSampler(Store.open(store_path), two_fields())


def decoded_codes(sampler: NeighbourhoodSampler, sample: Sample, name: str) -> np.ndarray:
    """Undo normalisation and tokens: the (level, time, lat, lon) codes the sample holds."""
    meta = sample.meta
    mean, std = sampler.statistics(name, meta.time_index, meta.lat_start, meta.lon_start)
    points = detokenize(sample.tokens[name]).double().numpy()
    return np.rint(points * std + mean)


def expected_codes(
    values: np.ndarray, own_time: int, level_index: list[int], lat: int, lon: int
) -> np.ndarray:
    """Direct numpy indexing of the window, longitudes modulo nlon; (level, time, lat, lon)."""
    rows = np.arange(lat, lat + 6)
    columns = (lon + np.arange(12)) % GRID.nlon
    window = values[own_time : own_time + 6][:, level_index][:, :, rows][..., columns]
    return window.transpose(1, 0, 2, 3).astype(np.float64)


def test_wrapped_window_holds_exact_values_of_every_field(sampler: NeighbourhoodSampler) -> None:
    # The shared time axis starts at t's first time, z's third; lon 155 = 35 mod 40 wraps.
    assert sampler.times[0] == T_START and len(sampler.times) == N_TIMES - 2
    sample = sampler.read(10, 7, 155)
    assert (sample.meta.lon_start, sample.meta.lat_start) == (35, 7)
    z = codes(N_TIMES, 2, GRID)
    t = codes(N_TIMES, 3, GRID, T_OFFSET)
    assert np.array_equal(decoded_codes(sampler, sample, "z"), expected_codes(z, 12, [0, 1], 7, 35))
    assert np.array_equal(decoded_codes(sampler, sample, "t"), expected_codes(t, 10, [2, 0], 7, 35))
    assert sample.tokens["z"].shape == (2, 2, 2, 3, 3, 3, 4)
    assert sample.tokens["t"].shape == (2, 1, 3, 2, 6, 2, 6)


def test_given_datetime_equals_given_index(sampler: NeighbourhoodSampler) -> None:
    by_time = sampler.read(T_START + 10 * HOUR, 7, -5)
    by_index = sampler.read(10, 7, 35)
    assert by_time.meta == by_index.meta
    assert all(torch.equal(by_time.tokens[k], by_index.tokens[k]) for k in ("z", "t"))


def test_local_normalisation_across_two_months_matches_hand_computation(
    sampler: NeighbourhoodSampler,
) -> None:
    # Common index 44 is 2021-01-31T22:00: two January hours, then four February hours.
    sample = sampler.read(44, 3, 38)
    z = codes(N_TIMES, 2, GRID).astype(np.float64)
    months = month_of(Z_START + HOUR * np.arange(N_TIMES))
    columns = (38 + np.arange(12)) % GRID.nlon
    expected = np.empty((6, 2, 6, 12))
    for step in range(6):
        own = 46 + step
        same_month = z[months == months[own]]
        mean, std = same_month.mean(axis=0), same_month.std(axis=0)  # (level, lat, lon)
        cut = (slice(None), slice(3, 9), columns)
        expected[step] = (z[own][cut] - mean[cut]) / std[cut]
    got = detokenize(sample.tokens["z"]).double().numpy().transpose(1, 0, 2, 3)
    assert months[46] == 202101 and months[48] == 202102
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_global_normalisation_matches_hand_computation(sampler: NeighbourhoodSampler) -> None:
    sample = sampler.read(0, 0, 0)
    t = codes(N_TIMES, 3, GRID, T_OFFSET).astype(np.float64)
    expected = []
    for level in (2, 0):  # levels 850, 500
        values = t[:, level]
        expected.append((values[0:6, 0:6, 0:12] - values.mean()) / values.std())
    got = detokenize(sample.tokens["t"]).double().numpy()
    np.testing.assert_allclose(got, np.stack(expected), rtol=1e-5, atol=1e-5)


def test_alpha_of_one_token_by_hand(sampler: NeighbourhoodSampler) -> None:
    sample = sampler.read(44, 2, 35)  # starts 2021-01-31T22:00
    # z token (level 850, time 1, lat 1, lon 2): hours 01..03 of 1 February, rows 5..7,
    # columns 43..46 = 3..6 east of the date line.
    z = sample.alpha["z"][1, 1, 1, 2].tolist()
    assert dict(zip(ALPHA_KEYS, z, strict=True)) == {
        "year": 2021,
        "day_of_year": 32,
        "hour": 2.0,
        "level": 850,
        "lat": 36.0,  # row 6
        "lon": 40.5,  # column 44.5 x 9 degrees = 400.5, east of 0E
        "resolution": 9.0,
    }
    # t token (level 500, time 0, lat 2, lon 0): 22:00..03:00 centres at 00:30 on 1 February.
    t = sample.alpha["t"][1, 0, 2, 0].tolist()
    assert t == [2021, 32, 0.5, 500, 90 - 9 * 6.5, 9 * 37.5, 9.0]


def test_fields_share_the_centre(sampler: NeighbourhoodSampler) -> None:
    sample = sampler.read(20, 11, 30)  # 2021-01-30T22:00 .. 31T03:00, rows 11..16

    def centre(alpha: torch.Tensor) -> list[float]:
        hours = alpha[..., 1] * 24 + alpha[..., 2]  # day of year and hour as hours
        return [hours.mean().item(), alpha[..., 4].mean().item()]

    assert centre(sample.alpha["z"]) == centre(sample.alpha["t"]) == [31 * 24 + 0.5, -31.5]
    # Columns 30..41 wrap to 30..39, 0, 1: the last z token (38, 39, 0, 1) centres at 355.5 E.
    z_lon = sample.alpha["z"][0, 0, 0, :, 5]
    t_lon = sample.alpha["t"][0, 0, 0, :, 5]
    assert z_lon.tolist() == [9 * 31.5, 9 * 35.5, 9 * 39.5]
    assert t_lon.tolist() == [9 * 32.5, 9 * 38.5]


def test_no_window_crosses_a_pole_and_longitudes_wrap(sampler: NeighbourhoodSampler) -> None:
    positions = sampler.draw_positions(np.random.default_rng(3), 5000)
    lat, lon = positions[:, 1], positions[:, 2]
    assert lat.min() == 0 and lat.max() == GRID.nlat - 6
    assert lon.min() == 0 and lon.max() == GRID.nlon - 1  # starts past 28 wrap around
    assert set(positions[:, 0]) <= set(sampler.starts.tolist())
    # Both months are drawn (month first, then a start within it).
    drawn = month_of(sampler.times[positions[:, 0]])
    assert set(drawn) == {202101, 202102}


def test_same_seed_same_samples(sampler: NeighbourhoodSampler) -> None:
    first = list(NeighbourhoodDataset(sampler, 4, seed=11, rank=0, world_size=1))
    again = list(NeighbourhoodDataset(sampler, 4, seed=11, rank=0, world_size=1))
    for a, b in zip(first, again, strict=True):
        assert a.meta == b.meta and torch.equal(a.tokens["z"], b.tokens["z"])
    other = NeighbourhoodDataset(sampler, 4, seed=12, rank=0, world_size=1)
    assert not np.array_equal(other.positions(), NeighbourhoodDataset(sampler, 4, 11).positions())
    other.set_epoch(1)
    assert not np.array_equal(other.positions(), NeighbourhoodDataset(sampler, 4, 12).positions())


def test_ranks_and_workers_split_the_sequence_without_overlap(
    sampler: NeighbourhoodSampler,
) -> None:
    n = 22
    single = NeighbourhoodDataset(sampler, n, seed=5, rank=0, world_size=1)
    expected = {i: tuple(p) for i, p in enumerate(single.positions().tolist())}
    parts = []
    for rank in range(2):
        dataset = NeighbourhoodDataset(sampler, n, seed=5, rank=rank, world_size=2)
        loader = make_loader(dataset, batch_size=3, num_workers=2)
        metas = [meta for batch in loader for meta in batch.metas]
        parts.append({m.index: (m.time_index, m.lat_start, m.lon_start) for m in metas})
    assert not set(parts[0]) & set(parts[1])
    assert {**parts[0], **parts[1]} == expected
    # Element i went to shard i mod 4: rank 0 holds shards 0, 1 (its two workers).
    assert sorted(parts[0]) == [i for i in range(n) if i % 4 in (0, 1)]


def test_collate_stacks_samples(sampler: NeighbourhoodSampler) -> None:
    samples = [sampler.read(i, 1, 2) for i in (0, 1, 2)]
    batch = collate(samples)
    assert batch.tokens["t"].shape == (3, 2, 1, 3, 2, 6, 2, 6)
    assert batch.alpha["z"].shape == (3, 2, 2, 2, 3, 7)
    assert torch.equal(batch.tokens["z"][1], samples[1].tokens["z"])
    assert [m.time_index for m in batch.metas] == [0, 1, 2]


def test_regional_grid_keeps_windows_inside(tmp_path: Path) -> None:
    grid = LatLonGrid(60.0, -1.0, 12, 350.0, 1.0, 20)  # 350E .. 369E: across Greenwich
    store = Store.create(tmp_path / "regional.zarr", grid)
    values = codes(8, 1, grid)
    write_field(store, "z", (500,), Z_START + HOUR * np.arange(8), values)
    config = SamplerConfig.from_dict(
        {"fields": [{"name": "z", "token_count": (2, 2, 3), "token_size": (3, 3, 4)}]}
    )
    sampler = NeighbourhoodSampler(Store.open(tmp_path / "regional.zarr"), config)
    positions = sampler.draw_positions(np.random.default_rng(0), 500)
    assert positions[:, 2].max() == 20 - 12 and positions[:, 1].max() == 12 - 6
    sample = sampler.read(1, 6, 8)
    mean, std = sampler.statistics("z", 1, 6, 8)
    got = np.rint(detokenize(sample.tokens["z"]).double().numpy() * std + mean)
    expected = values[1:7, :, 6:12, 8:20].transpose(1, 0, 2, 3)
    assert np.array_equal(got, expected)
    assert sample.alpha["z"][0, 0, 0, -1, 5].item() == 350.0 + 17.5  # not wrapped to 7.5
    with pytest.raises(ConfigError, match="lon_start: 9 outside"):
        sampler.read(1, 6, 9)


def test_time_windows_skip_gaps() -> None:
    hours = np.array([0, 1, 2, 3, 5, 6, 7, 8, 9], dtype="timedelta64[h]")
    axis = TimeAxis.intersect([Z_START + hours, Z_START + hours[1:]])
    assert axis.window_starts(3).tolist() == [0, 3, 4, 5]  # never across the gap at 4 h


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ([{"name": "z", "token_count": (2, 8, 3), "token_size": (3, 3, 4)}], "token_count"),
        ([{"name": "z", "levels": (300,)}], r"fields\[0\]\.levels: \[300\] not in the store"),
        ([{"name": "q"}], r"fields\[0\]\.name: no field 'q'"),
        ([{"name": "z", "token_count": (30, 1, 1), "token_size": (3, 3, 4)}], "no window of 90"),
    ],
)
def test_bad_settings_name_the_key(
    store_path: Path, fields: list[dict[str, object]], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        NeighbourhoodSampler(Store.open(store_path), SamplerConfig.from_dict({"fields": fields}))


def test_bad_recipes_are_rejected_by_key() -> None:
    with pytest.raises(ConfigError, match=r"sampler\.fields\.0\.levls"):
        SamplerConfig.from_dict({"fields": [{"name": "z", "levls": [500]}]})
    with pytest.raises(ConfigError, match=r"fields\[1\]\.token_count: t covers 6 x 6 x 12"):
        SamplerConfig.from_dict(
            {
                "fields": [
                    {"name": "z", "token_size": (3, 3, 3)},
                    {"name": "t", "token_count": (2, 2, 2), "token_size": (3, 3, 6)},
                ]
            }
        )


def test_bad_positions_are_refused(sampler: NeighbourhoodSampler) -> None:
    with pytest.raises(ConfigError, match="lat_start: 16 outside"):
        sampler.read(0, 16, 0)
    with pytest.raises(ConfigError, match="time: no window"):
        sampler.read(len(sampler.times) - 3, 0, 0)
    with pytest.raises(ConfigError, match="not a time step all fields share"):
        sampler.read(Z_START, 0, 0)


def test_real_era5_store_reads_back(tmp_path: Path) -> None:
    from atmorep_core.data.prepare import prepare

    source = shared_file("era5/era5-levels-members.grib")
    prepare([source], tmp_path / "era5.zarr")
    store = Store.open(tmp_path / "era5.zarr")
    config = SamplerConfig.from_dict(
        {
            "fields": [
                {"name": "geopotential", "token_count": (2, 2, 4), "token_size": (2, 9, 9)},
                {"name": "temperature", "token_count": (1, 3, 3), "token_size": (4, 6, 12)},
            ]
        }
    )
    sampler = NeighbourhoodSampler(store, config)
    sample = sampler.read(np.datetime64("2017-01-01T00:00"), 0, 110)  # north pole row, wraps
    for name in ("geopotential", "temperature"):
        mean, std = sampler.statistics(name, 0, 0, 110)
        got = detokenize(sample.tokens[name]).double().numpy() * std + mean
        data = np.asarray(store.field(name).data[:])  # (time, level, lat, lon)
        columns = (110 + np.arange(36)) % 120
        expected = data[0:4, :, 0:18][..., columns].transpose(1, 0, 2, 3)
        np.testing.assert_allclose(got, expected, rtol=1e-5)
    assert sample.alpha["temperature"][0, 0, 0, 0].tolist()[:3] == [2017, 1, 18.0]


def test_seed_defaults_and_temperature_preset_cover_the_same_points() -> None:
    vorticity = FieldConfig(name="vorticity")
    temperature = FieldConfig(name="temperature", token_count=(12, 2, 4), token_size=(3, 27, 27))
    assert vorticity.extent == temperature.extent == (36, 54, 108)
    assert vorticity.normalisation == "local"
    SamplerConfig(fields=(vorticity, temperature))  # accepted together


def test_zarr_and_tensorstore_readers_agree(store_path: Path) -> None:
    pytest.importorskip("tensorstore")
    samples = [
        NeighbourhoodSampler(Store.open(store_path), two_fields(reader=kind)).read(30, 4, 33)
        for kind in ("zarr", "tensorstore")
    ]
    for name in ("z", "t"):
        assert torch.equal(samples[0].tokens[name], samples[1].tokens[name])


def test_forked_worker_after_tensorstore_gets_advice_not_abort(store_path: Path) -> None:
    """In a fresh interpreter: this test process may hold other libraries' threads (JAX), which
    make any fork unsafe."""
    pytest.importorskip("tensorstore")
    script = f"""
from pathlib import Path
from torch.utils.data import DataLoader
from atmorep_core.data.dataset import NeighbourhoodDataset
from atmorep_core.data.sampler import NeighbourhoodSampler
from atmorep_core.io.store import Store
from tests.test_sampler import two_fields

sampler = NeighbourhoodSampler(Store.open(Path({str(store_path)!r})), two_fields())
sampler.read(0, 0, 0)  # tensorstore now runs in this process (reader "auto")
dataset = NeighbourhoodDataset(sampler, 2, seed=0, rank=0, world_size=1)
loader = DataLoader(dataset, batch_size=None, num_workers=1, multiprocessing_context="fork")
try:
    next(iter(loader))
except RuntimeError as error:
    print("refused:", "forkserver" in str(error))
"""
    root = Path(__file__).resolve().parents[1]
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=root, timeout=300
    )
    assert "refused: True" in result.stdout, result.stderr


def test_a_time_window_keeps_neighbourhoods_inside(store_path: Path) -> None:
    full = NeighbourhoodSampler(Store.open(store_path), two_fields())
    first, last = full.times[10], full.times[40]
    inside = NeighbourhoodSampler(Store.open(store_path), two_fields(), window=(first, last))
    length = inside.extent[0]
    assert len(inside.starts) > 0
    for start in inside.starts:
        assert inside.times[start] >= first and inside.times[start + length - 1] <= last
    expected = [
        s for s in full.starts if full.times[s] >= first and full.times[s + length - 1] <= last
    ]
    assert inside.starts.tolist() == expected
    with pytest.raises(ConfigError, match="between"):
        NeighbourhoodSampler(Store.open(store_path), two_fields(), window=(first, first))
