"""Data sources turned into labelled-example events. Pure: no Kafka here.

>>> rows = river_rows("river:Phishing")
>>> x, y = next(iter(rows))
>>> sorted(x)[:2], y
(['age_of_domain', 'anchor_from_other_domain'], True)
>>> events = list(as_examples("phishing", river_rows("river:Phishing"), limit=3))
>>> [e.example_id for e in events]
['0', '1', '2']
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from schemas import LabelledExample

Row = tuple[dict[str, Any], Any]

# River datasets that ship with the package (no download), by the name users type.
RIVER_DATASETS = ("Bananas", "Phishing", "TrumpApproval", "ChickWeights", "Restaurants")


def river_rows(name: str) -> Iterable[Row]:
    """Rows of a River dataset named ``river:<Name>`` that ships offline with River."""
    from river import datasets

    _, _, dataset = name.partition(":")
    if dataset not in RIVER_DATASETS:
        raise ValueError(
            f"unknown dataset {name!r}; offline ones: river:{', river:'.join(RIVER_DATASETS)}"
        )
    rows: Iterable[Row] = getattr(datasets, dataset)()
    return rows


def _json_value(value: Any) -> Any:
    """Plain JSON-able values: numpy scalars and datetimes become Python ones."""
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        value = value.item()
    if isinstance(value, datetime):
        return value.timestamp()
    return value


def as_examples(
    stream: str,
    rows: Iterable[Row],
    *,
    limit: int | None = None,
    start: datetime | None = None,
    step: timedelta = timedelta(seconds=1),
    id_prefix: str = "",
) -> Iterator[LabelledExample]:
    """Labelled-example events from ``(features, label)`` rows.

    Example ids are the row numbers (with an optional prefix); event times start at
    ``start`` (default: so that the last example is "now") and advance by ``step``.
    """
    if start is None:
        count = limit if limit is not None else 0
        start = datetime.now(UTC) - step * count
    for i, (features, label) in enumerate(rows):
        if limit is not None and i >= limit:
            return
        yield LabelledExample(
            stream=stream,
            example_id=f"{id_prefix}{i}",
            features={str(k): _json_value(v) for k, v in features.items()},
            label=_json_value(label),
            event_time=start + step * i,
        )
