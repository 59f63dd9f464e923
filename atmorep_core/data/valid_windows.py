"""Where a training neighbourhood may start so that it holds no missing value.

Fields that allow missing values hold NaN where their input's bitmap had none (e.g. DWD
precipitation outside its radar domain), and the store counts per point how often
(`FieldArrays.missing_mask`). The sampler never hands the model a neighbourhood containing one,
by the simplest rule that is always correct: a point missing at any time counts as missing at
all times, and only spatial starts whose box holds none of these points are drawn. It needs no
per-time bookkeeping and no reads while drawing; it is exact for fixed masks such as a domain's
edge, and gives up some training data where points are missing only now and then.
"""

from __future__ import annotations

import numpy as np

from atmorep_core.data.neighbourhood import SpatialRange


def valid_starts(
    mask: np.ndarray, lat_points: int, lon_points: int, space: SpatialRange
) -> np.ndarray:
    """(n, 2) int64 (lat_start, lon_start) of every window position whose box of lat_points x
    lon_points has no True in `mask` (lat, lon); windows wrap in longitude where `space` does."""
    counts = mask.astype(np.int64)
    if space.wraps:  # windows starting near the last column continue at the first
        counts = np.concatenate([counts, counts[:, : lon_points - 1]], axis=1)
    table = np.zeros((counts.shape[0] + 1, counts.shape[1] + 1), dtype=np.int64)
    table[1:, 1:] = counts.cumsum(axis=0).cumsum(axis=1)  # summed-area table
    y, x = lat_points, lon_points
    boxes = table[y:, x:] - table[:-y, x:] - table[y:, :-x] + table[:-y, :-x]
    boxes = boxes[: space.lat_starts, : space.lon_starts]  # missing points per window
    return np.argwhere(boxes == 0).astype(np.int64)
