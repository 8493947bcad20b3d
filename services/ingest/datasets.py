"""Data sets as rows: River's data sets that ship offline (``river:Phishing``,
``river:Bananas``, ...) and synthetic drifting streams built from ``river.datasets.synth``
with a fixed seed (:data:`SYNTHETIC`). Pure: no Kafka here; files are
:mod:`services.ingest.sources`'.

>>> rows = river_rows("river:Phishing")
>>> x, y = next(iter(rows))
>>> sorted(x)[:2], y
(['age_of_domain', 'anchor_from_other_domain'], True)
>>> events = list(as_examples("phishing", river_rows("river:Phishing"), limit=3))
>>> [e.example_id for e in events]
['0', '1', '2']
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from schemas import LabelledExample

Row = tuple[dict[str, Any], Any]

# River's tasks with one label per row (multi-output datasets are not streams of examples).
_SINGLE_LABEL_TASKS = ("Binary classification", "Multi-class classification", "Regression")


def offline_datasets() -> tuple[str, ...]:
    """River's single-label datasets whose file ships with the installed River, by name.

    Found, not listed: every file dataset of ``river.datasets`` that needs no download
    and has one label per row (binary, multi-class or regression).

    >>> {"Bananas", "Phishing", "ImageSegments", "TrumpApproval", "ChickWeights"} <= set(
    ...     offline_datasets())
    True
    """
    from river import datasets
    from river.datasets import base

    found = []
    for name in sorted(getattr(datasets, "__all__", dir(datasets))):
        cls: Any = getattr(datasets, name, None)
        if not (
            isinstance(cls, type)
            and issubclass(cls, base.FileDataset)
            and not issubclass(cls, base.RemoteDataset)
        ):
            continue
        factory: Any = cls
        try:
            dataset = factory()
        except TypeError:  # needs arguments: not a plain file dataset
            continue
        if dataset.task in _SINGLE_LABEL_TASKS and Path(dataset.path).exists():
            found.append(name)
    return tuple(found)


def river_rows(name: str) -> Iterable[Row]:
    """Rows of a River dataset named ``river:<Name>`` that ships offline with River."""
    from river import datasets

    _, _, dataset = name.partition(":")
    known = offline_datasets()
    if dataset not in known:
        raise ValueError(f"unknown dataset {name!r}; offline ones: river:{', river:'.join(known)}")
    rows: Iterable[Row] = getattr(datasets, dataset)()
    return rows


def json_value(value: Any) -> Any:
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
            features={str(k): json_value(v) for k, v in features.items()},
            label=json_value(label),
            event_time=start + step * i,
        )


# -- synthetic drifting streams ---------------------------------------------------


@dataclass(frozen=True)
class Synthetic:
    """A synthetic stream with documented drift."""

    name: str
    description: str
    drifts: str
    default_limit: int
    rows: Callable[[int], Iterator[Row]]


def _numbered(features: dict[Any, Any]) -> dict[str, Any]:
    """River's integer feature keys 0, 1, ... as x1, x2, ..."""
    return {f"x{int(k) + 1}" if isinstance(k, int) else str(k): v for k, v in features.items()}


def _sea_rows(seed: int) -> Iterator[Row]:
    from river.datasets import synth

    for concept in range(4):  # SEA's four concepts, 5,000 examples each, then concept 3 on
        rows = synth.SEA(variant=concept, noise=0.1, seed=seed + concept)
        taken = rows.take(5000) if concept < 3 else iter(rows)
        for x, y in taken:
            yield _numbered(x), bool(y)


_AGRAWAL_CATEGORIES = ("elevel", "car", "zipcode")


def _agrawal_rows(seed: int) -> Iterator[Row]:
    from river.datasets import synth

    stream = synth.ConceptDriftStream(
        stream=synth.Agrawal(classification_function=0, seed=seed),
        drift_stream=synth.Agrawal(classification_function=2, seed=seed + 1),
        position=5000,
        width=1000,
        seed=seed,
    )
    for x, y in stream:
        features = {
            k: (str(int(v)) if k in _AGRAWAL_CATEGORIES else float(v)) for k, v in x.items()
        }
        yield features, int(y)


def _hyperplane_rows(seed: int) -> Iterator[Row]:
    from river.datasets import synth

    stream = synth.Hyperplane(
        seed=seed, n_features=10, n_drift_features=5, mag_change=0.001, noise_percentage=0.05
    )
    for x, y in stream:
        yield _numbered(x), int(y)


SYNTHETIC: dict[str, Synthetic] = {
    s.name: s
    for s in (
        Synthetic(
            "synth:sea-drift",
            "SEA (3 numbers in [0, 10], bool label, 10% label noise)",
            "abrupt: concept 0 -> 1 -> 2 -> 3 at examples 5,000, 10,000 and 15,000",
            20_000,
            _sea_rows,
        ),
        Synthetic(
            "synth:agrawal-drift",
            "Agrawal loan data (6 numbers, elevel/car/zipcode as categories, label 0/1)",
            "gradual: function 0 -> 2 centred on example 5,000, over about 1,000 examples",
            10_000,
            _agrawal_rows,
        ),
        Synthetic(
            "synth:hyperplane-drift",
            "rotating hyperplane (10 numbers in [0, 1], label 0/1, 5% noise)",
            "incremental: 5 of 10 weights move by 0.001 per example, from the first one",
            10_000,
            _hyperplane_rows,
        ),
    )
}


def dataset_rows(name: str, *, seed: int = 42) -> tuple[Iterable[Row], int | None]:
    """Rows of ``river:<Name>`` or ``synth:<name>`` and their count (None: endless)."""
    if name.startswith("synth:"):
        if name not in SYNTHETIC:
            raise ValueError(f"unknown synthetic stream {name!r}; known: {', '.join(SYNTHETIC)}")
        return SYNTHETIC[name].rows(seed), None
    rows = river_rows(name)
    size = getattr(rows, "n_samples", None)
    return rows, size if isinstance(size, int) else None


def is_dataset(source: str) -> bool:
    """True for ``river:...`` and ``synth:...`` names (anything else is a file)."""
    return source.startswith(("river:", "synth:"))
