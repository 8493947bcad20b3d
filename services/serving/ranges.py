"""Inputs against the stream's spec: numbers outside ``min``/``max``, unknown categories.

A model answers such rows (it has seen nothing like them, so its answer deserves less
trust); serving counts them per feature and flags them in the answer, or refuses them
(HTTP 422) when ``DRIFTLINE_SERVING_STRICT_SPEC`` is set. Types, nulls and non-finite
numbers are checked before (:func:`services.serving.protocol.check_rows`).

>>> from schemas import FeatureSpec
>>> spec = [FeatureSpec(name="x", type="number", min=0, max=1),
...         FeatureSpec(name="c", type="category", categories=("a", "b"))]
>>> found = out_of_spec([{"x": 0.5, "c": "a"}, {"x": 7, "c": "z"}, {"x": -1, "c": "b"}], spec)
>>> found.counts
{'x': 2, 'c': 1}
>>> found.describe(limit=1)
"row 1: feature 'x' is 7, above the spec's max 1.0 (+2 more)"
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from schemas import FeatureSpec
from services.common.http_errors import excerpt


@dataclass
class OutOfSpec:
    """What fell outside the spec: values per feature, and the first few in words."""

    counts: dict[str, int] = field(default_factory=dict)
    rows: set[int] = field(default_factory=set)
    examples: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.counts)

    def describe(self, limit: int = 2) -> str:
        """The first ``limit`` findings, in words."""
        more = len(self.examples) - limit
        return "; ".join(self.examples[:limit]) + (f" (+{more} more)" if more > 0 else "")


def out_of_spec(rows: Sequence[Mapping[str, Any]], spec: Sequence[FeatureSpec]) -> OutOfSpec:
    """The values of ``rows`` outside ``spec`` (features the spec does not name: none)."""
    found = OutOfSpec()
    checked = [f for f in spec if f.min is not None or f.max is not None or f.categories]
    for i, row in enumerate(rows):
        for feature in checked:
            value = row.get(feature.name)
            why = _why(feature, value)
            if why is None:
                continue
            found.counts[feature.name] = found.counts.get(feature.name, 0) + 1
            found.rows.add(i)
            if len(found.examples) < 10:
                found.examples.append(f"row {i}: feature {feature.name!r} is {why}")
    return found


def _why(feature: FeatureSpec, value: Any) -> str | None:
    if value is None or isinstance(value, bool):
        return None
    if feature.type == "number" and isinstance(value, int | float):
        if feature.min is not None and value < feature.min:
            return f"{excerpt(value)}, below the spec's min {feature.min}"
        if feature.max is not None and value > feature.max:
            return f"{excerpt(value)}, above the spec's max {feature.max}"
    elif feature.type == "category" and feature.categories and isinstance(value, str):
        if value not in feature.categories:
            return f"{excerpt(value)}, not one of the spec's categories"
    return None
