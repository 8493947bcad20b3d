"""``reproduce`` rebuilds a trainer version from its lineage: same rows, metrics, hash."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from services.registry.client import Registry
from services.trainer.reproduce import NotReproducible, reproduce
from services.trainer.runner import Trainer
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
