"""The trainer's run logic on a real (SQLite) registry and a list-backed replay."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from services.common.errors import BrokerError, DataExpired
from services.registry.client import Registry
from services.trainer.replay import Bounds
from services.trainer.runner import Trainer
from services.trainer.triggers import UnknownStream
from tests.services.trainer.support import FakeReplay, config, data, drift, online_champion, rows

N, BEFORE = 3000, 1500


class Crash(BaseException):
    """Stands in for a kill: nothing after it runs, not even the failure bookkeeping."""


def trainer_moves(registry: Registry, stream: str, alias: str = "champion") -> list[int | None]:
    return [
        m.to_version
        for m in registry.alias_history(model=stream, alias=alias)
        if m.actor == "trainer"
    ]


@pytest.fixture
def stream_data() -> list[tuple[dict[str, object], int]]:
    return data(N, before=BEFORE)


def test_drift_trains_once_and_beats_the_online_champion(
    registry: Registry, make_trainer: Callable[..., Trainer], stream_data: list
) -> None:
    cfg = config()
    champion = online_champion(registry, cfg, stream_data[:BEFORE])
    trainer = make_trainer({"agr": cfg}, FakeReplay(rows("agr", stream_data)))
    event = drift("agr", N - 1, version=champion)

    first = trainer.handle(event)
    again = trainer.handle(event)  # the same event delivered twice

    assert first.outcome == "promoted"
    assert again.outcome == "duplicate"
    assert again.run_id == first.run_id
    runs = registry.list_runs(model="agr")
    assert len(runs) == 1
    run = runs[0]
    assert run.status == "succeeded" and run.winner_version == first.winner_version
    assert registry.get_alias(model="agr", alias="champion") == first.winner_version
    assert trainer_moves(registry, "agr") == [first.winner_version]
    # every candidate is recorded with params, metrics, fit time and the gate's reason
    assert {c.name for c in run.candidates} == {"logistic_regression", "hist_gradient_boosting"}
    assert all(c.fit_s > 0 and c.params and c.note for c in run.candidates)
    assert any(c.note.startswith("promoted:") for c in run.candidates)
    assert run.champion["version"] == champion
    winner = registry.get_version(model="agr", version=first.winner_version)
    assert winner is not None
    assert winner.metrics["accuracy"] > run.champion["metrics"]["accuracy"]
    assert set(winner.evaluation["segments"]) == {"low", "high"}
    assert winner.evaluation["gap"] is not None
    assert winner.lineage.example_count == 2000
    assert winner.lineage.ranges[0].end == N


def test_two_concurrent_drift_events_make_one_run(
    registry: Registry, make_trainer: Callable[..., Trainer], stream_data: list
) -> None:
    cfg = config()
    online_champion(registry, cfg, stream_data[:BEFORE])
    trainer = make_trainer({"agr": cfg}, FakeReplay(rows("agr", stream_data)))
    events = [drift("agr", N - 1), drift("agr", N - 200)]  # two detectors, within cooldown
    outcomes: list[str] = []
    start = threading.Barrier(2)

    def handle(i: int) -> None:
        start.wait()
        outcomes.append(trainer.handle(events[i]).outcome)

    threads = [threading.Thread(target=handle, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert sorted(outcomes) == ["coalesced", "promoted"]
    assert len(registry.list_runs(model="agr")) == 1
    assert len(trainer_moves(registry, "agr")) == 1
    # a drift beyond the cooldown is a new run
    later = drift("agr", N + 5000)
    assert trainer.handle(later).outcome != "coalesced"
    assert len(registry.list_runs(model="agr")) == 2


def test_a_margin_no_candidate_can_meet_keeps_the_champion(
    registry: Registry, make_trainer: Callable[..., Trainer], stream_data: list
) -> None:
    cfg = config(margin=0.9)
    champion = online_champion(registry, cfg, stream_data[:BEFORE])
    trainer = make_trainer({"agr": cfg}, FakeReplay(rows("agr", stream_data)))

    result = trainer.handle(drift("agr", N - 1, version=champion))

    assert result.outcome == "rejected"
    assert registry.get_alias(model="agr", alias="champion") == champion
    run = registry.list_runs(model="agr")[0]
    assert run.status == "rejected"
    assert "nothing promoted" in (run.decision or "")
    # losers are registered but not promoted, each with its reason
    assert all(c.version is not None for c in run.candidates)
    assert all("does not beat the champion" in (c.note or "") for c in run.candidates)


def test_shadow_promotion_makes_a_challenger(
    registry: Registry, make_trainer: Callable[..., Trainer], stream_data: list
) -> None:
    cfg = config(promotion="shadow")
    champion = online_champion(registry, cfg, stream_data[:BEFORE])
    trainer = make_trainer({"agr": cfg}, FakeReplay(rows("agr", stream_data)))

    result = trainer.handle(drift("agr", N - 1, version=champion))

    assert result.outcome == "promoted"
    assert registry.get_alias(model="agr", alias="challenger") == result.winner_version
    assert registry.get_alias(model="agr", alias="champion") == champion


def test_no_champion_the_best_fair_candidate_wins(
    registry: Registry, make_trainer: Callable[..., Trainer], stream_data: list
) -> None:
    cfg = config(retrain={"mode": "since_drift", "min_size": 800})
    trainer = make_trainer({"agr": cfg}, FakeReplay(rows("agr", stream_data)))

    result = trainer.handle(drift("agr", N - 1, seconds=BEFORE))

    assert result.outcome == "promoted"
    winner = registry.get_version(model="agr", version=result.winner_version or 0)
    assert winner is not None
    assert winner.lineage.example_count == N - BEFORE  # every example since the drift
    assert "no champion" in result.decision


def test_frozen_model_is_trained_but_never_moved(
    registry: Registry, make_trainer: Callable[..., Trainer], stream_data: list
) -> None:
    cfg = config(frozen=True)
    champion = online_champion(registry, cfg, stream_data[:BEFORE])
    trainer = make_trainer({"agr": cfg}, FakeReplay(rows("agr", stream_data)))

    result = trainer.handle(drift("agr", N - 1, version=champion))

    assert result.outcome == "frozen"
    assert registry.get_alias(model="agr", alias="champion") == champion
    assert len([v for v in registry.list_versions(model="agr") if v.kind == "batch"]) == 2
    assert "frozen" in (registry.list_runs(model="agr")[0].decision or "")


@pytest.mark.parametrize("step", ["registered", "moved"])
def test_a_run_killed_mid_way_resumes_and_moves_once(
    step: str,
    registry: Registry,
    make_trainer: Callable[..., Trainer],
    stream_data: list,
) -> None:
    cfg = config()
    champion = online_champion(registry, cfg, stream_data[:BEFORE])
    replay = FakeReplay(rows("agr", stream_data))

    def crash(at: str) -> None:
        if at == step:
            raise Crash(at)

    event = drift("agr", N - 1, version=champion)
    with pytest.raises(Crash):
        make_trainer({"agr": cfg}, replay, pause=crash).handle(event)
    assert registry.list_runs(model="agr")[0].status == "running"

    result = make_trainer({"agr": cfg}, replay).handle(event)  # the redelivery

    assert result.outcome == "promoted"
    assert trainer_moves(registry, "agr") == [result.winner_version]
    assert len([v for v in registry.list_versions(model="agr") if v.kind == "batch"]) == 2
    run = registry.list_runs(model="agr")[0]
    assert run.status == "succeeded" and len(run.candidates) == 2


def test_too_few_examples_is_recorded_not_trained(
    registry: Registry, make_trainer: Callable[..., Trainer], stream_data: list
) -> None:
    cfg = config(retrain={"min_size": 5000})
    trainer = make_trainer({"agr": cfg}, FakeReplay(rows("agr", stream_data)))

    result = trainer.handle(drift("agr", N - 1))

    assert result.outcome == "too_small"
    assert registry.list_versions(model="agr") == []
    assert "5000" in (registry.list_runs(model="agr")[0].decision or "")


def test_an_unknown_stream_is_refused(
    make_trainer: Callable[..., Trainer], stream_data: list
) -> None:
    trainer = make_trainer({}, FakeReplay(rows("agr", stream_data)))
    with pytest.raises(UnknownStream, match="agr"):
        trainer.handle(drift("agr", 10))


class ArrivingReplay(FakeReplay):
    """The valid topic while examples still arrive: 100 more each time it is looked at."""

    def __init__(self, rows: list, visible: int) -> None:
        super().__init__(rows)
        self.all, self.visible = list(rows), visible
        self.rows = self.all[:visible]

    def bounds(self) -> Bounds:
        self.visible = min(len(self.all), self.visible + 100)
        self.rows = self.all[: self.visible]
        return super().bounds()


def test_a_since_drift_run_waits_for_examples_after_the_drift(
    registry: Registry, make_trainer: Callable[..., Trainer], stream_data: list
) -> None:
    cfg = config(retrain={"mode": "since_drift", "min_size": 500})
    champion = online_champion(registry, cfg, stream_data[:BEFORE])
    replay = ArrivingReplay(rows("agr", stream_data), visible=BEFORE + 50)
    trainer = make_trainer({"agr": cfg}, replay, drift_wait_s=60)
    event = drift("agr", BEFORE, version=champion)  # fired at the first new example

    result = trainer.handle(event)

    (run,) = registry.list_runs(model="agr")
    (rng,) = run.window["ranges"]
    # only examples from after the drift: the old concept is not taught again
    assert rng["start"] >= BEFORE and rng["end"] - rng["start"] >= 500
    assert result.outcome == "promoted"


class FlakyReplay(FakeReplay):
    """A valid topic whose broker fails the first ``failures`` reads with ``error``."""

    def __init__(self, rows: list, failures: int, error: Exception) -> None:
        super().__init__(rows)
        self.failures, self.error = failures, error

    def read_back(self, *args: Any, **kwargs: Any) -> list:
        if self.failures > 0:
            self.failures -= 1
            raise self.error
        return super().read_back(*args, **kwargs)


def test_a_broker_error_mid_run_is_retried_and_the_run_resumes(
    registry: Registry, make_trainer: Callable[..., Trainer], stream_data: list
) -> None:
    cfg = config()
    champion = online_champion(registry, cfg, stream_data[:BEFORE])
    replay = FlakyReplay(rows("agr", stream_data), 2, BrokerError("leader not available"))
    trainer = make_trainer({"agr": cfg}, replay, broker_retries=2)

    result = trainer.handle(drift("agr", N - 1, version=champion))

    assert result.outcome == "promoted"
    (run,) = registry.list_runs(model="agr")
    assert run.status == "succeeded"


@pytest.mark.parametrize(
    ("error", "failures"),
    [(BrokerError("broker gone"), 3), (DataExpired("offsets below the log start"), 1)],
)
def test_a_run_fails_when_retries_run_out_or_the_data_is_gone(
    registry: Registry,
    make_trainer: Callable[..., Trainer],
    stream_data: list,
    error: Exception,
    failures: int,
) -> None:
    replay = FlakyReplay(rows("agr", stream_data), failures, error)
    trainer = make_trainer({"agr": config()}, replay, broker_retries=2)

    with pytest.raises(type(error)):
        trainer.handle(drift("agr", N - 1))

    (run,) = registry.list_runs(model="agr")
    assert run.status == "failed" and str(error) in (run.decision or "")
    assert replay.failures == 0  # every failure was met: a DataExpired is not retried
