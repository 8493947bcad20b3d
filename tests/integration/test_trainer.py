"""The trainer on a real broker: drift -> window replay -> candidates -> gate -> alias move,
a kill -9 mid-run, reproduce and expired data."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from schemas import Topics
from schemas.drift import RetrainRequested
from services.common.settings import DriftlineSettings
from services.registry.client import Registry
from tests.integration.polling import wait_for
from tests.integration.processes import publish
from tests.integration.trainer_support import (
    KEY,
    ModelsTopic,
    config,
    dead_letters,
    drift,
    examples,
    online_champion,
    publish_raw,
    start_trainer,
    stop,
    trainer_env,
)

N, BEFORE = 3000, 1500


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own CLI
        [sys.executable, "-m", "services.cli.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_drift_to_alias_move_then_reproduce(
    settings_factory: Callable[..., DriftlineSettings], tmp_path: Path
) -> None:
    settings = settings_factory(signing_key=KEY, signing_key_id="k1")
    cfg = config("agr")
    data = examples("agr", N, before=BEFORE)
    publish(settings, "streams", [cfg])
    publish(settings, "examples.valid", data)
    registry = Registry.open(settings, relay=False)
    champion = online_champion(registry, cfg, data[:BEFORE])
    event = drift("agr", data[BEFORE], N, champion)
    env = trainer_env(settings, f"g-{uuid.uuid4().hex[:8]}")
    log = tmp_path / "trainer.log"
    models = ModelsTopic(settings)
    proc = start_trainer(env, log)
    try:
        unknown = RetrainRequested(stream="nobody")
        publish_raw(settings, "drift", b"agr", b"not json")
        publish(settings, "drift", [unknown, event, event])  # delivered twice: trained once
        moves: list = []

        def moved() -> bool:
            moves[:] = models.poll()
            return bool(moves)

        wait_for(moved, 180, "the trainer's alias move on the models topic", proc, log)
        wait_for(
            lambda: registry.list_runs(model="agr")[0].status != "running",
            30,
            "the run to be recorded as finished",
            proc,
            log,
        )
        run = registry.list_runs(model="agr")
        assert len(run) == 1 and run[0].status == "succeeded"
        move = moves[0]
        assert move.alias == "champion" and move.from_version == champion
        assert move.to_version == run[0].winner_version
        assert move.evidence["value"] > move.evidence["champion_value"]  # beat the online model
        wait_for(
            lambda: registry.was_handled(consumer="trainer", event_id=str(event.event_id)),
            30,
            "the trigger marked handled",
        )
        assert stop(proc) == 0

        cli_env = {**env, "DRIFTLINE_KAFKA_BOOTSTRAP": settings.bootstrap}
        done = _cli(cli_env, "models", "reproduce", "agr", str(move.to_version))
        assert done.returncode == 0, done.stdout + done.stderr
        assert "model sha256" in done.stdout and "DIFFERENT" not in done.stdout
        shown = json.loads(_cli(cli_env, "runs", "show", run[0].id, "--json").stdout)
        assert "beats champion" in shown["decision"]
        notes = sorted(c["note"] for c in shown["candidates"])
        assert notes[0].startswith("not promoted:") and notes[1].startswith("promoted:")
        assert len(models.read_to_end()) == 1
        letters = dead_letters(settings)
        assert sorted((d.reason.value, d.source_event_id) for d in letters) == [
            ("unknown_stream", str(unknown.event_id)),
            ("unparseable", None),
        ]
    finally:
        stop(proc)
        models.close()
        registry.close()


def test_reproduce_says_when_the_data_left_retention(
    settings_factory: Callable[..., DriftlineSettings], tmp_path: Path
) -> None:
    from kafka import KafkaAdminClient, TopicPartition

    settings = settings_factory(signing_key=KEY, signing_key_id="k1")
    cfg = config(
        "exp", retrain={"candidates": ["logistic_regression"], "window": 800, "min_size": 500}
    )
    data = examples("exp", 1200, before=1200)
    publish(settings, "streams", [cfg])
    publish(settings, "examples.valid", data)
    env = trainer_env(settings, f"g-{uuid.uuid4().hex[:8]}")
    done = _cli(env, "retrain", "exp", "--window", "800")
    assert done.returncode == 0, done.stderr
    registry = Registry.open(settings, relay=False)
    log = tmp_path / "trainer.log"
    proc = start_trainer(env, log)
    try:
        wait_for(
            lambda: any(r.status != "running" for r in registry.list_runs(model="exp")),
            180,
            "the manual run",
            proc,
            log,
        )
        run = registry.list_runs(model="exp")[0]
        assert run.trigger["event_type"] == "retrain_requested"
        assert run.winner_version is not None and run.window["rows"] == 800
        version = registry.get_version(model="exp", version=run.winner_version)
    finally:
        assert stop(proc) == 0
        registry.close()
    assert version is not None
    (rng,) = version.lineage.ranges
    admin = KafkaAdminClient(bootstrap_servers=settings.bootstrap)
    try:
        topic = Topics(settings.topic_prefix).name("examples.valid")
        admin.delete_records({TopicPartition(topic, rng.partition): rng.start + 1})
    finally:
        admin.close()

    gone = _cli(env, "models", "reproduce", "exp", str(run.winner_version))

    assert gone.returncode == 1
    assert "left the topic's retention" in gone.stderr


@pytest.mark.parametrize("step", ["registered", "moved"])
def test_a_trainer_killed_mid_run_publishes_once_after_restart(
    step: str, settings_factory: Callable[..., DriftlineSettings], tmp_path: Path
) -> None:
    settings = settings_factory(signing_key=KEY, signing_key_id="k1")
    cfg = config("crash")
    data = examples("crash", N, before=BEFORE)
    publish(settings, "streams", [cfg])
    publish(settings, "examples.valid", data)
    registry = Registry.open(settings, relay=False)
    champion = online_champion(registry, cfg, data[:BEFORE])
    event = drift("crash", data[BEFORE], N, champion)
    group = f"g-{uuid.uuid4().hex[:8]}"
    paused = tmp_path / "paused"
    log = tmp_path / "trainer.log"
    models = ModelsTopic(settings)
    first = start_trainer(
        trainer_env(
            settings,
            group,
            DRIFTLINE_TRAINER_PAUSE_AT=step,
            DRIFTLINE_TRAINER_PAUSE_FILE=str(paused),
        ),
        log,
    )
    second = None
    try:
        publish(settings, "drift", [event])
        wait_for(paused.exists, 180, f"the run to pause at {step!r}", first, log)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
        assert registry.list_runs(model="crash")[0].status == "running"

        second = start_trainer(trainer_env(settings, group), log)
        wait_for(
            lambda: registry.list_runs(model="crash")[0].status != "running",
            180,
            "the resumed run to finish",
            second,
            log,
        )
        run = registry.list_runs(model="crash")[0]
        assert run.status == "succeeded"
        moves = models.read_to_end()
        assert [m.to_version for m in moves] == [run.winner_version]
        assert len([v for v in registry.list_versions(model="crash") if v.kind == "batch"]) == 2
        assert stop(second) == 0
    finally:
        for proc in (first, second):
            if proc is not None:
                stop(proc)
        models.close()
        registry.close()
