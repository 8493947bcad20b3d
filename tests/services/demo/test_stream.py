"""The demo's streams: the default drifting stream, its config, files and datasets."""

from __future__ import annotations

import json
from itertools import islice
from pathlib import Path

import pytest
import yaml

from schemas import StreamConfig
from services.common.errors import ConfigError
from services.demo.baselines import BaselineResult, run_baseline
from services.demo.stream import (
    DemoStream,
    DriftPoint,
    config_to_yaml,
    load_config,
    load_stream,
)
from services.learner.pipeline import build_pipeline


@pytest.fixture(scope="module")
def quick() -> DemoStream:
    return DemoStream.default(quick=True)


def test_default_is_deterministic() -> None:
    a = list(islice(DemoStream.default(quick=True).rows(), 500))
    b = list(islice(DemoStream.default(quick=True).rows(), 500))
    other = list(islice(DemoStream.default(quick=True, seed=7).rows(), 500))
    assert a == b
    assert a != other


def test_drift_points_full_and_quick_are_proportional(quick: DemoStream) -> None:
    full = DemoStream.default()
    assert full.size == 30_000
    assert full.drifts == (DriftPoint(10_000, 1, "abrupt"), DriftPoint(20_000, 3_000, "gradual"))
    assert quick.size == 9_000
    assert [d.kind for d in quick.drifts] == ["abrupt", "gradual"]
    for d_full, d_quick in zip(full.drifts, quick.drifts, strict=True):
        assert d_full.position / full.size == pytest.approx(d_quick.position / quick.size)
        if d_full.kind == "gradual":
            assert d_full.width / full.size == pytest.approx(d_quick.width / quick.size)
    assert full.name != quick.name


def test_rows_have_ids_and_match_the_config(quick: DemoStream) -> None:
    ids = list(quick.example_ids())
    assert ids[:3] == ["0", "1", "2"] and len(ids) == len(set(ids)) == quick.size
    spec = quick.config.spec
    labels = set()
    for x, y in quick.rows():
        assert set(x) == {f.name for f in spec.features}
        labels.add(y)
        for f in spec.features:
            value = x[f.name]
            if f.type == "number":
                assert isinstance(value, float)
                assert f.min is not None and f.max is not None
                assert f.min <= value <= f.max, (f.name, value)
            else:
                assert f.categories is not None and value in f.categories, (f.name, value)
    assert labels == set(spec.label.classes or ())


def test_config_round_trips_through_yaml_and_builds_the_learner_pipeline(
    quick: DemoStream, tmp_path: Path
) -> None:
    text = quick.config_yaml()
    again = StreamConfig.model_validate(yaml.safe_load(text))
    assert again.config_sha256() == quick.config.config_sha256()
    path = tmp_path / "s.yaml"
    path.write_text(text, encoding="utf-8")
    assert load_config(path).config_sha256() == quick.config.config_sha256()
    policy = quick.config.policy
    assert policy.drift.detector == "ADWIN" and policy.drift.cooldown > 0
    assert policy.promotion == "direct" and policy.segment_feature == "elevel"
    assert policy.retrain.candidates and policy.retrain.budget_s > 0
    assert policy.max_gap > 0
    model = build_pipeline(quick.config.model, quick.config.spec)
    for x, y in islice(quick.rows(), 200):
        model.learn_one(x, y)
    assert model.predict_one(next(quick.rows())[0]) in (0, 1)


def test_examples_are_labelled_example_events(quick: DemoStream) -> None:
    events = list(islice(quick.examples(), 3))
    assert [e.example_id for e in events] == ["0", "1", "2"]
    assert {e.stream for e in events} == {quick.name}
    first_x, first_y = next(quick.rows())
    assert events[0].features == first_x and events[0].label == first_y


def _after(result: BaselineResult, start: int, end: int | None = None) -> float:
    value = result.accuracy(start, end)
    assert value is not None
    return value


def test_a_static_model_fails_after_each_drift_while_an_adaptive_one_recovers(
    quick: DemoStream,
) -> None:
    rows = list(quick.rows())
    abrupt, gradual = quick.drifts
    static = run_baseline("static_hgb", rows, quick.config.spec)
    adaptive = run_baseline("river_ddm", rows, quick.config.spec)
    before = _after(static, 0, abrupt.start)
    assert before > 0.85
    assert _after(static, abrupt.end, gradual.start) < before - 0.3
    assert _after(static, gradual.end) < before - 0.4
    # the adaptive model learns each new concept: clearly above the static one at the end
    # of the second concept and far above it at the end of the stream
    end_of_second = (gradual.start - 1000, gradual.start)
    assert _after(adaptive, *end_of_second) > _after(static, *end_of_second) + 0.1
    assert _after(adaptive, quick.size - 1000) > _after(static, quick.size - 1000) + 0.3


def test_a_csv_file_with_its_config(quick: DemoStream, tmp_path: Path) -> None:
    data = tmp_path / "loans.csv"
    lines = ["example_id,salary,age,label", "a1,100,30,1", "a2,200,40", "a3,300,50,0"]
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    config = tmp_path / "loans.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "stream": "loans",
                "version": 3,
                "spec": {
                    "features": [
                        {"name": "salary", "type": "number"},
                        {"name": "age", "type": "number"},
                    ],
                    "label": {"kind": "class", "classes": [0, 1]},
                },
            }
        ),
        encoding="utf-8",
    )
    stream = load_stream(str(data), config)
    assert stream.name == "loans" and stream.size == 2 and stream.drifts == ()
    assert list(stream.example_ids()) == ["a1", "a3"]
    assert list(stream.rows()) == [({"salary": 100, "age": 30}, 1), ({"salary": 300, "age": 50}, 0)]
    assert [s.line for s in stream.skipped] == [3]


def test_a_jsonl_file_and_the_errors(tmp_path: Path) -> None:
    data = tmp_path / "s.jsonl"
    data.write_text(
        "\n".join(json.dumps({"x": i / 10, "label": i % 2 == 0}) for i in range(5)) + "\n",
        encoding="utf-8",
    )
    config = tmp_path / "s.yaml"
    config.write_text(
        config_to_yaml(
            StreamConfig.model_validate(
                {
                    "stream": "s",
                    "spec": {
                        "features": [{"name": "x", "type": "number"}],
                        "label": {"kind": "class", "classes": [False, True]},
                    },
                }
            )
        ),
        encoding="utf-8",
    )
    stream = load_stream(str(data), config)
    assert stream.size == 5 and next(stream.rows()) == ({"x": 0.0}, True)
    inferred = load_stream(str(data), drift_at="3")  # no config: inferred, as spec infer does
    assert inferred.config.spec.label.classes == (False, True)
    assert [d.position for d in inferred.drifts] == [3]
    with pytest.raises(ValueError, match="past the stream's end"):
        load_stream(str(data), drift_at="5")
    with pytest.raises(ValueError, match="expected N"):
        load_stream(str(data), drift_at="x")
    with pytest.raises(ValueError, match="goes with --dataset"):
        load_stream(None, drift_at="3")
    with pytest.raises(ValueError, match="goes with --dataset"):
        load_stream(None, config)
    bad = tmp_path / "bad.yaml"
    bad.write_text("stream: s\nspec: {features: []}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not a valid stream config"):
        load_stream(str(data), bad)


def test_a_real_world_dataset_shipped_offline() -> None:
    stream = load_stream("river:Phishing")
    assert stream.name == "phishing" and stream.size == 1250 and stream.drifts == ()
    assert stream.config.spec.label.classes == (False, True)
    assert stream.config.policy.drift.detector == "ADWIN"
    x, _ = next(stream.rows())
    assert set(x) == {f.name for f in stream.config.spec.features}
    build_pipeline(stream.config.model, stream.config.spec)


def test_every_offline_river_dataset_is_a_demo_stream() -> None:
    """Found in the installed River, not listed: each one loads, gets a config that fits
    its label, and its rows are what the events carry (plain numbers, no datetimes)."""
    from services.ingest.datasets import offline_datasets

    names = offline_datasets()
    assert {"Bananas", "Phishing", "ImageSegments", "TrumpApproval", "ChickWeights"} <= set(names)
    for name in names:
        stream = load_stream(f"river:{name}")
        x, y = next(stream.rows())
        assert all(v is None or isinstance(v, int | float | str | bool) for v in x.values()), name
        kind = stream.config.spec.label.kind
        assert stream.config.policy.primary_metric == ("accuracy" if kind == "class" else "mae")
        assert next(stream.examples()).label == y
