"""Shared pieces of the trainer's unit tests: a stream config, real data, a fake replay."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from river import compose, linear_model, preprocessing
from river.datasets import synth

from schemas import Lineage, StreamConfig
from schemas.drift import DriftDetected
from schemas.streams import Spec
from services.common.predictor import Predictor
from services.registry.client import Registry
from services.trainer.replay import Bounds, ReplayStats
from services.trainer.window import Row, conforming
from tests.streams import AGRAWAL_NUMBERS, agrawal_stream, segment_features

T0 = datetime(2026, 1, 1, tzinfo=UTC)
NUMBERS = AGRAWAL_NUMBERS


def config(stream: str = "agr", **policy: Any) -> StreamConfig:
    """A published config: Agrawal numbers plus a category segment ``group``."""
    # "last": most runs here are about something else than which rows a drift trains on
    retrain = {"mode": "last", "window": 2000, "min_size": 500, "budget_s": 1, "seed": 7}
    retrain.update(policy.pop("retrain", {}))
    return agrawal_stream(
        stream,
        version=1,
        segmented=True,
        policy={
            "segment_feature": "group",
            "max_gap": 1.0,
            "drift": {"cooldown": 1000},
            "retrain": {
                "candidates": ["logistic_regression", "hist_gradient_boosting"],
                **retrain,
            },
            **policy,
        },
    )


def data(n: int, *, before: int, seed: int = 3) -> list[tuple[dict[str, Any], int]]:
    """``before`` examples of Agrawal function 0, then an abrupt switch to function 2."""
    old = synth.Agrawal(classification_function=0, seed=seed)
    new = synth.Agrawal(classification_function=2, seed=seed + 1)
    first = [(segment_features(x), int(y)) for x, y in itertools.islice(old, before)]
    return first + [(segment_features(x), int(y)) for x, y in itertools.islice(new, n - before)]


def rows(stream: str, pairs: Sequence[tuple[dict[str, Any], int]], partition: int = 0) -> list[Row]:
    return [
        Row(partition, i, f"{stream}-{i}", x, y, T0 + timedelta(seconds=i))
        for i, (x, y) in enumerate(pairs)
    ]


class FakeReplay:
    """The valid topic as a list of rows (one partition per row's ``partition``)."""

    topic = "valid"

    def __init__(self, rows: Sequence[Row]) -> None:
        self.rows = list(rows)
        self.reads = 0

    def bounds(self) -> Bounds:
        parts = {r.partition for r in self.rows}
        end = {p: 1 + max(r.offset for r in self.rows if r.partition == p) for p in parts}
        return Bounds({p: 0 for p in parts}, end)

    def read_back(
        self,
        stream: str,
        limits: Bounds,
        *,
        first_step: int,
        enough: Callable[[Sequence[Row], bool], bool],
        stats: ReplayStats,
        spec: Spec | None = None,
    ) -> list[Row]:
        """As the Kafka replay: rows breaking ``spec`` are left out and counted."""
        self.reads += 1
        step = first_step
        while True:
            lo = {p: max(limits.begin[p], e - step) for p, e in limits.end.items()}
            got = [
                r
                for r in self.rows
                if lo.get(r.partition, 0) <= r.offset < limits.end.get(r.partition, 0)
                and r.example_id.startswith(stream)
            ]
            exhausted = all(lo[p] <= limits.begin[p] for p in lo)
            skipped = []
            if spec is not None:
                got, skipped = conforming(got, spec)
            if enough(got, exhausted):
                stats.rows += len(got)
                for skip in skipped:
                    stats.skipped[skip.reason.value] += 1
                return got
            step *= 2

    def read_ranges(self, stream: str, ranges: Sequence[Any]) -> list[Row]:
        return [
            r
            for r in self.rows
            for rg in ranges
            if rg.partition == r.partition and rg.start <= r.offset < rg.end
        ]


def online_champion(
    registry: Registry, cfg: StreamConfig, pairs: Sequence[tuple[dict[str, Any], int]]
) -> int:
    """Register an online River model trained on ``pairs`` and make it the champion."""
    from schemas import AliasReason

    model = compose.Pipeline(
        compose.Select(*NUMBERS), preprocessing.StandardScaler(), linear_model.LogisticRegression()
    )
    for x, y in pairs:
        model.learn_one(dict(x), y)
    predictor = Predictor.river(model, spec=cfg.spec, spec_sha256=cfg.spec_sha256())
    version = registry.register_version(
        model=cfg.stream,
        kind="online",
        predictor=predictor,
        lineage=Lineage(
            event_time_start=T0,
            event_time_end=T0 + timedelta(seconds=len(pairs) - 1),
            example_count=len(pairs),
        ),
    )
    registry.move_alias(
        model=cfg.stream,
        alias="champion",
        to_version=version.version,
        expect=None,
        reason=AliasReason.COLD_START,
        actor="learner",
    )
    return version.version


def drift(
    stream: str, count: int, *, version: int | None = None, seconds: int = 0
) -> DriftDetected:
    return DriftDetected(
        stream=stream,
        kind="concept",
        detector="ADWIN",
        topic="valid",
        partition=0,
        offset=count,
        event_time=T0 + timedelta(seconds=seconds or count),
        example_count=count,
        model_version=version,
    )
