"""The simpler alternatives, computed in-process on the demo's stream. Pure: no Kafka.

Each baseline is scored prequentially on exactly the rows that are replayed through
driftline, in the same order, and records its prediction and its score on each example,
so that its metric over time shares the served model's x-axis (the example index). The
score is 1.0 / 0.0 (right / wrong) for a class label, so its mean is the accuracy, and
the absolute error for a number label, so its mean is the MAE.

For a class label (:data:`CLASS_BASELINES`):

- ``majority``: River's ``dummy.PriorClassifier``, the most frequent class so far;
- ``static_hgb``: scikit-learn's ``HistGradientBoostingClassifier`` fitted once on the
  first ``train_size`` examples, then predicting only. Those first examples are its
  training data, so they are not scored (``None``);
- ``river_lr``: ``preprocessing.StandardScaler | linear_model.LogisticRegression``, built
  by the learner's own pipeline builder (category features one-hot encoded; one-vs-rest
  with more than two classes);
- ``river_hat``: ``tree.HoeffdingAdaptiveTreeClassifier``;
- ``river_arf``: ``forest.ARFClassifier(n_models=10)``;
- ``river_ddm``: ``drift.DriftRetrainingClassifier`` with a ``HoeffdingTreeClassifier`` and
  ``drift.binary.DDM``, River's one-process version of the whole driftline loop.

For a number label (:data:`NUMBER_BASELINES`): ``mean`` (the mean label so far), a static
``HistGradientBoostingRegressor``, and River's ``LinearRegression``,
``HoeffdingAdaptiveTreeRegressor`` and ``ARFRegressor(n_models=10)``, each behind a
``StandardScaler``.

River models predict, then learn (an example is scored before it is learned), exactly as
``river.evaluate.progressive_val_score`` does: a model with no prediction yet (``None``)
leaves the example unscored. Tree models (HGB, ARF, Hoeffding trees) see a category
feature as the index of its value in the spec's categories (values outside them:
first-seen order after those); numbers are floats, bools 0/1, missing values absent
(NaN for HGB).

>>> from services.demo.stream import DemoStream
>>> stream = DemoStream.default(quick=True)
>>> rows = list(stream.rows())[:600]
>>> result = run_baseline("river_lr", rows, stream.config.spec)
>>> len(result.scores), 0.5 < result.value() <= 1.0, result.metric
(600, True, 'accuracy')
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
from services.ingest.datasets import Row
from services.learner.pipeline import build_pipeline

__all__ = [
    "BASELINES",
    "CLASS_BASELINES",
    "NUMBER_BASELINES",
    "BaselineResult",
    "OrdinalEncoder",
    "baselines_for",
    "river_model",
    "rolling_accuracy",
    "run_baseline",
    "run_baselines",
]

CLASS_BASELINES: Final[dict[str, str]] = {
    "majority": "majority class (so far)",
    "static_hgb": "static HistGradientBoosting (first {n:,})",
    "river_lr": "River StandardScaler | LogisticRegression",
    "river_hat": "River HoeffdingAdaptiveTree",
    "river_arf": "River ARFClassifier (10 models)",
    "river_ddm": "River DriftRetrainingClassifier (HoeffdingTree, DDM)",
}
"""Baseline key -> the name shown in the report, for a class label."""

NUMBER_BASELINES: Final[dict[str, str]] = {
    "mean": "mean label (so far)",
    "static_hgb": "static HistGradientBoostingRegressor (first {n:,})",
    "river_lr": "River StandardScaler | LinearRegression",
    "river_hat": "River StandardScaler | HoeffdingAdaptiveTreeRegressor",
    "river_arf": "River StandardScaler | ARFRegressor (10 models)",
}
"""Baseline key -> the name shown in the report, for a number label."""

BASELINES: Final[dict[str, str]] = CLASS_BASELINES
"""The class-label baselines (kept under their old name)."""

STATIC_TRAIN_SIZE: Final = 2000
PROGRESS_EVERY: Final = 1000
Progress = Callable[[int], None]


def baselines_for(spec: Spec) -> dict[str, str]:
    """The baselines that fit the spec's label: key -> name (``{n}``: static train size).

    >>> from schemas.streams import Spec
    >>> spec = Spec.model_validate({"features": [{"name": "x", "type": "number"}],
    ...     "label": {"kind": "number"}})
    >>> list(baselines_for(spec))
    ['mean', 'static_hgb', 'river_lr', 'river_hat', 'river_arf']
    """
    return dict(CLASS_BASELINES if spec.label.kind == "class" else NUMBER_BASELINES)


def static_train_size(rows: int, at_most: int = STATIC_TRAIN_SIZE) -> int:
    """How many first examples the static model learns: ``at_most``, or a fifth of a short
    stream (at least 100), so that most of it is scored.

    >>> static_train_size(30_000), static_train_size(3_000), static_train_size(100)
    (2000, 600, 100)
    """
    return max(100, min(at_most, rows // 5))


@dataclass(frozen=True)
class BaselineResult:
    """One baseline's prequential record on a stream.

    ``scores[i]`` is the score on example ``i`` (``None``: not scored, e.g. the static
    model's training examples): 1.0 / 0.0 for a right / wrong class, the absolute error
    for a number; ``predictions[i]`` is what it predicted. ``metric`` names the mean of
    the scores: ``accuracy`` or ``mae``.
    """

    key: str
    name: str
    scores: tuple[float | None, ...]
    seconds: float
    metric: str = "accuracy"
    predictions: tuple[Any, ...] = ()

    def value(self, start: int = 0, end: int | None = None) -> float | None:
        """The metric over the scored examples of ``[start, end)`` (None: none scored)."""
        scored = [c for c in self.scores[start:end] if c is not None]
        return sum(scored) / len(scored) if scored else None

    def over(self, indices: Iterable[int]) -> float | None:
        """The metric over the scored examples among ``indices`` (None: none scored)."""
        scored = [c for c in (self.scores[i] for i in indices) if c is not None]
        return sum(scored) / len(scored) if scored else None

    def accuracy(self, start: int = 0, end: int | None = None) -> float | None:
        """:meth:`value` (the accuracy, for a class label)."""
        return self.value(start, end)

    @property
    def correct(self) -> tuple[float | None, ...]:
        """The scores (1.0 right, 0.0 wrong for a class label)."""
        return self.scores

    def rolling(self, window: int = 1000, step: int = 100) -> list[tuple[int, float]]:
        """``(n, metric over the last window scored examples among the first n)``."""
        return rolling_accuracy(self.scores, window=window, step=step)


def rolling_accuracy(
    correct: Sequence[float | None], *, window: int = 1000, step: int = 100
) -> list[tuple[int, float]]:
    """Rolling mean score (accuracy, MAE) every ``step`` examples, as ``(examples so far,
    mean)``.

    A point is given once ``min(window, 50)`` scored examples are in its window, and
    at the very end; unscored examples (None) neither count nor fill the window.

    >>> rolling_accuracy([True, False, True, True], window=2, step=2)
    [(2, 0.5), (4, 1.0)]
    """
    if window < 1 or step < 1:
        raise ValueError("window and step must be >= 1")
    points: list[tuple[int, float]] = []
    recent: list[float] = []
    hits = 0.0
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
    train_size: int | None = None,
    progress: Callable[[str, int], None] | None = None,
) -> BaselineResult:
    """Score the baseline ``key`` (one of :func:`baselines_for` the spec) on ``rows``.

    ``train_size``: the static model's (default: :func:`static_train_size`).
    ``progress(key, examples done)`` is called every :data:`PROGRESS_EVERY` examples
    (River baselines) and once at the end.
    """
    names = baselines_for(spec)
    if key not in names:
        raise ValueError(
            f"unknown baseline {key!r} for a {spec.label.kind} label; known: {', '.join(names)}"
        )
    size = static_train_size(len(rows)) if train_size is None else train_size

    def report(done: int) -> None:
        if progress is not None:
            progress(key, done)

    started = time.perf_counter()
    if key == "static_hgb":
        predictions = _static_hgb(rows, spec, seed, size)
    else:
        predictions = _prequential(river_model(key, spec, seed=seed), rows, report)
    report(len(rows))
    number = spec.label.kind == "number"
    scores = tuple(
        None if p is _UNSCORED else _score(p, y, number)
        for p, (_, y) in zip(predictions, rows, strict=True)
    )
    return BaselineResult(
        key,
        names[key].format(n=size),
        scores,
        time.perf_counter() - started,
        metric="mae" if number else "accuracy",
        predictions=tuple(None if p is _UNSCORED else _plain(p) for p in predictions),
    )


def run_baselines(
    rows: Sequence[Row],
    spec: Spec,
    *,
    keys: Iterable[str] | None = None,
    seed: int = 42,
    train_size: int | None = None,
    progress: Callable[[str, int], None] | None = None,
) -> list[BaselineResult]:
    """Every baseline in ``keys`` (default: all that fit the label), on the same rows."""
    return [
        run_baseline(k, rows, spec, seed=seed, train_size=train_size, progress=progress)
        for k in (baselines_for(spec) if keys is None else keys)
    ]


def river_model(key: str, spec: Spec, *, seed: int = 42) -> Any:
    """A fresh River model for baseline ``key`` that takes the rows' raw features.

    The same model ``run_baseline`` scores, so that ``river.evaluate`` can check it.
    """
    from river import compose, drift, dummy, forest, preprocessing, stats, tree

    number = spec.label.kind == "number"
    if key == "river_lr":
        pipeline = (
            "preprocessing.StandardScaler | linear_model.LinearRegression"
            if number
            else "preprocessing.StandardScaler | linear_model.LogisticRegression"
        )
        model_spec = ModelSpec.model_validate({"pipeline": pipeline, "seed": seed})
        return build_pipeline(model_spec, spec, smoke_test=False)
    encoder = compose.FuncTransformer(OrdinalEncoder(spec).encode)
    model: Any
    if key == "majority" and not number:
        model = dummy.PriorClassifier()
    elif key == "mean" and number:
        model = dummy.StatisticRegressor(stats.Mean())
    elif key == "river_hat":
        model = (
            preprocessing.StandardScaler() | tree.HoeffdingAdaptiveTreeRegressor(seed=seed)
            if number
            else tree.HoeffdingAdaptiveTreeClassifier(seed=seed)
        )
    elif key == "river_arf":
        model = (
            preprocessing.StandardScaler() | forest.ARFRegressor(n_models=10, seed=seed)
            if number
            else forest.ARFClassifier(n_models=10, seed=seed)
        )
    elif key == "river_ddm" and not number:
        model = drift.DriftRetrainingClassifier(
            model=tree.HoeffdingTreeClassifier(), drift_detector=drift.binary.DDM()
        )
    else:
        raise ValueError(f"no River baseline {key!r} for a {spec.label.kind} label")
    return encoder | model


_UNSCORED: Final = object()


def _static_hgb(rows: Sequence[Row], spec: Spec, seed: int, train_size: int) -> list[Any]:
    import numpy as np
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

    if len(rows) <= train_size:
        return [_UNSCORED] * len(rows)
    encoder = OrdinalEncoder(spec)
    matrix = np.asarray(encoder.matrix(x for x, _ in rows), dtype=float)
    labels = [y for _, y in rows]
    categorical = [encoder.kinds[name] == "category" for name in encoder.names]
    # HGB takes categories as small non-negative codes; past 255 values they are numbers.
    for j, name in enumerate(encoder.names):
        if categorical[j] and len(encoder.codes[name]) > 255:
            categorical[j] = False
    cls = (
        HistGradientBoostingRegressor
        if spec.label.kind == "number"
        else HistGradientBoostingClassifier
    )
    model = cls(categorical_features=categorical if any(categorical) else None, random_state=seed)
    # One OpenMP thread: on a busy machine more threads spin and make it many times slower.
    with threadpool_limits(limits=1, user_api="openmp"):
        model.fit(matrix[:train_size], labels[:train_size])
        predicted = model.predict(matrix[train_size:])
    out: list[Any] = [_UNSCORED] * train_size
    out.extend(predicted)
    return out


def _prequential(model: Any, rows: Sequence[Row], progress: Progress) -> list[Any]:
    """Predict then learn each row, as ``river.evaluate.progressive_val_score`` does."""
    out: list[Any] = []
    for i, (x, y) in enumerate(rows, start=1):
        if i % PROGRESS_EVERY == 0:
            progress(i)
        predicted = model.predict_one(x)
        out.append(_UNSCORED if predicted is None or predicted == {} else predicted)
        model.learn_one(x, y)
    return out


def _plain(value: Any) -> Any:
    """A JSON-able prediction (numpy scalars become Python ones)."""
    return value.item() if hasattr(value, "item") else value


def _score(predicted: Any, label: Any, number: bool) -> float:
    """1.0 / 0.0 for a right / wrong class; the absolute error for a number."""
    if number:
        return abs(float(label) - float(_plain(predicted)))
    return 1.0 if _same(predicted, label) else 0.0


def _same(predicted: Any, label: Any) -> bool:
    """A prediction matches a label (numpy scalars and 1 == 1.0 included, None never)."""
    if predicted is None:
        return False
    predicted = _plain(predicted)
    return bool(predicted == label) and isinstance(predicted, bool) == isinstance(label, bool)
