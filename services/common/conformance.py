"""Does a valid example fit its stream's spec? The check every consumer of
``examples.valid`` makes before it learns, scores or trains on a record.

The validator is not the only writer a consumer can meet on ``examples.valid`` (any
principal with write access can produce there, and an older validator may have let a
record through), so a consumer never trusts the topic: a record that breaks the spec is
a dead letter, not an exception in a model's ``learn_one``.

:func:`nonconformance` returns ``None`` for a record that fits, else the reason code and
a detail a person can act on. It is the validator's judgement in miniature: types, the
closed sets of categories and classes, finiteness and ranges; it does not normalise.

>>> from datetime import datetime, timezone
>>> from schemas import LabelledExample
>>> from schemas.streams import Spec
>>> spec = Spec.model_validate({
...     "features": [{"name": "x", "type": "number", "min": 0, "max": 10}],
...     "label": {"kind": "class", "classes": [0, 1]}})
>>> t = datetime(2026, 1, 1, tzinfo=timezone.utc)
>>> ok = LabelledExample(stream="s", example_id="1", features={"x": 3.0}, label=1, event_time=t)
>>> nonconformance(ok, spec) is None
True
>>> bad = ok.model_copy(update={"label": 7})
>>> nonconformance(bad, spec)
(<ReasonCode.BAD_LABEL: 'bad_label'>, 'label 7 is not one of the classes [0, 1]')
>>> text = ok.model_copy(update={"features": {"x": "3"}})
>>> nonconformance(text, spec)[0].value
'wrong_type'
"""

from __future__ import annotations

import math
from typing import Any

from schemas import LabelledExample, ReasonCode
from schemas.streams import FeatureSpec, Spec

__all__ = ["nonconformance"]


def nonconformance(example: LabelledExample, spec: Spec) -> tuple[ReasonCode, str] | None:
    """The first way ``example`` breaks ``spec``, or ``None`` when it fits."""
    if _features_fit(example.features, spec):  # every consumer's usual case, quickly
        return _label(example.label, spec)
    return _first_problem(example, spec)


def _features_fit(features: dict[str, Any], spec: Spec) -> bool:
    """True only when every feature fits ``spec`` (the rules of :func:`_feature`); False
    also when in doubt, for :func:`_first_problem` to say why in full."""
    present = 0
    for rule in spec.features:
        value = features.get(rule.name)
        if value is None:
            if not rule.nullable:
                return False
            present += rule.name in features
            continue
        present += 1
        vtype = type(value)
        kind = rule.type
        if kind == "number":
            if vtype is float:
                if not value - value == 0.0:  # nan or infinite
                    return False
            elif vtype is not int or not -_EXACT <= value <= _EXACT:
                return False
            if (rule.min is not None and value < rule.min) or (
                rule.max is not None and value > rule.max
            ):
                return False
        elif kind == "category":
            if vtype is not str or (rule.categories is not None and value not in rule.categories):
                return False
        elif vtype is not bool:
            return False
    return present == len(features)  # no feature outside the spec


_EXACT = 2**53  # ints compared with a float bound exactly as float(value) is


def _first_problem(example: LabelledExample, spec: Spec) -> tuple[ReasonCode, str] | None:
    features = example.features
    names = {f.name for f in spec.features}
    unexpected = [name for name in features if name not in names]
    if unexpected:
        return ReasonCode.UNEXPECTED_FEATURE, f"feature(s) {unexpected[:8]} are not in the spec"
    for rule in spec.features:
        problem = _feature(rule, features.get(rule.name))
        if problem is not None:
            return problem
    return _label(example.label, spec)


def _feature(rule: FeatureSpec, value: Any) -> tuple[ReasonCode, str] | None:
    name = rule.name
    if value is None:
        if rule.nullable:
            return None
        return ReasonCode.MISSING_FEATURE, f"feature {name!r} is missing and not nullable"
    vtype = type(value)
    if rule.type == "number":
        if vtype is not float and vtype is not int:
            return ReasonCode.WRONG_TYPE, f"feature {name!r} is a number, got {_show(value)}"
        number = _finite(value)
        if number is None:
            return ReasonCode.NON_FINITE, f"feature {name!r} = {_show(value)} is not finite"
        if (rule.min is not None and number < rule.min) or (
            rule.max is not None and number > rule.max
        ):
            return (
                ReasonCode.OUT_OF_RANGE,
                f"feature {name!r} = {number:g} is outside [{rule.min}, {rule.max}]",
            )
        return None
    if rule.type == "category":
        if vtype is not str:
            return ReasonCode.WRONG_TYPE, f"feature {name!r} is a category, got {_show(value)}"
        if rule.categories is not None and value not in rule.categories:
            return ReasonCode.UNKNOWN_CATEGORY, f"feature {name!r} = {_show(value)} is unknown"
        return None
    if vtype is not bool:
        return ReasonCode.WRONG_TYPE, f"feature {name!r} is a bool, got {_show(value)}"
    return None


def _label(label: Any, spec: Spec) -> tuple[ReasonCode, str] | None:
    rule = spec.label
    if rule.kind == "class":
        classes = rule.classes or ()
        ltype = type(label)
        for cls in classes:
            ctype = type(cls)
            if ctype is ltype and cls == label:
                return None
            if ctype is int and ltype is float and label == cls:  # 1.0 is the class 1
                return None
        shown = "[" + ", ".join(_show(c) for c in classes[:8]) + "]"
        return ReasonCode.BAD_LABEL, f"label {_show(label)} is not one of the classes {shown}"
    if type(label) is not float and type(label) is not int:
        return ReasonCode.BAD_LABEL, f"the label is a number, got {_show(label)}"
    number = _finite(label)
    if number is None:
        return ReasonCode.NON_FINITE, f"label {_show(label)} is not finite"
    if (rule.min is not None and number < rule.min) or (rule.max is not None and number > rule.max):
        return ReasonCode.BAD_LABEL, f"label {number:g} is outside [{rule.min}, {rule.max}]"
    return None


def _finite(value: int | float) -> float | None:
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
