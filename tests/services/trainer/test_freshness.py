"""Retrains that are fresh when they serve: post-drift windows by default, the newest rows at
the run's start, scheduled runs that never overtake a drift, a winner compared again with a
champion that moved, a candidate that must beat the online model (scored as fresh as
serving follows it) too, and a winner that moves as soon as it is fitted."""

from __future__ import annotations

import concurrent.futures as cf
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from river import compose, linear_model, preprocessing

from schemas import AliasReason, Lineage, OffsetRange, StreamConfig
from schemas.drift import RetrainRequested
from schemas.streams import RetrainPolicy
from services.common.predictor import Predictor
from services.registry.client import Registry
from services.trainer import gate
from services.trainer.runner import Trainer
from tests.services.trainer.support import (
    NUMBERS,
    T0,
    FakeReplay,
    config,
    data,
    drift,
    rows,
)

N, BEFORE = 3000, 1500


class Constant:
    """A River-like model that always predicts one class (learns nothing)."""

    def __init__(self, value: int) -> None:
        self.value = value

    def learn_one(self, x: dict[str, Any], y: Any) -> None:
        pass

    def predict_one(self, x: dict[str, Any]) -> int:
        return self.value

    def predict_proba_one(self, x: dict[str, Any]) -> dict[int, float]:
        return {self.value: 1.0}


class Lookup(Constant):
    """A River-like model that knows every label of the stream (nothing can beat it)."""

    def __init__(self, pairs: list[tuple[dict[str, Any], int]]) -> None:
        super().__init__(0)
        self.known = {tuple(sorted(x.items())): y for x, y in pairs}

    def predict_one(self, x: dict[str, Any]) -> int:
        return self.known.get(tuple(sorted(x.items())), 0)


def register(
    registry: Registry, cfg: StreamConfig, model: Any, *, kind: str, end: int = BEFORE
) -> int:
    predictor = Predictor.river(model, spec=cfg.spec, spec_sha256=cfg.spec_sha256())
    version = registry.register_version(
        model=cfg.stream,
        kind=kind,
        predictor=predictor,
        lineage=Lineage(
            event_time_start=T0,
            event_time_end=T0 + timedelta(seconds=end - 1),
            example_count=end,
        ),
    )
    return version.version


def crown(registry: Registry, stream: str, version: int, alias: str = "champion") -> None:
    registry.move_alias(
        model=stream,
        alias=alias,
        to_version=version,
        expect=registry.get_alias(model=stream, alias=alias),
        reason=AliasReason.MANUAL,
        actor="test",
    )


def test_a_drift_run_trains_on_post_drift_rows_by_default(
    registry: Registry, make_trainer: Callable[..., Trainer]
) -> None:
    assert RetrainPolicy().mode == "since_drift"
    pairs = data(N, before=BEFORE)
    cfg = config(retrain={"mode": RetrainPolicy().mode, "window": 1000})
    crown(registry, "agr", register(registry, cfg, Constant(0), kind="batch"))
    trainer = make_trainer({"agr": cfg}, FakeReplay(rows("agr", pairs)))
    # the drift was detected at BEFORE; the run starts when the topic holds N rows
    result = trainer.handle(drift("agr", BEFORE))
    (run,) = registry.list_runs(model="agr")
    (rng,) = run.window["ranges"]
    # the newest rows at the run's start, all after the drift, at most `window` of them
    assert rng["end"] == N
    assert rng["start"] >= BEFORE and rng["end"] - rng["start"] == 1000
    assert result.outcome == "promoted"


def scheduled(by: str = "learner") -> RetrainRequested:
    return RetrainRequested(stream="agr", window=1000, requested_by=by, reason="scheduled")


def test_a_scheduled_run_never_overtakes_a_newer_drift(
    registry: Registry, make_trainer: Callable[..., Trainer]
) -> None:
    pairs = data(N, before=N)  # one concept: the scheduled run would win
    cfg = config()
    champion = register(registry, cfg, Constant(0), kind="batch")
    crown(registry, "agr", champion)
    asked: list[tuple[str, datetime]] = []

    def newer_drift(stream: str, after: datetime) -> bool:
        asked.append((stream, after))
        return True

    trainer = make_trainer({"agr": cfg}, FakeReplay(rows("agr", pairs)))
    trainer.newer_drift = newer_drift
    result = trainer.handle(scheduled())

    assert result.outcome == "superseded", result.decision
    assert registry.get_alias(model="agr", alias="champion") == champion
    assert asked == [("agr", T0 + timedelta(seconds=N - 1))]  # the window's newest row
    # a manual request is what its user asked for: it is not held back
    assert trainer.handle(scheduled(by="cli")).outcome == "promoted"


def test_a_scheduled_run_promotes_when_no_drift_came_after_it(
    registry: Registry, make_trainer: Callable[..., Trainer]
) -> None:
    cfg = config()
    crown(registry, "agr", register(registry, cfg, Constant(0), kind="batch"))
    trainer = make_trainer({"agr": cfg}, FakeReplay(rows("agr", data(N, before=N))))
    trainer.newer_drift = lambda stream, after: False
    assert trainer.handle(scheduled()).outcome == "promoted"


def test_a_winner_is_compared_again_with_a_champion_that_moved(
    registry: Registry, make_trainer: Callable[..., Trainer]
) -> None:
    pairs = data(N, before=BEFORE)
    cfg = config()
    crown(registry, "agr", register(registry, cfg, Constant(0), kind="batch"))
    weak = register(registry, cfg, Constant(1), kind="batch")

    def move_during_the_run(step: str) -> None:
        if step == "registered":
            crown(registry, "agr", weak)

    trainer = make_trainer({"agr": cfg}, FakeReplay(rows("agr", pairs)), pause=move_during_the_run)
    result = trainer.handle(drift("agr", N - 1))

    assert result.outcome == "promoted", result.decision
    assert registry.get_alias(model="agr", alias="champion") == result.winner_version
    (move,) = [m for m in registry.alias_history(model="agr", alias="champion")][:1]
    assert move.evidence["compared_again"] is True
    assert move.evidence["champion_version"] == weak


def test_a_winner_that_loses_to_the_moved_champion_is_not_promoted(
    registry: Registry, make_trainer: Callable[..., Trainer]
) -> None:
    pairs = data(N, before=BEFORE)
    cfg = config()
    crown(registry, "agr", register(registry, cfg, Constant(0), kind="batch"))
    strong = register(registry, cfg, Lookup(pairs), kind="batch")

    def move_during_the_run(step: str) -> None:
        if step == "registered":
            crown(registry, "agr", strong)

    trainer = make_trainer({"agr": cfg}, FakeReplay(rows("agr", pairs)), pause=move_during_the_run)
    result = trainer.handle(drift("agr", N - 1))

    assert result.outcome == "rejected"
    assert f"moved during the run to v{strong}" in result.decision
    assert registry.get_alias(model="agr", alias="champion") == strong


def test_a_candidate_must_beat_the_online_model_too(
    registry: Registry, make_trainer: Callable[..., Trainer]
) -> None:
    pairs = data(N, before=BEFORE)
    cfg = config()
    crown(registry, "agr", register(registry, cfg, Constant(0), kind="batch"))
    online = register(registry, cfg, Lookup(pairs), kind="online", end=BEFORE)
    crown(registry, "agr", online, alias="online")
    trainer = make_trainer({"agr": cfg}, FakeReplay(rows("agr", pairs)))

    result = trainer.handle(drift("agr", N - 1))

    assert result.outcome == "rejected", result.decision
    assert f"online v{online}" in result.decision
    (run,) = registry.list_runs(model="agr")
    assert run.window["online"]["metrics"]["accuracy"] == 1.0


def test_a_weak_online_model_does_not_hold_a_candidate_back(
    registry: Registry, make_trainer: Callable[..., Trainer]
) -> None:
    pairs = data(N, before=BEFORE)
    cfg = config()
    crown(registry, "agr", register(registry, cfg, Constant(0), kind="batch"))
    crown(registry, "agr", register(registry, cfg, Constant(1), kind="online"), alias="online")
    trainer = make_trainer({"agr": cfg}, FakeReplay(rows("agr", pairs)))
    assert trainer.handle(drift("agr", N - 1)).outcome == "promoted"


class HeldBack(cf.ThreadPoolExecutor):
    """One worker; the ``slow`` candidate's fit starts only once ``release`` is set (or
    after a minute), and every step is written to ``log``."""

    def __init__(self, slow: str) -> None:
        super().__init__(max_workers=1)
        self.slow = slow
        self.release = threading.Event()
        self.log: list[str] = []

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> cf.Future[Any]:
        name = args[0] if args else None

        def run() -> Any:
            if name == self.slow:
                self.release.wait(timeout=60)
                self.log.append(f"{name} fit starts")
            return fn(*args, **kwargs)

        return super().submit(run)


def test_a_winner_moves_as_soon_as_it_is_fitted_and_a_better_one_replaces_it(
    registry: Registry,
) -> None:
    pairs = data(N, before=BEFORE)
    cfg = config(retrain={"mode": "since_drift", "min_size": 800})
    weak = register(registry, cfg, Constant(0), kind="batch")
    crown(registry, "agr", weak)
    pool = HeldBack(slow="hist_gradient_boosting")

    def pause(step: str) -> None:
        if step == "moved":
            pool.log.append("moved")
            pool.release.set()

    trainer = Trainer(
        registry=registry,
        configs={"agr": cfg}.get,
        replay=FakeReplay(rows("agr", pairs)),
        pool=pool,
        pause=pause,
        drift_wait_s=0.0,
        broker_retries=0,
        retry_backoff_s=0.01,
    )
    try:
        result = trainer.handle(drift("agr", N - 1, seconds=BEFORE))
    finally:
        pool.shutdown(wait=True)

    # logistic regression moved before the slow candidate's fit even began
    assert pool.log[:2] == ["moved", "hist_gradient_boosting fit starts"], pool.log
    first, second = [m for m in reversed(registry.alias_history(model="agr", alias="champion"))][
        -2:
    ]
    assert first.evidence["candidate"] == "logistic_regression"
    assert first.from_version == weak
    # Agrawal's function 2 is a tree's: boosting beats the first winner on the same holdout
    assert result.outcome == "promoted", result.decision
    assert second.evidence["candidate"] == "hist_gradient_boosting"
    assert second.evidence["compared_again"] is True
    assert second.from_version == first.to_version == second.evidence["champion_version"]
    assert result.winner_version == second.to_version
    run = registry.list_runs(model="agr")[0]
    notes = {c.name: c.note for c in run.candidates}
    assert notes["logistic_regression"].startswith("not promoted: promoted as soon as")
    assert notes["hist_gradient_boosting"].startswith("promoted: ")


def test_the_online_model_is_scored_as_fresh_as_serving_follows_it(
    registry: Registry, make_trainer: Callable[..., Trainer]
) -> None:
    pairs = data(N, before=BEFORE)
    cfg = config(retrain={"mode": "since_drift", "min_size": 800})
    crown(registry, "agr", register(registry, cfg, Constant(0), kind="batch"))
    model = compose.Pipeline(
        compose.Select(*NUMBERS), preprocessing.StandardScaler(), linear_model.LogisticRegression()
    )
    for x, y in pairs[:BEFORE]:
        model.learn_one(dict(x), y)
    snapshot = registry.register_version(
        model="agr",
        kind="online",
        predictor=Predictor.river(model, spec=cfg.spec, spec_sha256=cfg.spec_sha256()),
        lineage=Lineage(
            ranges=(OffsetRange(topic="valid", partition=0, start=0, end=BEFORE),),
            event_time_start=T0,
            event_time_end=T0 + timedelta(seconds=BEFORE - 1),
            example_count=BEFORE,
        ),
    ).version
    crown(registry, "agr", snapshot, alias="online")

    trainer = make_trainer({"agr": cfg}, FakeReplay(rows("agr", pairs)))
    trainer.handle(drift("agr", N - 1, seconds=BEFORE))

    run = registry.list_runs(model="agr")[0]
    window = run.window
    scored = window["online"]
    # the post-drift rows before the holdout, learned as a follower would have learned them
    assert f"(+{window['train_rows']} examples after its snapshot)" in scored["scored_as"]
    holdout = pairs[N - window["holdout_rows"] :]
    frozen = gate.prequential(model, [x for x, _ in holdout], [y for _, y in holdout])
    frozen_accuracy = sum(p == y for p, (_, y) in zip(frozen, holdout, strict=True)) / len(holdout)
    assert scored["metrics"]["accuracy"] > frozen_accuracy + 0.02, (scored, frozen_accuracy)
