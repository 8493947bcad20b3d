"""The validator's metrics stay small at 1,000 streams, and every count stays in them."""

from __future__ import annotations

from collections import Counter

import pytest
from prometheus_client.parser import text_string_to_metric_families

from services.common.errors import ConfigError
from services.common.metrics import OTHER, Busiest
from services.validator.metrics import ALL_FEATURES, ValidatorMetrics
from services.validator.rules import NO_STREAM, QualityStats
from services.validator.settings import ValidatorSettings

FEATURES = ("x0", "x1", "x2")


def metrics(**env: str) -> ValidatorMetrics:
    names = {k: f"DRIFTLINE_VALIDATOR_{k.upper()}" for k in env}
    return ValidatorMetrics(
        settings=ValidatorSettings.load(env={names[k]: v for k, v in env.items()})
    )


def stats_of(streams: dict[str, int]) -> QualityStats:
    """Each stream's ``n`` valid examples and one rejected, with three features."""
    stats = QualityStats()
    for stream, n in streams.items():
        stats.outcomes[(stream, "valid")] += n
        stats.outcomes[(stream, "rejected")] += 1
        stats.rejected[(stream, "out_of_range")] += 1
        for feature in FEATURES:
            stats.values[(stream, feature)] += n + 1
            stats.missing[(stream, feature)] += 1
            stats.out_of_range[(stream, feature)] += 1
    return stats


def samples(m: ValidatorMetrics) -> list[tuple[str, dict[str, str], float]]:
    text = m.metrics.render().decode()
    return [
        (s.name, s.labels, s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
    ]


def series(m: ValidatorMetrics, name: str) -> dict[tuple[str, ...], float]:
    return {
        tuple(labels[k] for k in sorted(labels)): value
        for n, labels, value in samples(m)
        if n == name
    }


THOUSAND = {f"s{i:04d}": 10 + i for i in range(1000)}


@pytest.mark.parametrize(
    ("env", "most_series", "most_bytes"),
    [
        ({}, 1_000, 80_000),  # the defaults: 100 streams, per-feature series for 10
        ({"feature_metrics": "none"}, 1_000, 80_000),
        ({"metrics_streams": "20", "feature_metrics": "top-5"}, 250, 20_000),
    ],
)
def test_a_scrape_at_1000_streams_stays_small(
    env: dict[str, str], most_series: int, most_bytes: int
) -> None:
    unbounded = metrics(metrics_streams="0", feature_metrics="all")  # as before issue 17
    bounded = metrics(**env)
    for m in (unbounded, bounded):
        m.set_spec_versions(dict.fromkeys(THOUSAND, 1))
        m.observe(stats_of(THOUSAND))
    before, after = samples(unbounded), samples(bounded)
    assert len(before) > 12_000 and len(unbounded.metrics.render()) > 900_000
    assert len(after) < most_series and len(bounded.metrics.render()) < most_bytes
    # every count is still there, summed under (other) and (all)
    for name in (
        "driftline_validator_examples_total",
        "driftline_validator_rejected_total",
        "driftline_validator_feature_values_total",
        "driftline_validator_feature_missing_total",
        "driftline_validator_feature_out_of_range_total",
    ):
        assert sum(series(bounded, name).values()) == sum(series(unbounded, name).values())
    assert series(bounded, "driftline_validator_streams") == {(): 1000.0}


def test_the_busiest_streams_have_their_own_series() -> None:
    m = metrics(metrics_streams="100", feature_metrics="top-10")
    m.set_spec_versions(dict.fromkeys(THOUSAND, 3))
    m.observe(stats_of(THOUSAND))
    examples = series(m, "driftline_validator_examples_total")
    own = {stream for _outcome, stream in examples} - {OTHER}
    assert own == {f"s{i:04d}" for i in range(900, 1000)}  # the 100 busiest
    featured = {
        stream
        for _feature, stream in series(m, "driftline_validator_feature_values_total")
        if _feature != ALL_FEATURES
    }
    assert featured == {f"s{i:04d}" for i in range(990, 1000)}
    assert set(series(m, "driftline_validator_spec_version")) == {(s,) for s in own}
    assert examples[("valid", OTHER)] == sum(10 + i for i in range(900))


def test_a_stream_that_becomes_busier_takes_a_place_and_the_one_it_replaces_goes() -> None:
    m = metrics(metrics_streams="2", feature_metrics="top-1")
    m.set_spec_versions({"a": 1, "b": 1, "c": 1})
    m.observe(stats_of({"a": 100, "b": 50, "c": 60}))  # c waits: not twice as busy as b
    assert {s for _, s in series(m, "driftline_validator_examples_total")} == {"a", "b", OTHER}
    m.observe(stats_of({"c": 500}))
    examples = series(m, "driftline_validator_examples_total")
    assert {s for _, s in examples} == {"a", "c", OTHER}
    assert examples[("valid", "c")] == 500 and examples[("valid", OTHER)] == 60
    features = series(m, "driftline_validator_feature_values_total")
    assert {s for f, s in features if f != ALL_FEATURES} == {"c"}  # per-feature moved to c
    assert not {f for f, s in features if s == "a"}  # a's per-feature series are gone
    m.observe(stats_of({"a": 1}))
    features = series(m, "driftline_validator_feature_values_total")
    assert {f for f, s in features if s == "a"} == {ALL_FEATURES}  # and it counts as a whole
    assert set(series(m, "driftline_validator_spec_version")) == {("a",), ("c",)}
    m.set_spec_versions({"a": 2})  # c deleted: its series go, the version follows
    assert {s for _, s in series(m, "driftline_validator_examples_total")} == {"a", OTHER}
    assert series(m, "driftline_validator_spec_version") == {("a",): 2.0}


def test_unknown_streams_always_have_their_own_series() -> None:
    m = metrics(metrics_streams="1")
    m.observe(stats_of({"a": 5, NO_STREAM: 1}))
    streams = {s for _, s in series(m, "driftline_validator_examples_total")}
    assert streams == {"a", NO_STREAM}


def test_feature_metrics_all_and_none() -> None:
    every = metrics(feature_metrics="all")
    every.observe(stats_of({"a": 1, "b": 2}))
    assert Counter(s for _, s in series(every, "driftline_validator_feature_missing_total")) == {
        "a": 3,
        "b": 3,
    }
    none = metrics(feature_metrics="none")
    none.observe(stats_of({"a": 1, "b": 2}))
    assert series(none, "driftline_validator_feature_missing_total") == {
        (ALL_FEATURES, "a"): 3.0,
        (ALL_FEATURES, "b"): 3.0,
    }


@pytest.mark.parametrize("value", ["some", "top-0", "top-", "ALL"])
def test_feature_metrics_setting_is_checked(value: str) -> None:
    with pytest.raises(ConfigError, match="DRIFTLINE_VALIDATOR_FEATURE_METRICS"):
        ValidatorSettings.load(env={"DRIFTLINE_VALIDATOR_FEATURE_METRICS": value})


def test_busiest_none_selects_everything_and_zero_nothing() -> None:
    every, none = Busiest(None), Busiest(0)
    for b in (every, none):
        assert b.update({"a": 1, "b": 0}) == []
    assert every.selected == {"a", "b"} and none.selected == set()
    assert none.label("a") == OTHER
