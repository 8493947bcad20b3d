"""The evaluator on the real broker: a better challenger is promoted automatically, a
champion that degrades is rolled back automatically, and the metric snapshots show the
served model's accuracy across both swaps."""

from __future__ import annotations

import signal
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from schemas import DeadLetter, MetricSnapshot
from services.common.settings import DriftlineSettings
from tests.integration.evaluator_support import (
    evaluator_env,
    loans_stream,
    publish_raw,
    register_tree,
    set_alias,
    start_evaluator,
)
from tests.integration.polling import wait_for
from tests.integration.processes import TopicReader, publish
from tests.services.evaluator.data import examples


def champion_snapshots(reader: TopicReader) -> list[MetricSnapshot]:
    return [
        e
        for e in reader.poll()
        if isinstance(e, MetricSnapshot) and e.source == "evaluator" and e.role == "champion"
    ]


# also with the registry reached over HTTP, on SQLite and PostgreSQL (make test)
@pytest.mark.registry_http
def test_promote_then_rollback(
    settings_factory: Callable[..., DriftlineSettings], tmp_path: Path
) -> None:
    settings, cfg, registry = loans_stream(settings_factory)
    old = register_tree(registry, cfg, 0)  # knows concept 0
    new = register_tree(registry, cfg, 2)  # knows concept 2
    set_alias(registry, "loans", "champion", old)
    set_alias(registry, "loans", "challenger", new)
    env = evaluator_env(
        settings,
        f"ev-{uuid.uuid4().hex[:8]}",
        DRIFTLINE_EVALUATOR_SNAPSHOT_EVERY="100",
        DRIFTLINE_EVALUATOR_ROLLBACK_MIN_EXAMPLES="150",
    )
    log = tmp_path / "evaluator.log"
    metrics = TopicReader(settings, "metrics")
    proc = start_evaluator(env, log)
    try:
        # The stream moves to concept 2: the challenger is right, the champion is not.
        publish(settings, "examples.valid", examples("loans", 2, 600, seed=3))
        publish_raw(settings, "examples.valid", b"loans", [b"not json", b'{"event_type": 1}'])
        wait_for(
            lambda: registry.get_alias(model="loans", alias="champion") == new,
            60,
            "the challenger's promotion",
            [proc],
            log,
        )
        promoted = registry.alias_history(model="loans", alias="champion", limit=1)[0]
        assert (promoted.from_version, promoted.to_version) == (old, new)
        assert promoted.reason == "promoted" and promoted.actor == "evaluator"
        ev = promoted.evidence
        assert ev["rule"] == "promotion" and ev["n"] >= 200
        assert ev["statistic"] == "inf" or ev["statistic"] > ev["threshold"]
        assert ev["metrics"]["challenger_accuracy"] > ev["metrics"]["champion_accuracy"] + 0.3
        wait_for(
            lambda: registry.get_alias(model="loans", alias="challenger") is None,
            10,
            "the challenger alias removed",
            [proc],
            log,
        )

        # Until the evaluator scores the new champion, the stream stays on concept 2
        # (the swap reaches it through the models topic while examples keep coming).
        start = feed_until(
            lambda: any(s.version == new for s in champion_snapshots(metrics)),
            settings,
            concept=2,
            start=600,
            proc=proc,
            log=log,
        )
        # Now the concept switches back to 0: the new champion degrades, its predecessor
        # (still scored on the same examples) would have been right.
        publish(settings, "examples.valid", examples("loans", 0, 800, seed=9, start=start))
        wait_for(
            lambda: registry.get_alias(model="loans", alias="champion") == old,
            60,
            "the automatic rollback",
            [proc],
            log,
        )
        rolled = registry.alias_history(model="loans", alias="champion", limit=1)[0]
        assert (rolled.from_version, rolled.to_version) == (new, old)
        assert rolled.reason == "rolled_back" and rolled.actor == "evaluator"
        m = rolled.evidence["metrics"]
        assert m["predecessor_rolling_accuracy"] - m["champion_rolling_accuracy"] > 0.05
        assert rolled.evidence["rolled_back_from"] == new

        # The restored champion serves on: the snapshots show the accuracy across both swaps.
        feed_until(
            lambda: _back_to(champion_snapshots(metrics), new, old),
            settings,
            concept=0,
            start=start + 800,
            chunk=300,
            proc=proc,
            log=log,
        )
        served = champion_snapshots(metrics)
        versions = [s.version for s in served]
        first_new = versions.index(new)
        back = next(i for i in range(first_new, len(versions)) if versions[i] == old)
        assert set(versions[:first_new]) == {old} and set(versions[first_new:back]) == {new}
        assert all(s.values["rolling_accuracy"] < 0.7 for s in served[:first_new])
        assert max(s.values["rolling_accuracy"] for s in served[first_new:back]) > 0.9
        assert served[-1].version == old
        assert served[-1].values["rolling_accuracy"] > 0.9  # the restored champion, on concept 0

        dead = TopicReader(settings, "events.dead")
        wait_for(lambda: len(dead.poll()) >= 2, 30, "dead letters", [proc], log)
        letters = [e for e in dead.events if isinstance(e, DeadLetter)]
        assert {d.reason.value for d in letters} == {"unparseable", "contract_violation"}
        assert all(d.service == "evaluator" for d in letters)
        dead.close()

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0, log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        metrics.close()
        registry.close()


def test_a_first_start_from_latest_scores_only_what_comes_after_it(
    settings_factory: Callable[..., DriftlineSettings], tmp_path: Path
) -> None:
    settings, cfg, registry = loans_stream(settings_factory)
    set_alias(registry, "loans", "champion", register_tree(registry, cfg, 0))
    history = examples("loans", 0, 300, seed=5)  # on the topic before the evaluator starts
    publish(settings, "examples.valid", history)
    env = evaluator_env(
        settings,
        f"ev-{uuid.uuid4().hex[:8]}",
        DRIFTLINE_EVALUATOR_SNAPSHOT_EVERY="100",
        DRIFTLINE_EVALUATOR_START_FROM="latest",
    )
    log = tmp_path / "evaluator.log"
    metrics = TopicReader(settings, "metrics")
    proc = start_evaluator(env, log)
    try:
        first_new = 10_000  # ids and event times of the later examples start here
        feed_until(
            lambda: len(champion_snapshots(metrics)) >= 2,
            settings,
            concept=0,
            start=first_new,
            proc=proc,
            log=log,
        )
        served = champion_snapshots(metrics)
        newest_old = max(e.event_time for e in history)
        assert all(s.event_time > newest_old for s in served), [s.event_time for s in served]
        assert served[0].example_count == 100  # counted from the first new example
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        metrics.close()
        registry.close()


def feed_until(
    done: Callable[[], bool],
    settings: DriftlineSettings,
    *,
    concept: int,
    start: int,
    proc: subprocess.Popen[bytes],
    log: Path,
    chunk: int = 100,
    timeout_s: float = 60.0,
) -> int:
    """Publish ``chunk`` examples of ``concept`` a second until ``done()``; the next id."""
    deadline = time.monotonic() + timeout_s
    while not done():
        assert time.monotonic() < deadline, "timed out feeding the stream"
        assert proc.poll() is None, log.read_text()[-3000:]
        publish(
            settings, "examples.valid", examples("loans", concept, 100, seed=start, start=start)
        )
        start += 100
        pause = time.monotonic() + 1.0
        while time.monotonic() < pause and not done():
            time.sleep(0.05)
    return start


def _back_to(served: list[MetricSnapshot], new: int, old: int, count: int = 4) -> bool:
    """``count`` snapshots of ``old`` as champion after one of ``new``: with a snapshot
    every 100 examples, the last three cover a whole rolling window (300) served after
    the swap back."""
    versions = [s.version for s in served]
    return new in versions and versions[versions.index(new) :].count(old) >= count
