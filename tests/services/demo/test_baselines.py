"""In-process baselines: prequential correctness on the same rows, rolling accuracy."""

from __future__ import annotations

from itertools import islice
from typing import Any

import pytest

from schemas.streams import Spec
from services.demo.baselines import (
    BASELINES,
    NUMBER_BASELINES,
    OrdinalEncoder,
    baselines_for,
    river_model,
    rolling_accuracy,
    run_baseline,
    run_baselines,
)
from services.demo.stream import DemoStream
from services.ingest.datasets import river_rows

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
        assert result.name == BASELINES[result.key].format(n=300)
        accuracy = result.accuracy()
        floor = 0.5 if result.key == "majority" else 0.6
        assert accuracy is not None and accuracy > floor, (result.key, accuracy)
    static = next(r for r in results if r.key == "static_hgb")
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


def spec_of(rows: list[tuple[dict[str, Any], Any]]) -> Spec:
    from services.ingest.infer import infer_config

    return infer_config("s", rows).config.spec


@pytest.mark.parametrize(
    ("dataset", "limit", "metric"),
    [
        ("river:Phishing", 400, "accuracy"),  # two classes (bool)
        ("river:ImageSegments", 400, "accuracy"),  # seven classes (str)
        ("river:TrumpApproval", 400, "mae"),  # a number
    ],
)
def test_each_river_baseline_is_progressive_val_score_on_the_same_rows(
    dataset: str, limit: int, metric: str
) -> None:
    """The per-row predictions of every River baseline, scored by River's own metric, give
    exactly what ``river.evaluate.progressive_val_score`` gives for the same model."""
    from river import evaluate, metrics

    rows = list(islice(river_rows(dataset), limit))
    spec = spec_of(rows)
    keys = [k for k in baselines_for(spec) if k != "static_hgb"]
    assert len(keys) == (5 if metric == "accuracy" else 4)
    for key in keys:
        result = run_baseline(key, rows, spec)
        assert result.metric == metric
        ours = metrics.Accuracy() if metric == "accuracy" else metrics.MAE()
        for (_, y), predicted in zip(rows, result.predictions, strict=True):
            if predicted is not None:
                ours.update(y, predicted)
        reference = metrics.Accuracy() if metric == "accuracy" else metrics.MAE()
        evaluate.progressive_val_score(dataset=rows, model=river_model(key, spec), metric=reference)
        assert ours.get() == reference.get(), key
        assert result.value() == pytest.approx(reference.get()), key


def test_number_labels_get_regression_baselines() -> None:
    rows = list(islice(river_rows("river:TrumpApproval"), 600))
    spec = spec_of(rows)
    results = run_baselines(rows, spec)
    assert [r.key for r in results] == list(NUMBER_BASELINES)
    mean = results[0].value()
    assert mean is not None
    for result in results:
        assert result.metric == "mae" and len(result.scores) == len(rows)
        value = result.value()
        assert value is not None and value >= 0.0
    static = next(r for r in results if r.key == "static_hgb")
    assert static.scores[:100] == (None,) * 100 and None not in static.scores[120:]
    assert all(isinstance(p, float) for p in static.predictions[120:])
