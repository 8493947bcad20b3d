"""The drift defaults ``spec infer`` writes, on the pure core over many seeds: a stationary
stream with a strong daily cycle retrains nothing, an abrupt concept drift is caught within
500 examples, and data drift is reported without retraining unless the policy asks."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from typing import Any

import pytest

from schemas.streams import DriftPolicy, FeatureSpec, StreamConfig
from services.ingest.infer import infer_config
from services.learner.core import StreamLearner
from services.learner.drift import DriftMonitor

DAY = 1440  # one example a minute
SEEDS = range(12)


def seasonal(seed: int, n: int) -> Iterator[tuple[dict[str, Any], bool]]:
    """Weather-like rows: temperature and humidity swing with the hour of the day, a time
    stamp and a counter only go up, and the label depends on the features the same way
    all the time (10 % label noise)."""
    rng = random.Random(seed)
    for t in range(n):
        phase = 2 * math.pi * (t % DAY) / DAY
        temperature = 15 + 10 * math.sin(phase) + rng.gauss(0, 2)
        humidity = 60 - 20 * math.sin(phase + 0.5) + rng.gauss(0, 5)
        label = temperature + 0.3 * humidity > 33
        if rng.random() < 0.1:
            label = not label
        x = {
            "timestamp": 1_700_000_000 + 60 * t,
            "reading": 10 * t + rng.randrange(3),
            "temperature": temperature,
            "humidity": humidity,
            "wind": abs(rng.gauss(3, 2)),
        }
        yield x, label


def fast(config: StreamConfig) -> StreamConfig:
    """The inferred config with a cheap online model (the policy is what is tested)."""
    body = config.model_dump(mode="json")
    body["model"] = {"pipeline": "preprocessing.StandardScaler | linear_model.LogisticRegression"}
    return StreamConfig.model_validate(body)


def inferred(seed: int, n: int) -> StreamConfig:
    return infer_config("weather", list(seasonal(seed, n))).config


def test_spec_infer_leaves_time_stamps_and_counters_out_of_drift_tests() -> None:
    result = infer_config("weather", list(seasonal(0, 3000)))
    assert result.config.policy.drift.exclude_features == ("timestamp", "reading")
    assert any("'timestamp'" in w and "exclude_features" in w for w in result.warnings)
    assert result.config.policy.drift.data_drift_retrains is False


@pytest.mark.parametrize(
    ("values", "monotonic"),
    [
        ([1000 - 3 * i for i in range(200)], True),  # a countdown
        ([i // 20 for i in range(400)], True),  # a day number: repeats, still one way
        ([i + (5 if i % 50 == 0 else 0) for i in range(400)], True),  # a few out of order
        ([math.sin(i / 30) for i in range(400)], False),  # a cycle
        ([random.Random(1).random() for _ in range(400)], False),
        ([float(i % 2) for i in range(400)], False),
    ],
)
def test_monotonic_features_are_recognised(values: list[float], monotonic: bool) -> None:
    rng = random.Random(2)
    rows = [({"v": v, "x": rng.random()}, rng.random() < 0.5) for v in values]
    excluded = infer_config("s", rows).config.policy.drift.exclude_features
    assert excluded == (("v",) if monotonic else ())


def test_a_seasonal_stationary_stream_triggers_no_retrain_on_any_seed() -> None:
    n = 4 * DAY
    reported = 0
    for seed in SEEDS:
        learner = StreamLearner(fast(inferred(seed, n)))
        for x, y in seasonal(seed + 100, n):
            outcome = learner.process(x, y)
            assert not [a for a in outcome.alarms if a.retrain], (seed, outcome.alarms)
            assert not outcome.retrain_due
            reported += sum(1 for a in outcome.alarms if a.kind == "data")
    # the cycle does move the inputs, and that is still reported
    assert reported > 0


def test_the_daily_cycle_would_retrain_when_data_drift_is_asked_to() -> None:
    config = fast(inferred(0, 4 * DAY))
    body = config.model_dump(mode="json")
    body["policy"]["drift"]["data_drift_retrains"] = True
    learner = StreamLearner(StreamConfig.model_validate(body))
    alarms = [a for x, y in seasonal(100, 4 * DAY) for a in learner.process(x, y).alarms]
    assert any(a.kind == "data" and a.retrain for a in alarms)


def switching(seed: int, n: int, at: int) -> Iterator[tuple[dict[str, Any], bool]]:
    """SEA-like rows whose concept flips at ``at``: the label's threshold moves."""
    rng = random.Random(seed)
    for t in range(n):
        x = {"a": rng.uniform(0, 10), "b": rng.uniform(0, 10), "c": rng.uniform(0, 10)}
        threshold = 8.0 if t < at else 13.0
        label = x["a"] + x["b"] > threshold
        if rng.random() < 0.05:
            label = not label
        yield x, label


def test_an_abrupt_concept_drift_is_caught_within_500_examples_on_every_seed() -> None:
    at = 3000
    for seed in SEEDS:
        config = fast(infer_config("sea", list(switching(seed, 2000, at=10**9))).config)
        learner = StreamLearner(config)
        retrains = [
            a.example_count
            for x, y in switching(seed + 100, 4000, at)
            for a in learner.process(x, y).alarms
            if a.retrain
        ]
        assert retrains, seed
        assert at < retrains[0] <= at + 500, (seed, retrains)


def test_a_reported_data_drift_does_not_silence_the_concept_detector() -> None:
    features = (FeatureSpec(name="a", type="number"),)
    monitor = DriftMonitor(DriftPolicy(cooldown=5000, data_window=200), features)
    rng = random.Random(3)
    alarms = []
    for i in range(6000):
        shift = 3.0 if i >= 1000 else 0.0  # the inputs move first ...
        error = float(rng.random() < (0.5 if i >= 3000 else 0.1))  # ... the concept later
        alarms += monitor.update({"a": rng.gauss(shift, 1.0)}, error)
    kinds = [(a.kind, a.retrain) for a in alarms]
    assert ("data", False) in kinds
    concept = [a for a in alarms if a.kind == "concept"]
    assert len(concept) == 1 and 3000 < concept[0].example_count <= 3500


def test_excluded_features_are_not_tested() -> None:
    features = (FeatureSpec(name="ts", type="number"), FeatureSpec(name="a", type="number"))
    policy = DriftPolicy(data_window=200, exclude_features=("ts",))
    monitor = DriftMonitor(policy, features)
    assert monitor.data is not None and monitor.data.numbers == ("a",)
    rng = random.Random(0)
    alarms = [a for i in range(3000) for a in monitor.update({"ts": i, "a": rng.random()}, 0.0)]
    assert alarms == []
    assert DriftMonitor(policy, features[:1]).data is None


def test_an_excluded_feature_must_be_in_the_spec() -> None:
    with pytest.raises(ValueError, match="'nope' is not a feature of the spec"):
        StreamConfig.model_validate(
            {
                "stream": "s",
                "spec": {
                    "features": [{"name": "x", "type": "number"}],
                    "label": {"kind": "class", "classes": [False, True]},
                },
                "policy": {"drift": {"exclude_features": ["nope"]}},
            }
        )
