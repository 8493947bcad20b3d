"""The demo's streams: the default drifting stream, files with a config, offline datasets.

Pure: no Kafka, no database. A :class:`DemoStream` is a finite, replayable sequence of
``(features, label)`` rows with example ids, its stream config (spec, model, policy) and
the drift points that are known to be in it (none for files and real-world datasets).

The default stream (:meth:`DemoStream.default`) is River's Agrawal loan generator with a
fixed seed and 5% label noise, switching concepts twice:

- classification function 0 (age bands) until the first drift, then
- **abrupt** drift to function 2 (age and salary bands) at one third of the stream, then
- **gradual** drift to function 5 (age, salary and loan) centred at two thirds of the
  stream: over ``width`` examples, the probability that an example comes from the new
  concept rises along a sigmoid (as in ``river.datasets.synth.ConceptDriftStream``).

A model that keeps concept 0 agrees with concept 2 on about 46% of the examples and with
concept 5 on about 30%, so a static model visibly fails after each drift. The input
distribution does not change (pure concept drift), so the config turns data-drift tests
off. ``elevel``, ``car`` and ``zipcode`` are categories (their codes as strings), like
``synth:agrawal-drift`` of ``driftline produce``.

>>> stream = DemoStream.default(quick=True)
>>> stream.name, stream.size, [(d.position, d.width, d.kind) for d in stream.drifts]
('agrawal-drift-quick', 9000, [(3000, 1, 'abrupt'), (6000, 900, 'gradual')])
>>> x, y = next(iter(stream.rows()))
>>> sorted(x)[:3], y in (0, 1)
(['age', 'car', 'commission'], True)
>>> next(iter(stream.identified()))[0]
'0'
>>> stream.config.policy.drift.detector, stream.config.policy.promotion
('ADWIN', 'direct')
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from schemas import LabelledExample, StreamConfig
from services.common.config_files import BODY_FIELDS, config_to_yaml, read_config_file
from services.ingest.datasets import Row, as_examples, river_rows
from services.ingest.infer import infer_config
from services.ingest.sources import (
    Columns,
    Record,
    Skipped,
    dataset_records,
    read_file,
)

__all__ = [
    "BAD_EVERY",
    "BODY_FIELDS",
    "DEFAULT_SEED",
    "DriftPoint",
    "DemoStream",
    "agrawal_config",
    "agrawal_rows",
    "config_to_yaml",
    "is_malformed",
    "load_config",
    "parse_drift_at",
    "load_stream",
    "with_demo_policy",
]

DEFAULT_SEED = 42
BAD_EVERY = 250  # the demo sends one example in this many malformed (the dead-letter path)
DriftKind = Literal["abrupt", "gradual"]

# (size, abrupt position, gradual centre, gradual width)
_FULL = (30_000, 10_000, 20_000, 3_000)
_QUICK = (9_000, 3_000, 6_000, 900)
_CONCEPTS = (0, 2, 5)  # Agrawal classification functions, in order
_LABEL_NOISE = 0.05
_CATEGORIES: dict[str, tuple[str, ...]] = {
    "elevel": tuple(str(i) for i in range(5)),
    "car": tuple(str(i) for i in range(1, 21)),
    "zipcode": tuple(str(i) for i in range(9)),
}
_NUMBERS: dict[str, tuple[float, float]] = {
    "salary": (20_000.0, 150_000.0),
    "commission": (0.0, 85_000.0),
    "age": (20.0, 80.0),
    "hvalue": (0.0, 1_200_000.0),
    "hyears": (1.0, 30.0),
    "loan": (0.0, 500_000.0),
}


def is_malformed(index: int) -> bool:
    """Whether the demo sends the example at stream ``index`` malformed (never learned).

    >>> [i for i in range(1000) if is_malformed(i)]
    [249, 499, 749, 999]
    """
    return index % BAD_EVERY == BAD_EVERY - 1


@dataclass(frozen=True)
class DriftPoint:
    """A true concept drift: where it is centred, over how many examples, and its kind.

    An abrupt drift has width 1: example ``position`` is the first of the new concept.
    A gradual one mixes the two concepts over ``[start, end)``.

    >>> DriftPoint(6000, 900, "gradual").start, DriftPoint(6000, 900, "gradual").end
    (5550, 6450)
    >>> DriftPoint(3000, 1, "abrupt").start, DriftPoint(3000, 1, "abrupt").end
    (3000, 3001)
    """

    position: int
    width: int
    kind: DriftKind

    def __post_init__(self) -> None:
        if self.position < 0 or self.width < 1:
            raise ValueError(f"bad drift point {self}: position >= 0 and width >= 1")

    @property
    def start(self) -> int:
        """First example of the transition."""
        return max(0, self.position - self.width // 2)

    @property
    def end(self) -> int:
        """First example after the transition."""
        return self.start + self.width


@dataclass(frozen=True)
class DemoStream:
    """A finite stream for the demo: rows with ids, its config and its known drifts.

    Build one with :meth:`default`, :meth:`from_file` or :meth:`from_river` (or
    :func:`load_stream`); ``rows()`` can be iterated any number of times and gives the
    same rows each time.

    Parameters
    ----------
    name
        The stream name (also the model name).
    description
        One line for people: data, drifts.
    size
        Number of examples.
    drifts
        The true drift points, in order (empty when unknown).
    config
        The stream config to publish before replaying it.
    seed
        The seed the rows were generated with (None for files and datasets).
    skipped
        Rows of a file that could not be examples (line, reason).
    """

    name: str
    description: str
    size: int
    drifts: tuple[DriftPoint, ...]
    config: StreamConfig
    seed: int | None = None
    skipped: tuple[Skipped, ...] = ()
    _source: Callable[[], Iterable[tuple[str, dict[str, Any], Any]]] = field(
        default=lambda: (), repr=False, compare=False
    )

    @classmethod
    def default(cls, quick: bool = False, seed: int = DEFAULT_SEED) -> DemoStream:
        """The default drifting stream: 30,000 examples, or 9,000 with ``quick``."""
        size, abrupt, centre, width = _QUICK if quick else _FULL
        drifts = (DriftPoint(abrupt, 1, "abrupt"), DriftPoint(centre, width, "gradual"))
        name = "agrawal-drift-quick" if quick else "agrawal-drift"

        cache: list[tuple[str, dict[str, Any], Any]] = []

        def generate() -> Iterator[tuple[str, dict[str, Any], Any]]:
            fresh = []
            for i, (x, y) in enumerate(agrawal_rows(size, drifts, seed=seed)):
                fresh.append((str(i), x, y))
                yield fresh[-1]
            if not cache:
                cache.extend(fresh)

        def source() -> Iterable[tuple[str, dict[str, Any], Any]]:
            # generated lazily (Agrawal takes a few seconds); once read to the end, the rows
            # are replayed from memory: callers must not change them
            return cache if cache else generate()

        return cls(
            name=name,
            description=(
                f"Agrawal loans (6 numbers, 3 categories, label 0/1, {_LABEL_NOISE:.0%} label "
                f"noise), seed {seed}: abrupt drift (function 0 -> 2) at {abrupt:,}, gradual "
                f"drift (2 -> 5) centred at {centre:,} over {width:,} examples"
            ),
            size=size,
            drifts=drifts,
            config=agrawal_config(name, quick=quick, seed=seed),
            seed=seed,
            _source=source,
        )

    @classmethod
    def from_file(
        cls, path: Path, config: StreamConfig | None = None, *, columns: Columns | None = None
    ) -> DemoStream:
        """A CSV or JSON Lines file (read whole) with its stream config.

        Ids, labels and times are read as ``driftline produce`` reads them; rows that
        cannot be examples are kept in ``skipped``. Without ``config`` one is inferred
        from the rows, as ``driftline spec infer`` does, with the demo's policy.
        """
        good: list[Record] = []
        bad: list[Skipped] = []
        for item in read_file(path, columns or Columns()):
            if isinstance(item, Skipped):
                bad.append(item)
            else:
                good.append(item)
        if not good:
            raise ValueError(f"{path}: no usable rows")
        records = tuple(good)
        if config is None:
            stream = "".join(c if c.isalnum() or c in "._-" else "-" for c in path.stem)
            inferred = infer_config(stream or "file", ((r.features, r.label) for r in records))
            config = with_demo_policy(inferred.config, size=len(records))
        return cls(
            name=config.stream,
            description=f"{path.name}: {len(records):,} examples",
            size=len(records),
            drifts=(),
            config=config,
            skipped=tuple(bad),
            _source=lambda: ((r.example_id, r.features, r.label) for r in records),
        )

    @classmethod
    def from_river(cls, name: str, config: StreamConfig | None = None) -> DemoStream:
        """A real-world River dataset that ships offline (``river:Phishing``, ...).

        Without ``config`` one is inferred from the data, with the demo's policy. Values
        are the ones the events carry (numpy scalars as numbers, datetimes as epoch
        seconds), for the services and the baselines alike.
        """
        rows = tuple((r.features, r.label) for r in dataset_records(river_rows(name)))
        stream = name.partition(":")[2].lower()
        if config is None:
            inferred = infer_config(stream, rows).config
            config = with_demo_policy(inferred, size=len(rows))
        return cls(
            name=config.stream,
            description=f"River's {name.partition(':')[2]} dataset: {len(rows):,} examples",
            size=len(rows),
            drifts=(),
            config=config,
            _source=lambda: ((str(i), x, y) for i, (x, y) in enumerate(rows)),
        )

    def with_drifts(self, drifts: Sequence[DriftPoint]) -> DemoStream:
        """The same stream with known drift points (e.g. from ``--drift-at``)."""
        for drift in drifts:
            if drift.position >= self.size:
                raise ValueError(
                    f"drift point {drift.position:,} is past the stream's end ({self.size:,})"
                )
        ordered = tuple(sorted(drifts, key=lambda d: d.position))
        where = ", ".join(f"{d.position:,}" for d in ordered)
        return replace(self, drifts=ordered, description=f"{self.description}; drift at {where}")

    def identified(self) -> Iterator[tuple[str, dict[str, Any], Any]]:
        """``(example_id, features, label)`` in stream order."""
        return iter(self._source())

    def rows(self) -> Iterator[Row]:
        """``(features, label)`` in stream order."""
        return ((x, y) for _, x, y in self._source())

    def example_ids(self) -> Iterator[str]:
        """The example ids in stream order."""
        return (i for i, _, _ in self._source())

    def examples(
        self, *, start: datetime | None = None, step: timedelta = timedelta(seconds=1)
    ) -> Iterator[LabelledExample]:
        """Labelled-example events of the rows, for ``examples.raw`` (ids kept)."""
        ids: list[str] = []

        def rows() -> Iterator[Row]:
            for ident, x, y in self._source():
                ids.append(ident)
                yield x, y

        for event in as_examples(self.name, rows(), limit=self.size, start=start, step=step):
            ident = ids.pop()
            yield (
                event
                if ident == event.example_id
                else event.model_copy(update={"example_id": ident})
            )

    def config_yaml(self) -> str:
        """The stream config as YAML, as ``driftline spec publish`` reads it."""
        return config_to_yaml(self.config)


# -- the default stream ------------------------------------------------------------------


def agrawal_rows(
    size: int, drifts: Sequence[DriftPoint], *, seed: int = DEFAULT_SEED
) -> Iterator[Row]:
    """``size`` Agrawal rows whose concept changes at each drift point, in order.

    Concept ``k`` is Agrawal function ``_CONCEPTS[k]``; before drift ``k`` the rows come
    from concept ``k``; during its transition each row comes from concept ``k + 1`` with
    probability ``1 / (1 + exp(-4 (i - position) / width))``.
    """
    from river.datasets import synth

    if len(drifts) >= len(_CONCEPTS):
        raise ValueError(f"at most {len(_CONCEPTS) - 1} drift points")
    gens = [
        iter(synth.Agrawal(classification_function=f, seed=seed + k))
        for k, f in enumerate(_CONCEPTS[: len(drifts) + 1])
    ]
    rng = random.Random(seed)  # noqa: S311 - simulation, not security
    for i in range(size):
        concept = 0
        for k, drift in enumerate(drifts):
            if drift.kind == "abrupt" or drift.width <= 1:
                newer = i >= drift.position
            else:
                z = max(-50.0, min(50.0, -4.0 * (i - drift.position) / drift.width))
                newer = rng.random() < 1.0 / (1.0 + math.exp(z))
            if newer:
                concept = k + 1
        x, y = next(gens[concept])
        label = int(y)
        if rng.random() < _LABEL_NOISE:
            label = 1 - label
        features = {str(k): (str(int(v)) if k in _CATEGORIES else float(v)) for k, v in x.items()}
        yield features, label


def agrawal_config(name: str, *, quick: bool = False, seed: int = DEFAULT_SEED) -> StreamConfig:
    """The default stream's config: Agrawal's spec and the demo's model and policy."""
    order = ("salary", "commission", "age", "elevel", "car", "zipcode", "hvalue", "hyears")
    features = [_feature(feature) for feature in (*order, "loan")]
    size = (_QUICK if quick else _FULL)[0]
    return with_demo_policy(
        StreamConfig.model_validate(
            {
                "stream": name,
                "spec": {"features": features, "label": {"kind": "class", "classes": [0, 1]}},
                # a plain Hoeffding tree: about 40% cheaper per example than the adaptive
                # one, and since it does not adapt, its error stays up after a change, so
                # ADWIN fires again while a gradual drift progresses; the retrained batch
                # models carry the accuracy
                "model": {"pipeline": [{"estimator": "tree.HoeffdingTreeClassifier"}]},
            }
        ),
        size=size,
        segment_feature="elevel",
        data_drift=False,
        seed=seed,
    )


def _feature(name: str) -> dict[str, Any]:
    if name in _CATEGORIES:
        return {"name": name, "type": "category", "categories": list(_CATEGORIES[name])}
    lo, hi = _NUMBERS[name]
    return {"name": name, "type": "number", "min": lo, "max": hi}


def with_demo_policy(
    config: StreamConfig,
    *,
    size: int,
    segment_feature: str | None = None,
    data_drift: bool = True,
    seed: int = DEFAULT_SEED,
) -> StreamConfig:
    """``config`` with the demo's policy, scaled to a stream of ``size`` examples.

    ADWIN on the learner's errors with a cooldown; on drift, retraining on the examples
    since the drift (once ``min_size`` of them exist); a scheduled retrain on the last
    ``window`` examples every ``every`` examples since the last trigger (it replaces a
    model trained in the middle of a gradual drift); two candidates with a short tuning
    budget, so a run ends within seconds on a busy laptop; direct promotion; and a
    fairness check on ``segment_feature`` (when given) with a 0.3 maximum gap: with a
    holdout of a few hundred examples, a segment holds a few dozen and its accuracy moves
    by +-0.1 by chance alone, so a tighter limit would refuse every candidate on noise.
    """
    scale = max(0.1, min(1.0, size / _FULL[0]))
    kind = config.spec.label.kind
    policy = {
        "primary_metric": config.policy.primary_metric_for(kind),
        "rolling_window": _round(1000 * scale, 100),
        "drift": {
            "detector": "ADWIN",
            "params": {"delta": 0.002},
            "data_drift": data_drift,
            "cooldown": _round(2500 * scale, 100),
        },
        "retrain": {
            "mode": "since_drift",
            "window": _round(2000 * scale, 100),
            "min_size": _round(1000 * scale, 100),
            "holdout_fraction": 0.2,
            "candidates": [
                "hist_gradient_boosting",
                "logistic_regression" if kind == "class" else "ridge",
            ],
            "budget_s": 1.5 if scale >= 1.0 else 1.0,
            "seed": seed,
            "every": _round(2000 * scale, 100),
        },
        "online_version_every": _round(1000 * scale, 100),
        "promotion": "direct",
        "margin": 0.0,
        "segment_feature": segment_feature,
        "max_gap": 0.3,
    }
    body = config.model_dump(mode="json", include=set(BODY_FIELDS))
    body["policy"] = policy
    body["model"]["seed"] = seed
    return StreamConfig.model_validate(body)


def _round(value: float, unit: int) -> int:
    return max(unit, int(round(value / unit)) * unit)


# -- config files ------------------------------------------------------------------------


def load_config(path: Path) -> StreamConfig:
    """A YAML stream config file, validated (ConfigError naming the file otherwise)."""
    return read_config_file(path)[0]


def load_stream(
    dataset: str | None = None,
    config: Path | None = None,
    *,
    quick: bool = False,
    seed: int = DEFAULT_SEED,
    columns: Columns | None = None,
    drift_at: str | None = None,
) -> DemoStream:
    """The stream ``driftline demo`` replays.

    ``dataset`` None: the default drifting stream. ``river:<Name>``: a River dataset that
    ships offline. A ``.csv`` or ``.jsonl`` path, read with ``columns``. Without
    ``config``, a dataset's or file's config is inferred. ``quick`` shortens the default
    stream only. ``drift_at`` (``N[,N...]``) gives a dataset's or file's known drift
    points, for post-drift numbers in the report.
    """
    if dataset is None:
        if config is not None:
            raise ValueError("--config goes with --dataset; the default stream has its own")
        if drift_at:
            raise ValueError("--drift-at goes with --dataset; the default stream has its own")
        return DemoStream.default(quick=quick, seed=seed)
    loaded = load_config(config) if config is not None else None
    if dataset.startswith("river:"):
        stream = DemoStream.from_river(dataset, loaded)
    else:
        stream = DemoStream.from_file(Path(dataset), loaded, columns=columns)
    return stream.with_drifts(parse_drift_at(drift_at)) if drift_at else stream


def parse_drift_at(text: str) -> tuple[DriftPoint, ...]:
    """``--drift-at N[,N...]``: abrupt drift points at those stream indexes.

    >>> [d.position for d in parse_drift_at("3000, 6000")]
    [3000, 6000]
    """
    points = []
    for part in text.split(","):
        try:
            position = int(part.strip())
        except ValueError:
            raise ValueError(f"--drift-at {text!r}: expected N[,N...] (example indexes)") from None
        if position < 1:
            raise ValueError(f"--drift-at {text!r}: drift points are example indexes >= 1")
        points.append(DriftPoint(position, 1, "abrupt"))
    return tuple(points)
