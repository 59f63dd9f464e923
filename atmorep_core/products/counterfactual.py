"""Counterfactuals: the same question asked twice, with the factual alpha and with a changed one.

The question is a forecast (`ForecastRequest`) or a reconstruction (`InterpolationRequest` with
`reconstruct`: every step from the model, nothing hidden). Both runs draw the same heads from
the same seed, so member m of the difference is the effect of the alpha change on member m
alone; an unchanged alpha gives back the factual run bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from atmorep_core.engine.alpha import AlphaChange
from atmorep_core.engine.engine import Predictor, Progress
from atmorep_core.engine.members import progress_part
from atmorep_core.engine.series import InputSeries
from atmorep_core.engine.trained import TrainedModel
from atmorep_core.io.product import Product, ProductField
from atmorep_core.io.store import Store
from atmorep_core.products.forecast import ForecastRequest, forecast
from atmorep_core.products.interpolate import InterpolationRequest, interpolate

Question = ForecastRequest | InterpolationRequest


@dataclass(frozen=True)
class Counterfactual:
    """The two runs and their difference (counterfactual minus factual, member by member)."""

    factual: Product
    counterfactual: Product
    difference: Product


def counterfactual(
    trained: TrainedModel,
    store: Store,
    statistics_store: Store | None,
    question: Question,
    change: AlphaChange,
    progress: Progress | None = None,
    predictor: Predictor | None = None,
) -> Counterfactual:
    """Ask `question` as it is and with `change`; `predictor` defaults to the trained model."""
    runs = []
    for index, (role, alpha) in enumerate((("factual", AlphaChange()), ("counterfactual", change))):
        part = progress_part(progress, index, 2, role)
        runs.append(
            _ask(trained, store, statistics_store, replace(question, alpha=alpha), part, predictor)
        )
    factual, changed = runs
    label = change_label(change)
    return Counterfactual(
        _with(factual, factual.kind, "factual", label),
        _with(changed, "counterfactual", "counterfactual", label),
        _with(_difference(changed, factual), "counterfactual", "difference", label),
    )


def change_label(change: AlphaChange) -> str:
    """The change in a file name: `year2050`, `year+35`, joined by `_`; `unchanged` if none."""
    parts = [f"{key}{value:g}" for key, value in change.set.items()]
    parts += [f"{key}{value:+g}" for key, value in change.shift.items()]
    return "_".join(parts) or "unchanged"


def _ask(
    trained: TrainedModel,
    store: Store,
    statistics_store: Store | None,
    question: Question,
    progress: Progress | None,
    predictor: Predictor | None,
) -> Product:
    if isinstance(question, ForecastRequest):
        return forecast(trained, store, statistics_store, question, progress, predictor)
    inputs = InputSeries([store])
    return interpolate(trained, inputs, statistics_store, question, progress, predictor)


def _difference(changed: Product, factual: Product) -> Product:
    fields = tuple(
        ProductField(c.name, c.level_type, c.levels, c.grid, c.values - f.values)
        for c, f in zip(changed.fields, factual.fields, strict=True)
    )
    return replace(changed, fields=fields)


def _with(product: Product, kind: str, role: str, label: str) -> Product:
    """The product with its kind and its role in the counterfactual recorded."""
    attributes = {**product.attributes, "counterfactual_role": role, "alpha_change": label}
    return replace(product, kind=kind, attributes=attributes)
