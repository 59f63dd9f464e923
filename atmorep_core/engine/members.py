"""Ensemble members of a product, and progress over a product's repeated questions.

A 1-member product follows the mean over the tail's heads (the least-squares answer). An
ensemble follows one head per member and question (forecast iteration, time window), drawn from
a seeded generator and stratified so that members take different heads whenever there are at
most as many members as heads. The same seed gives the same heads, so two runs that differ only
in their alpha (a counterfactual and its factual run) differ by the alpha's effect alone.
"""

from __future__ import annotations

import numpy as np

from atmorep_core.engine.engine import Progress, Selector
from atmorep_core.engine.trained import TrainedModel
from atmorep_core.errors import ConfigError


def draw_heads(
    members: int, questions: int, seed: int, trained: TrainedModel
) -> list[list[Selector]]:
    """Per question the head each member follows (None: the mean, for a single member)."""
    if members < 1:
        raise ConfigError(f"--members: at least 1, got {members}")
    if members == 1:
        return [[None]] * questions
    heads = min(f.tail_heads for f in trained.config.fields)
    rng = np.random.default_rng(seed)
    plan: list[list[Selector]] = []
    for _ in range(questions):
        # Stratified: member m takes the head under (perm[m] + u) / members, all heads distinct
        # when members <= heads.
        where = (rng.permutation(members) + rng.random()) / members
        plan.append([int(h) for h in np.floor(where * heads)])
    return plan


def progress_part(progress: Progress | None, index: int, count: int, what: str) -> Progress | None:
    """A progress callback for the `index`-th of `count` equal shares of a run."""
    if progress is None:
        return None
    return lambda message, fraction: progress(
        f"{what} {index + 1}/{count}, {message}", (index + fraction) / count
    )
