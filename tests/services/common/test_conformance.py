"""The quick path of nonconformance and of the feature encoder gives the full rule's
answers on every kind of value (the full rule is the reference)."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime
from typing import Any

import pytest

from schemas import LabelledExample
from schemas.streams import Spec
from services.common.conformance import _first_problem, nonconformance
from services.common.river_features import FeatureEncoder

SPEC = Spec.model_validate(
    {
        "features": [
            {"name": "x", "type": "number", "min": -5, "max": 5},
            {"name": "y", "type": "number", "nullable": True},
            {"name": "z", "type": "number", "min": 0.5},
            {"name": "c", "type": "category", "categories": ["a", "b"]},
            {"name": "d", "type": "category", "nullable": True},
            {"name": "f", "type": "bool"},
        ],
        "label": {"kind": "class", "classes": [0, 1]},
    }
)
ODD: tuple[Any, ...] = (
    None,
    0,
    1,
    -6,
    7,
    2**53,
    2**53 + 1,
    -(2**60),
    10**400,
    0.5,
    -5.0,
    5.0,
    5.000001,
    float("nan"),
    float("inf"),
    -float("inf"),
    1e308,
    True,
    False,
    "a",
    "b",
    "c",
    "",
    [1.0],
    {"a": 1},
)


def _random_features(rng: random.Random) -> dict[str, Any]:
    features: dict[str, Any] = {
        "x": rng.uniform(-5, 5),
        "y": rng.choice([None, rng.gauss(0, 1)]),
        "z": rng.uniform(0.5, 3),
        "c": rng.choice(["a", "b"]),
        "d": rng.choice([None, "q", "r"]),
        "f": rng.random() < 0.5,
    }
    for _ in range(rng.choice([0, 0, 1, 2])):  # one or two odd values
        features[rng.choice([*features, "extra"])] = rng.choice(ODD)
    if rng.random() < 0.1:
        del features[rng.choice(list(features))]
    return features


def test_the_quick_path_answers_as_the_full_rule() -> None:
    rng = random.Random(3)
    t = datetime(2026, 1, 1, tzinfo=UTC)
    fits = 0
    for i in range(20_000):
        label = rng.choice([0, 1, 1.0, True, 2, "1"])
        example = LabelledExample.model_construct(
            stream="s", example_id=str(i), features=_random_features(rng), label=label, event_time=t
        )
        got = nonconformance(example, SPEC)
        assert got == _first_problem(example, SPEC), example.features
        fits += got is None
    assert 2_000 < fits < 18_000  # both ways were taken


@pytest.mark.parametrize("value", ODD)
def test_the_encoder_keeps_its_rule_for_every_kind_of_value(value: Any) -> None:
    encoder = FeatureEncoder(numbers=("n",), bools=("b",), categories=("c",))
    if type(value) is int and abs(value) > 10**308:  # as ever; nonconformance refuses it first
        with pytest.raises(OverflowError):
            encoder.transform_one({"n": value})
        return
    got = encoder.transform_one({"n": value, "b": value, "c": value})
    want: dict[str, Any] = {}
    if isinstance(value, int | float) and math.isfinite(value):
        want["n"] = float(value)
    if isinstance(value, int | float):
        want["b"] = 1.0 if value else 0.0
    if value is not None:
        want["c"] = str(value)
    assert got == want
    assert [type(v) for v in got.values()] == [type(v) for v in want.values()]
