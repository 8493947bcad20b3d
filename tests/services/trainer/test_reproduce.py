"""``reproduce`` rebuilds a trainer version from its lineage: same rows, metrics, hash; a
window holding rows that break the spec trains on the others and reproduces."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import pytest

from services.registry.client import Registry
from services.trainer.reproduce import NotReproducible, reproduce
from services.trainer.runner import Trainer
from services.trainer.window import Row
from tests.services.trainer.support import FakeReplay, config, data, drift, online_champion, rows


def test_reproduce_gives_the_same_rows_metrics_and_hash(
    registry: Registry, make_trainer: Callable[..., Trainer]
) -> None:
    cfg = config()
    pairs = data(3000, before=1500)
    online = online_champion(registry, cfg, pairs[:1500])
    replay = FakeReplay(rows("agr", pairs))
    result = make_trainer({"agr": cfg}, replay).handle(drift("agr", 2999, version=online))
    assert result.outcome == "promoted"
    versions = [v for v in registry.list_versions(model="agr") if v.kind == "batch"]

    for version in versions:
        report = reproduce(registry, model="agr", version=version.version, read=replay.read_ranges)
        assert report.same, [c for c in report.checks if not c.same]
        assert {c.name for c in report.checks} >= {
            "rows",
            "rows sha256",
            "accuracy",
            "artifact sha256",
        }

    with pytest.raises(NotReproducible, match="online"):
        reproduce(registry, model="agr", version=online, read=replay.read_ranges)


def test_reproduce_notices_different_data(
    registry: Registry, make_trainer: Callable[..., Trainer]
) -> None:
    cfg = config(retrain={"candidates": ["logistic_regression"]})
    pairs = data(2500, before=2500)
    replay = FakeReplay(rows("agr", pairs))
    result = make_trainer({"agr": cfg}, replay).handle(drift("agr", 2499))
    changed = FakeReplay(rows("agr", data(2500, before=2500, seed=11)))

    report = reproduce(
        registry, model="agr", version=result.winner_version or 0, read=changed.read_ranges
    )

    assert not report.same
    assert not next(c for c in report.checks if c.name == "rows sha256").same


def _broken(good: Row, **change: Any) -> Row:
    return dataclasses.replace(good, example_id=f"{good.example_id}-bad", **change)


def test_a_window_with_rows_breaking_the_spec_trains_on_the_others_and_reproduces(
    registry: Registry, make_trainer: Callable[..., Trainer]
) -> None:
    cfg = config(retrain={"candidates": ["logistic_regression"]})
    good = rows("agr", data(2600, before=2600))
    x = good[-1].features
    bad = [
        _broken(good[2100], features={**x, "salary": "12000"}),  # a string for a number
        _broken(good[2200], label=7),  # not one of the classes
        _broken(good[2300], features={**x, "extra": 1.0}),  # not in the spec
        _broken(good[2400], features={**x, "group": "medium"}),  # an unknown category
        _broken(good[2500], features={**x, "age": math.inf}),  # not finite
    ]
    # the bad rows sit inside the window, at the positions of good rows moved aside
    by_offset = {r.offset: r for r in good} | {r.offset: r for r in bad}
    moved = [dataclasses.replace(good[r.offset], offset=2600 + i) for i, r in enumerate(bad)]
    replay = FakeReplay(sorted([*by_offset.values(), *moved], key=lambda r: r.offset))
    trainer = make_trainer({"agr": cfg}, replay)

    result = trainer.handle(drift("agr", 2604))

    assert result.outcome == "promoted"
    (run,) = registry.list_runs(model="agr")
    assert run.window["rows"] == 2000  # the window is full of usable rows
    assert run.window["skipped"] == {
        "bad_label": 1,
        "non_finite": 1,
        "unexpected_feature": 1,
        "unknown_category": 1,
        "wrong_type": 1,
    }
    sample = trainer.metrics.metrics.registry.get_sample_value
    assert sample("driftline_trainer_skipped_rows_total", {"stream": "agr", "reason": "bad_label"})
    version = registry.get_version(model="agr", version=result.winner_version or 0)
    assert version is not None and version.lineage.example_count == 2000
    # reproduce leaves out the same rows, even from a reader that did not check the spec
    report = reproduce(registry, model="agr", version=version.version, read=replay.read_ranges)
    assert report.same, [c for c in report.checks if not c.same]
