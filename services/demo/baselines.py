"""The simpler alternatives, computed in-process on the demo's stream. Pure: no Kafka.

Each baseline is scored prequentially on exactly the rows that are replayed through
driftline, in the same order, and records whether each example was predicted correctly,
so that its accuracy over time shares the served model's x-axis (the example index):

- ``static_hgb``: scikit-learn's ``HistGradientBoostingClassifier`` fitted once on the
  first ``train_size`` examples (2,000), then predicting only. Those first examples are
  its training data, so they are not scored (``None``);
- ``river_lr``: ``preprocessing.StandardScaler | linear_model.LogisticRegression``, built
  by the learner's own pipeline builder (category features one-hot encoded);
- ``river_arf``: ``forest.ARFClassifier(n_models=10)``;
- ``river_ddm``: ``drift.DriftRetrainingClassifier`` with a ``HoeffdingTreeClassifier`` and
  ``drift.binary.DDM``, River's one-process version of the whole driftline loop.

River models predict, then learn (an example is scored before it is learned). Tree models
(HGB, ARF, Hoeffding tree) see a category feature as the index of its value in the spec's
categories (values outside them: first-seen order after those), which is how they split
categories cheaply; numbers are floats, bools 0/1, missing values absent (NaN for HGB).

>>> from services.demo.stream import DemoStream
>>> stream = DemoStream.default(quick=True)
>>> rows = list(stream.rows())[:600]
>>> result = run_baseline("river_lr", rows, stream.config.spec)
>>> len(result.correct), 0.5 < result.accuracy() <= 1.0
(600, True)
>>> points = result.rolling(window=200, step=100)
>>> points[0][0], points[-1][0]
(100, 600)
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from schemas.streams import ModelSpec, Spec
from services.ingest.sources import Row
from services.learner.pipeline import build_pipeline

__all__ = [
    "BASELINES",
    "BaselineResult",
    "OrdinalEncoder",
    "rolling_accuracy",
    "run_baseline",
    "run_baselines",
]

BASELINES: Final[dict[str, str]] = {
    "static_hgb": "static HistGradientBoosting (first 2,000)",
    "river_lr": "River StandardScaler | LogisticRegression",
    "river_arf": "River ARFClassifier (10 models)",
    "river_ddm": "River DriftRetrainingClassifier (HoeffdingTree, DDM)",
}
"""Baseline key -> the name shown in the report."""

STATIC_TRAIN_SIZE: Final = 2000
PROGRESS_EVERY: Final = 1000
Progress = Callable[[int], None]


@dataclass(frozen=True)
class BaselineResult:
    """One baseline's prequential record on a stream.

    ``correct[i]`` says whether example ``i`` was predicted correctly (``None``: not
    scored, e.g. the static model's training examples).
    """

    key: str
    name: str
    correct: tuple[bool | None, ...]
    seconds: float

    def accuracy(self, start: int = 0, end: int | None = None) -> float | None:
        """Accuracy over the scored examples of ``[start, end)`` (None: none scored)."""
        scored = [c for c in self.correct[start:end] if c is not None]
        return sum(scored) / len(scored) if scored else None

    def rolling(self, window: int = 1000, step: int = 100) -> list[tuple[int, float]]:
        """``(n, accuracy over the last window scored examples among the first n)``."""
        return rolling_accuracy(self.correct, window=window, step=step)


def rolling_accuracy(
    correct: Sequence[bool | None], *, window: int = 1000, step: int = 100
) -> list[tuple[int, float]]:
    """Rolling accuracy every ``step`` examples, as ``(examples so far, accuracy)``.

    A point is given once ``min(window, 50)`` scored examples are in its window, and
    at the very end; unscored examples (None) neither count nor fill the window.

    >>> rolling_accuracy([True, False, True, True], window=2, step=2)
    [(2, 0.5), (4, 1.0)]
    """
    if window < 1 or step < 1:
        raise ValueError("window and step must be >= 1")
    points: list[tuple[int, float]] = []
    recent: list[bool] = []
    hits = 0
    needed = min(window, 50)
    n = len(correct)
    for i, flag in enumerate(correct, start=1):
        if flag is not None:
            recent.append(flag)
            hits += flag
            if len(recent) > window:
                hits -= recent[len(recent) - window - 1]
        if (i % step == 0 or i == n) and min(len(recent), window) >= needed:
            points.append((i, hits / min(len(recent), window)))
    return points


class OrdinalEncoder:
    """Features as numbers for tree models: categories by their index in the spec.

    >>> from schemas.streams import Spec
    >>> spec = Spec.model_validate({"features": [{"name": "x", "type": "number"},
    ...     {"name": "c", "type": "category", "categories": ["a", "b"]},
    ...     {"name": "f", "type": "bool"}], "label": {"kind": "class", "classes": [0, 1]}})
    >>> enc = OrdinalEncoder(spec)
    >>> enc.encode({"x": 2, "c": "b", "f": True}), enc.encode({"x": None, "c": "z"})
    ({'x': 2.0, 'c': 1.0, 'f': 1.0}, {'c': 2.0})
    """

    def __init__(self, spec: Spec) -> None:
        self.names = tuple(f.name for f in spec.features)
        self.kinds = {f.name: f.type for f in spec.features}
        self.codes: dict[str, dict[str, int]] = {
            f.name: {c: i for i, c in enumerate(f.categories or ())}
            for f in spec.features
            if f.type == "category"
        }

    def encode(self, x: dict[str, Any]) -> dict[str, float]:
        """Known features as floats; missing, null and non-finite values left out."""
        out: dict[str, float] = {}
        for name in self.names:
            value = x.get(name)
            if value is None:
                continue
            kind = self.kinds[name]
            if kind == "category":
                codes = self.codes[name]
                out[name] = float(codes.setdefault(str(value), len(codes)))
            elif isinstance(value, int | float):
                number = float(value)
                if math.isfinite(number):
                    out[name] = number
        return out

    def matrix(self, rows: Iterable[dict[str, Any]]) -> list[list[float]]:
        """Rows as a dense matrix in spec order (NaN where a value is missing)."""
        table = []
        for x in rows:
            encoded = self.encode(x)
            table.append([encoded.get(name, math.nan) for name in self.names])
        return table


# -- the baselines -----------------------------------------------------------------------


def run_baseline(
    key: str,
    rows: Sequence[Row],
    spec: Spec,
    *,
    seed: int = 42,
    train_size: int = STATIC_TRAIN_SIZE,
    progress: Callable[[str, int], None] | None = None,
) -> BaselineResult:
    """Score the baseline ``key`` (one of :data:`BASELINES`) on ``rows``.

    ``progress(key, examples done)`` is called every :data:`PROGRESS_EVERY` examples
    (River baselines) and once at the end.
    """
    runner = _RUNNERS.get(key)
    if runner is None:
        raise ValueError(f"unknown baseline {key!r}; known: {', '.join(BASELINES)}")

    def report(done: int) -> None:
        if progress is not None:
            progress(key, done)

    started = time.perf_counter()
    correct = runner(rows, spec, seed, train_size, report)
    report(len(rows))
    return BaselineResult(key, BASELINES[key], tuple(correct), time.perf_counter() - started)


def run_baselines(
    rows: Sequence[Row],
    spec: Spec,
    *,
    keys: Iterable[str] = tuple(BASELINES),
    seed: int = 42,
    train_size: int = STATIC_TRAIN_SIZE,
    progress: Callable[[str, int], None] | None = None,
) -> list[BaselineResult]:
    """Every baseline in ``keys``, one after the other, on the same rows."""
    return [
        run_baseline(k, rows, spec, seed=seed, train_size=train_size, progress=progress)
        for k in keys
    ]


def _static_hgb(
    rows: Sequence[Row], spec: Spec, seed: int, train_size: int, progress: Progress
) -> list[bool | None]:
    import numpy as np
    from sklearn.ensemble import HistGradientBoostingClassifier
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

    if len(rows) <= train_size:
        return [None] * len(rows)
    encoder = OrdinalEncoder(spec)
    matrix = np.asarray(encoder.matrix(x for x, _ in rows), dtype=float)
    labels = [y for _, y in rows]
    categorical = [encoder.kinds[name] == "category" for name in encoder.names]
    # HGB takes categories as small non-negative codes; past 255 values they are numbers.
    for j, name in enumerate(encoder.names):
        if categorical[j] and len(encoder.codes[name]) > 255:
            categorical[j] = False
    model = HistGradientBoostingClassifier(
        categorical_features=categorical if any(categorical) else None, random_state=seed
    )
    # One OpenMP thread: on a busy machine more threads spin and make it many times slower.
    with threadpool_limits(limits=1, user_api="openmp"):
        model.fit(matrix[:train_size], labels[:train_size])
        predicted = model.predict(matrix[train_size:])
    flags: list[bool | None] = [None] * train_size
    flags.extend(_same(p, y) for p, y in zip(predicted, labels[train_size:], strict=True))
    return flags


def _prequential(
    model: Any, rows: Sequence[Row], encode: Callable[[Any], Any], progress: Progress
) -> list[bool]:
    flags: list[bool] = []
    for i, (x, y) in enumerate(rows, start=1):
        if i % PROGRESS_EVERY == 0:
            progress(i)
        features = encode(x)
        flags.append(_same(model.predict_one(features), y))
        model.learn_one(features, y)
    return flags


def _river_lr(
    rows: Sequence[Row], spec: Spec, seed: int, train_size: int, progress: Progress
) -> list[bool | None]:
    model = build_pipeline(
        ModelSpec.model_validate(
            {"pipeline": "preprocessing.StandardScaler | linear_model.LogisticRegression"}
        ).model_copy(update={"seed": seed}),
        spec,
        smoke_test=False,
    )
    return list(_prequential(model, rows, lambda x: x, progress))


def _river_arf(
    rows: Sequence[Row], spec: Spec, seed: int, train_size: int, progress: Progress
) -> list[bool | None]:
    from river import forest

    encoder = OrdinalEncoder(spec)
    model = forest.ARFClassifier(n_models=10, seed=seed)
    return list(_prequential(model, rows, encoder.encode, progress))


def _river_ddm(
    rows: Sequence[Row], spec: Spec, seed: int, train_size: int, progress: Progress
) -> list[bool | None]:
    from river import drift, tree

    encoder = OrdinalEncoder(spec)
    model = drift.DriftRetrainingClassifier(
        model=tree.HoeffdingTreeClassifier(), drift_detector=drift.binary.DDM()
    )
    return list(_prequential(model, rows, encoder.encode, progress))


def _same(predicted: Any, label: Any) -> bool:
    """A prediction matches a label (numpy scalars and 1 == 1.0 included, None never)."""
    if predicted is None:
        return False
    if hasattr(predicted, "item"):
        predicted = predicted.item()
    return bool(predicted == label) and isinstance(predicted, bool) == isinstance(label, bool)


_RUNNERS: Final[
    dict[str, Callable[[Sequence[Row], Spec, int, int, Progress], list[bool | None]]]
] = {
    "static_hgb": _static_hgb,
    "river_lr": _river_lr,
    "river_arf": _river_arf,
    "river_ddm": _river_ddm,
}
