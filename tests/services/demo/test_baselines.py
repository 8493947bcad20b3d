"""In-process baselines: prequential correctness on the same rows, rolling accuracy."""

from __future__ import annotations

from itertools import islice

import pytest

from schemas.streams import Spec
from services.demo.baselines import (
    BASELINES,
    OrdinalEncoder,
    rolling_accuracy,
    run_baseline,
    run_baselines,
)
from services.demo.stream import DemoStream
from services.ingest.sources import river_rows

SPEC = Spec.model_validate(
    {
        "features": [
            {"name": "x", "type": "number"},
            {"name": "c", "type": "category", "categories": ["a", "b"], "nullable": True},
            {"name": "f", "type": "bool"},
        ],
        "label": {"kind": "class", "classes": ["no", "yes"]},
    }
)


def test_rolling_accuracy_skips_unscored_examples() -> None:
    flags = [None, None, True, True, False, True]
    assert rolling_accuracy(flags, window=2, step=1) == [(4, 1.0), (5, 0.5), (6, 0.5)]
    assert rolling_accuracy([True] * 10, window=100, step=5) == []  # fewer than 50 scored
    with pytest.raises(ValueError, match="window and step"):
        rolling_accuracy(flags, window=0)


def test_ordinal_encoder_codes_categories_by_spec_order() -> None:
    enc = OrdinalEncoder(SPEC)
    assert enc.encode({"x": 1, "c": "b", "f": False}) == {"x": 1.0, "c": 1.0, "f": 0.0}
    assert enc.encode({"x": float("nan"), "c": "new", "f": True}) == {"c": 2.0, "f": 1.0}
    assert enc.encode({"c": "new"}) == {"c": 2.0}  # the same code the second time
    matrix = enc.matrix([{"x": 2.0, "c": None, "f": True}])
    assert matrix[0][0] == 2.0 and matrix[0][1] != matrix[0][1] and matrix[0][2] == 1.0


def test_every_baseline_scores_every_row_of_the_same_stream() -> None:
    stream = DemoStream.default(quick=True)
    rows = list(islice(stream.rows(), 700))
    results = run_baselines(rows, stream.config.spec, train_size=300)
    assert [r.key for r in results] == list(BASELINES)
    for result in results:
        assert len(result.correct) == len(rows)
        assert result.seconds > 0
        assert result.name == BASELINES[result.key]
        accuracy = result.accuracy()
        assert accuracy is not None and accuracy > 0.6, (result.key, accuracy)
    static = results[0]
    assert set(static.correct[:300]) == {None}
    assert None not in static.correct[300:]
    assert static.accuracy(0, 300) is None
    assert [x for x, _ in static.rolling(window=100, step=100)] == list(range(400, 701, 100))


def test_class_values_of_any_type_are_compared_exactly() -> None:
    rows = list(river_rows("river:Phishing"))  # bool labels
    from services.ingest.infer import infer_config

    spec = infer_config("phishing", rows).config.spec
    for key in ("static_hgb", "river_lr"):
        result = run_baseline(key, rows, spec, train_size=500)
        accuracy = result.accuracy()
        assert accuracy is not None and accuracy > 0.8, (key, accuracy)


def test_short_streams_and_unknown_baselines() -> None:
    rows = [({"x": float(i), "c": "ab"[i % 2], "f": bool(i % 3)}, "no") for i in range(10)]
    assert run_baseline("static_hgb", rows, SPEC).correct == (None,) * 10
    with pytest.raises(ValueError, match="unknown baseline"):
        run_baseline("nope", rows, SPEC)


def test_progress_is_reported() -> None:
    stream = DemoStream.default(quick=True)
    rows = list(islice(stream.rows(), 2100))
    seen: list[tuple[str, int]] = []
    run_baselines(
        rows,
        stream.config.spec,
        keys=("river_ddm", "static_hgb"),
        progress=lambda key, done: seen.append((key, done)),
    )
    assert seen == [
        ("river_ddm", 1000),
        ("river_ddm", 2000),
        ("river_ddm", 2100),
        ("static_hgb", 2100),
    ]
