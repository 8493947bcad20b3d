"""Inferring a stream config from data. Pure: no Kafka, no files.

:func:`infer_config` looks at ``(features, label)`` pairs and proposes a spec:

- a feature is ``bool`` when its values are booleans, ``number`` when they are numbers
  (the range is the observed one widened by ``margin`` of its span on each side, never
  below 0 when no value was negative, rounded outwards to 4 significant digits), and
  ``category`` when they are strings (with the closed set of values when there are at
  most ``max_categories`` distinct ones; otherwise any string passes);
- mixed types take the majority type, with a warning;
- ``nullable`` when a value was null or the feature was absent from some row;
- the label is a ``class`` (booleans, strings, or at most ``max_classes`` distinct
  integers, with those classes) or a ``number``.

A number feature whose values only go up (or only down) in row order, at least
``MONOTONIC_SHARE`` of the steps, with at least ``MONOTONIC_MIN_DISTINCT`` distinct values,
is a time stamp, a counter or an id: its distribution moves by construction, so it is put
in ``policy.drift.exclude_features`` (left out of the data-drift tests), with a warning.

The ``model`` is driftline's selecting online model (``driftline.SelectClassifier`` for a
class label, ``driftline.SelectRegressor`` for a number: see ``services.common.selector``
and ``bench defaults``); the ``policy`` is the default one fitted to the label (for a
class label ``accuracy`` as the primary metric and classifier candidates; for a number
label ``mae`` and regression candidates: ``ridge``, no ``logistic_regression``), plus the
excluded features. A column that cannot be a feature (an empty or over-long name)
is left out of the spec with a warning that names it and says what to do.

>>> rows = [({"x": 1.0, "c": "a", "b": True}, "yes"), ({"x": 3.0, "c": "b", "b": None}, "no")]
>>> result = infer_config("demo", rows)
>>> for f in result.config.spec.features:
...     print(f.name, f.type, f.min, f.max, f.categories, f.nullable)
x number 0.8 3.2 None False
c category None None ('a', 'b') False
b bool None None None True
>>> result.config.spec.label.classes
('no', 'yes')
>>> result.config.policy.primary_metric, result.config.policy.retrain.candidates
('accuracy', ('logistic_regression', 'hist_gradient_boosting', 'random_forest'))
>>> numbers = infer_config("n", [({"x": float(i), "": i}, i * 0.5) for i in range(30)])
>>> numbers.config.policy.primary_metric, numbers.config.policy.retrain.candidates
('mae', ('ridge', 'hist_gradient_boosting', 'random_forest'))
>>> [f.name for f in numbers.config.spec.features], numbers.warnings[0][:32]
(['x'], 'column 2 has no name: left out o')
>>> rows = [({"ts": 1000 + 60 * i, "t": float(i % 5)}, i % 2) for i in range(100)]
>>> infer_config("clock", rows).config.policy.drift.exclude_features
('ts',)
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from schemas import FeatureSpec, LabelSpec, ModelSpec, Policy, Spec, StreamConfig

DEFAULT_CLASSIFIER = "driftline.SelectClassifier"
"""The online model inferred for a class label (see ``services.common.selector``)."""
DEFAULT_REGRESSOR = "driftline.SelectRegressor"
"""The online model inferred for a number label."""
MONOTONIC_SHARE = 0.95
"""Share of row-to-row steps that must go one way for a feature to count as monotonic."""
MONOTONIC_MIN_DISTINCT = 10
"""Distinct values a monotonic feature needs (fewer: a flag or a phase, not a clock)."""
DEFAULT_MARGIN = 0.1
DEFAULT_MAX_CATEGORIES = 50
DEFAULT_MAX_CLASSES = 20
_DIGITS = 4
_NAME_MAX = 200  # FeatureSpec.name's longest

# (primary metric, retrain candidates) per label kind: every candidate can learn the label
PRIMARY_METRIC = {"class": "accuracy", "number": "mae"}
CANDIDATES = {
    "class": ("logistic_regression", "hist_gradient_boosting", "random_forest"),
    "number": ("ridge", "hist_gradient_boosting", "random_forest"),
}


@dataclass
class _Seen:
    """What was observed of one feature."""

    first: int  # order of first appearance
    numbers: list[float] = field(default_factory=list)
    ints: int = 0
    non_finite: int = 0
    strings: Counter[str] = field(default_factory=Counter)
    bools: int = 0
    nulls: int = 0
    present: int = 0


@dataclass(frozen=True)
class Inference:
    """An inferred config, how many rows it saw, and what a person should check."""

    config: StreamConfig
    rows: int
    warnings: tuple[str, ...]


def infer_config(
    stream: str,
    rows: Iterable[tuple[dict[str, Any], Any]],
    *,
    margin: float = DEFAULT_MARGIN,
    max_categories: int = DEFAULT_MAX_CATEGORIES,
    max_classes: int = DEFAULT_MAX_CLASSES,
) -> Inference:
    """Propose a stream config (``version`` unset) from ``(features, label)`` rows."""
    if margin < 0:
        raise ValueError("margin must be >= 0")
    seen: dict[str, _Seen] = {}
    labels: list[Any] = []
    count = 0
    for features, label in rows:
        count += 1
        for name, value in features.items():
            s = seen.get(name)
            if s is None:
                s = seen[name] = _Seen(first=len(seen))
            s.present += 1
            _observe(s, value)
        if label is not None:
            labels.append(label)
    if count == 0:
        raise ValueError("no rows to infer from")
    warnings: list[str] = []
    specs = []
    for name, s in sorted(seen.items(), key=lambda item: item[1].first):
        problem = unusable_name(name)
        if problem is not None:
            warnings.append(
                f"column {s.first + 1} {problem}: left out of the spec (not a feature); "
                "give it a name in the header to use it as a feature, or drop it"
            )
            continue
        specs.append(_feature(name, s, count, margin, max_categories, warnings))
    label_spec = _label(labels, max_classes, warnings)
    model = ModelSpec.model_validate(
        {"pipeline": DEFAULT_CLASSIFIER if label_spec.kind == "class" else DEFAULT_REGRESSOR}
    )
    kept = {f.name for f in specs}
    monotonic = tuple(
        name
        for name, s in sorted(seen.items(), key=lambda item: item[1].first)
        if name in kept and _monotonic(s)
    )
    for name in monotonic:
        warnings.append(
            f"feature {name!r}: its values only move one way (a time stamp, counter or id?); "
            "left out of the data-drift tests (policy.drift.exclude_features)"
        )
    policy = Policy.model_validate(
        {
            "primary_metric": PRIMARY_METRIC[label_spec.kind],
            "retrain": {"candidates": list(CANDIDATES[label_spec.kind])},
            "drift": {"exclude_features": monotonic},
        }
    )
    config = StreamConfig(
        stream=stream,
        spec=Spec(features=tuple(specs), label=label_spec),
        model=model,
        policy=policy,
    )
    return Inference(config, count, tuple(warnings))


def _monotonic(s: _Seen) -> bool:
    """Whether a number feature's values go one way in row order (see the module doc)."""
    values = s.numbers
    if len(values) < 2 * MONOTONIC_MIN_DISTINCT or len(values) < s.present * 0.9:
        return False
    if len(set(values)) < MONOTONIC_MIN_DISTINCT:
        return False
    steps = len(values) - 1
    up = sum(1 for a, b in zip(values, values[1:], strict=False) if b >= a)
    down = sum(1 for a, b in zip(values, values[1:], strict=False) if b <= a)
    return max(up, down) >= MONOTONIC_SHARE * steps


def unusable_name(name: Any) -> str | None:
    """Why a column name cannot name a feature (None: it can).

    >>> unusable_name(""), unusable_name("age")
    ('has no name', None)
    """
    if not isinstance(name, str) or not name.strip():
        return "has no name"
    if len(name) > _NAME_MAX:
        return f"has a name longer than {_NAME_MAX} characters ({name[:20]!r}...)"
    return None


def _observe(s: _Seen, value: Any) -> None:
    if value is None:
        s.nulls += 1
    elif isinstance(value, bool):
        s.bools += 1
    elif isinstance(value, int | float):
        number = float(value)
        if math.isfinite(number):
            s.numbers.append(number)
            s.ints += isinstance(value, int)
        else:
            s.non_finite += 1
    elif isinstance(value, str):
        s.strings[value] += 1
    else:
        s.nulls += 1  # not a feature value (a list, an object): counted as missing


def _feature(
    name: str, s: _Seen, rows: int, margin: float, max_categories: int, warnings: list[str]
) -> FeatureSpec:
    nullable = s.nulls > 0 or s.present < rows
    kinds = {
        "number": len(s.numbers) + s.non_finite,
        "category": sum(s.strings.values()),
        "bool": s.bools,
    }
    total = sum(kinds.values())
    if total == 0:
        warnings.append(f"feature {name!r}: only missing values; typed as a nullable number")
        return FeatureSpec(name=name, type="number", nullable=True)
    kind = max(kinds, key=lambda k: kinds[k])
    others = {k: n for k, n in kinds.items() if k != kind and n}
    if others:
        warnings.append(
            f"feature {name!r}: typed {kind} ({kinds[kind]} values) but also saw "
            + ", ".join(f"{n} {k}" for k, n in others.items())
            + " value(s); those would be rejected as wrong_type"
        )
    if s.non_finite and kind == "number":
        warnings.append(f"feature {name!r}: {s.non_finite} NaN/infinite value(s) ignored")
    if kind == "bool":
        return FeatureSpec(name=name, type="bool", nullable=nullable)
    if kind == "category":
        if len(s.strings) > max_categories:
            warnings.append(
                f"feature {name!r}: {len(s.strings)} distinct strings (> {max_categories}); "
                "any string will pass (no closed set of categories); if it names the row, "
                "make it the id (--id-column) instead of a feature"
            )
            return FeatureSpec(name=name, type="category", nullable=nullable)
        return FeatureSpec(
            name=name, type="category", categories=tuple(sorted(s.strings)), nullable=nullable
        )
    if not s.numbers:
        return FeatureSpec(name=name, type="number", nullable=nullable)
    low, high = min(s.numbers), max(s.numbers)
    span = high - low
    pad = margin * span if span > 0 else margin * max(abs(low), 1.0)
    lower, upper = low - pad, high + pad
    if low >= 0 > lower:
        lower = 0.0  # no negative value was seen: keep the range non-negative
    return FeatureSpec(
        name=name,
        type="number",
        min=_round(lower, math.floor),
        max=_round(upper, math.ceil),
        nullable=nullable,
    )


def _round(value: float, direction: Any) -> float:
    """``value`` rounded outwards (``math.floor`` or ``math.ceil``) to a few digits."""
    if value == 0 or not math.isfinite(value):
        return value
    scale = 10 ** (_DIGITS - 1 - math.floor(math.log10(abs(value))))
    # round first, so that 3.2 * 1000 = 3200.0000000000005 does not ceil to 3201
    return float(direction(round(value * scale, 6)) / scale)


def _label(labels: list[Any], max_classes: int, warnings: list[str]) -> LabelSpec:
    if not labels:
        raise ValueError("no labels: every row's label is missing")
    kinds = Counter(_label_kind(v) for v in labels)
    kind = kinds.most_common(1)[0][0]
    if len(kinds) > 1:
        warnings.append(
            f"label: typed from its {kind} values; also saw "
            + ", ".join(f"{n} {k}" for k, n in kinds.items() if k != kind)
        )
    values = [v for v in labels if _label_kind(v) == kind]
    distinct = set(values)
    if kind == "bool":
        return LabelSpec(kind="class", classes=(False, True))
    if kind == "str" or (kind == "int" and len(distinct) <= max_classes):
        if len(distinct) < 2:
            raise ValueError(f"the label has a single value {values[0]!r}; need two classes")
        return LabelSpec(kind="class", classes=tuple(sorted(distinct)))
    if kind in ("int", "float"):
        return LabelSpec(kind="number")
    raise ValueError(f"cannot infer a label kind from values like {values[0]!r}")


def _label_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    return "other"
