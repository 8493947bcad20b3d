"""Spec inference from data."""

from __future__ import annotations

import math
from typing import Any

import pytest

from services.ingest.infer import infer_config


def feature(result: Any, name: str) -> Any:
    return next(f for f in result.config.spec.features if f.name == name)


def test_ranges_get_a_margin_and_stay_non_negative() -> None:
    rows = [({"age": a, "t": t}, i % 2) for i, (a, t) in enumerate([(20, -5.0), (60, 5.0)])]
    result = infer_config("s", rows, margin=0.1)
    assert (feature(result, "age").min, feature(result, "age").max) == (16.0, 64.0)
    assert (feature(result, "t").min, feature(result, "t").max) == (-6.0, 6.0)
    rows = [({"n": 1}, 0), ({"n": 3}, 1)]
    assert feature(infer_config("s", rows, margin=1.0), "n").min == 0.0  # not -1


def test_constant_feature_and_rounding() -> None:
    rows = [({"c": 5.0, "r": 0.123456789}, 0), ({"c": 5.0, "r": 0.223456789}, 1)]
    result = infer_config("s", rows)
    assert (feature(result, "c").min, feature(result, "c").max) == (4.5, 5.5)
    assert (feature(result, "r").min, feature(result, "r").max) == (0.1134, 0.2335)


def test_categories_nullability_and_majority_type() -> None:
    rows: list[Any] = [
        ({"city": "paris", "x": 1, "flag": True}, "a"),
        ({"city": "lyon", "x": "oops", "flag": None}, "b"),
        ({"city": "paris", "x": 3}, "a"),
        ({"city": "nice", "x": 2, "flag": False}, "b"),
    ]
    result = infer_config("s", rows)
    assert feature(result, "city").categories == ("lyon", "nice", "paris")
    assert feature(result, "x").type == "number" and not feature(result, "x").nullable
    assert feature(result, "flag").type == "bool" and feature(result, "flag").nullable
    assert any("'x'" in w and "wrong_type" in w for w in result.warnings)
    assert [f.name for f in result.config.spec.features] == ["city", "x", "flag"]


def test_many_strings_make_an_open_category() -> None:
    rows = [({"id": f"u{i}"}, i % 2) for i in range(30)]
    result = infer_config("s", rows, max_categories=10)
    assert feature(result, "id").categories is None
    assert any("any string will pass" in w for w in result.warnings)


def test_non_finite_values_are_ignored_for_ranges() -> None:
    rows = [({"x": 1.0}, 0), ({"x": math.nan}, 1), ({"x": 2.0}, 0)]
    result = infer_config("s", rows)
    assert feature(result, "x").max == 2.1
    assert any("NaN" in w for w in result.warnings)


@pytest.mark.parametrize(
    ("labels", "kind", "classes"),
    [
        ([True, False], "class", (False, True)),
        (["b", "a", "b"], "class", ("a", "b")),
        ([0, 1, 2, 1], "class", (0, 1, 2)),
        ([0.5, 1.5, 2.25], "number", None),
        (list(range(50)), "number", None),
    ],
)
def test_label_kind(labels: list[Any], kind: str, classes: Any) -> None:
    result = infer_config("s", [({"x": 1.0}, y) for y in labels])
    assert result.config.spec.label.kind == kind
    assert result.config.spec.label.classes == classes
    estimator = result.config.model.pipeline[-1].estimator
    assert estimator == (
        "driftline.SelectClassifier" if kind == "class" else "driftline.SelectRegressor"
    )


@pytest.mark.parametrize(
    ("rows", "error"),
    [([], "no rows"), ([({"x": 1}, None)], "no labels"), ([({"x": 1}, "a")], "single value")],
)
def test_refuses(rows: list[Any], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        infer_config("s", rows)
