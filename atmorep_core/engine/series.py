"""A product's input held by several stores on one grid: a GRIB series with gaps between or
inside its files is ingested one store per file and run of regular steps (a store's time axis
has no gaps), and read as one."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from atmorep_core.engine.domain import Domain
from atmorep_core.errors import StoreError
from atmorep_core.io.store import Store


class InputSeries:
    """The union of the stores' times; each time read from the first store that holds it."""

    def __init__(self, stores: Sequence[Store]) -> None:
        self.stores = tuple(stores)
        first = self.stores[0]
        for store in self.stores[1:]:
            if not store.grid.matches(first.grid):
                raise StoreError(f"{store.path}: not on the grid of {first.path}")

    @property
    def first(self) -> Store:
        """The store whose grid and field metadata the product takes."""
        return self.stores[0]

    @property
    def paths(self) -> str:
        return ", ".join(str(store.path) for store in self.stores)

    def times(self, name: str) -> np.ndarray:
        """(time,) datetime64[s], sorted: every time some store holds the field at."""
        held = [self._times(store, name) for store in self.stores]
        if not any(len(t) for t in held):
            for store in self.stores:
                if store.updating:
                    raise store.updating_error(f"no committed {name!r} yet")
            raise StoreError(f"{self.paths}: no field {name!r}")
        return np.unique(np.concatenate(held))

    def read(self, domain: Domain, name: str, times: np.ndarray) -> np.ndarray:
        """(L, time, R, C) physical values over the domain at `times` (all held somewhere)."""
        out: np.ndarray | None = None
        todo = np.ones(len(times), dtype=bool)
        for store in self.stores:
            here = todo & np.isin(times, self._times(store, name))
            if here.any():
                values = domain.read(store, name, times[here])
                if out is None:
                    out = np.empty((values.shape[0], len(times), *values.shape[2:]), np.float32)
                out[:, here] = values
                todo &= ~here
        if todo.any() or out is None:  # read_window names the times no store holds
            updating = [store for store in self.stores if store.updating]
            domain.read(updating[0] if updating else self.first, name, times[todo])
        assert out is not None
        return out

    @staticmethod
    def _times(store: Store, name: str) -> np.ndarray:
        if name not in store.fields:
            return np.array([], dtype="datetime64[s]")
        return store.field(name).times.astype("datetime64[s]")
