"""Fresh retrains on a real broker: the drift topic's tail tells a scheduled run that a drift
came after its window, so the scheduled model never overtakes the drift's own run, which
trains on post-drift rows; a data drift the policy only reports starts no run."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from schemas import Topics
from schemas.drift import DriftDetected, RetrainRequested
from services.common.kafka_client import offset_bounds
from services.common.settings import DriftlineSettings
from services.registry.client import Registry
from services.trainer.drift_tail import DriftTail
from tests.integration.polling import wait_for
from tests.integration.processes import publish
from tests.integration.trainer_support import (
    KEY,
    ModelsTopic,
    config,
    examples,
    online_champion,
    start_trainer,
    stop,
    trainer_env,
)

N, BEFORE = 3000, 1500


def concept(stream: str, topic: str, partition: int, offset: int, seconds: int) -> DriftDetected:
    from tests.integration.trainer_support import T0

    return DriftDetected(
        stream=stream,
        kind="concept",
        detector="ADWIN",
        topic=topic,
        partition=partition,
        offset=offset,
        event_time=T0 + timedelta(seconds=seconds),
        example_count=offset,
    )


def test_the_drift_tail_sees_only_newer_drifts_that_retrain(
    settings_factory: Callable[..., DriftlineSettings],
) -> None:
    settings = settings_factory()
    valid = Topics(settings.topic_prefix).name("examples.valid")
    data_drift = concept("agr", valid, 0, 2500, 2500).model_copy(
        update={"kind": "data", "detector": "KS", "feature": "age"}
    )
    publish(
        settings,
        "drift",
        [concept("agr", valid, 0, 1500, 1500), data_drift, concept("other", valid, 0, 9, 2900)],
    )
    configs = {"agr": config("agr"), "other": config("other")}
    tail = DriftTail(settings, Topics(settings.topic_prefix).name("drift"), configs.get)
    t0 = data_drift.event_time - timedelta(seconds=2500)
    assert tail("agr", t0 + timedelta(seconds=1000))  # the concept drift at 1500 is newer
    # after 1500 only a data drift that the default policy reports: no run follows it
    assert not tail("agr", t0 + timedelta(seconds=2000))
    retraining = {"agr": config("agr", drift={"data_drift_retrains": True})}
    assert DriftTail(settings, Topics(settings.topic_prefix).name("drift"), retraining.get)(
        "agr", t0 + timedelta(seconds=2000)
    )
    assert not tail("nobody", t0)


def test_a_scheduled_run_yields_to_the_drift_detected_while_it_ran(
    settings_factory: Callable[..., DriftlineSettings], tmp_path: Path
) -> None:
    settings = settings_factory(signing_key=KEY, signing_key_id="k1")
    topics = Topics(settings.topic_prefix)
    cfg = config("agr")  # retrain mode: the default, since_drift
    assert cfg.policy.retrain.mode == "since_drift"
    data = examples("agr", N, before=BEFORE)
    publish(settings, "streams", [cfg])
    publish(settings, "examples.valid", data[:BEFORE])  # only the old concept so far
    _, end = offset_bounds(settings, topics.name("examples.valid"))
    (partition,) = [p for p, e in end.items() if e > 0]
    first = end[partition] - BEFORE
    registry = Registry.open(settings, relay=False)
    champion = online_champion(registry, cfg, data[:BEFORE])
    env = trainer_env(settings, f"g-{uuid.uuid4().hex[:8]}", DRIFTLINE_TRAINER_DRIFT_WAIT_S="120")
    log = tmp_path / "trainer.log"
    models = ModelsTopic(settings)
    proc = start_trainer(env, log)
    try:
        scheduled = RetrainRequested(
            stream="agr", window=1000, requested_by="learner", reason="scheduled"
        )
        report = concept("agr", topics.name("examples.valid"), partition, first + 1200, 1200)
        report = report.model_copy(update={"kind": "data", "detector": "KS", "feature": "age"})
        drift = concept("agr", topics.name("examples.valid"), partition, first + BEFORE, BEFORE)
        # the learner's order: a scheduled request, then (while it trains) the drift
        publish(settings, "drift", [scheduled, report, drift])

        def finished(trigger: str) -> bool:
            runs = [r for r in registry.list_runs(model="agr") if r.trigger_event_id == trigger]
            return bool(runs) and runs[0].status != "running"

        wait_for(lambda: finished(str(scheduled.event_id)), 180, "the scheduled run", proc, log)
        (sched_run,) = [
            r
            for r in registry.list_runs(model="agr")
            if r.trigger_event_id == str(scheduled.event_id)
        ]
        assert "detected after this scheduled window" in (sched_run.decision or "")
        assert registry.get_alias(model="agr", alias="champion") == champion
        # the data drift is reported only: no run of its own
        assert not [
            r for r in registry.list_runs(model="agr") if r.trigger_event_id == str(report.event_id)
        ]
        publish(settings, "examples.valid", data[BEFORE:])  # the new concept arrives
        wait_for(lambda: finished(str(drift.event_id)), 240, "the drift's run", proc, log)
        (drift_run,) = [
            r for r in registry.list_runs(model="agr") if r.trigger_event_id == str(drift.event_id)
        ]
        assert drift_run.status == "succeeded", drift_run.decision
        (rng,) = drift_run.window["ranges"]
        assert rng["start"] >= first + BEFORE  # post-drift rows only
        moves = models.read_to_end()
        assert [m.evidence["trigger_event_id"] for m in moves] == [str(drift.event_id)]
        assert stop(proc) == 0
    finally:
        stop(proc)
        models.close()
        registry.close()
