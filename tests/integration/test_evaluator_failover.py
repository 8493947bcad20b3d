"""One active evaluator: a second instance stands by, takes over when the first is
killed, and continues from its checkpoint (what is redone keeps its event ids)."""

from __future__ import annotations

import signal
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from schemas import LabelledExample, MetricSnapshot, ModelAnswer, ShadowPair
from services.common.settings import DriftlineSettings
from services.localbroker.ports import free_ports
from tests.integration.evaluator_support import (
    evaluator_env,
    loans_stream,
    register_tree,
    set_alias,
    start_evaluator,
)
from tests.integration.polling import wait_for
from tests.integration.processes import TopicReader, publish
from tests.services.evaluator.data import examples

# also with the registry reached over HTTP, on SQLite and PostgreSQL (make test)
pytestmark = pytest.mark.registry_http


def wrong_pair(example: LabelledExample) -> ShadowPair:
    wrong = 1 - int(example.label)
    return ShadowPair(
        stream=example.stream,
        example_id=example.example_id,
        request_event_id=uuid.uuid4(),
        champion=ModelAnswer(model=example.stream, version=1, prediction=wrong),
        challenger=ModelAnswer(model=example.stream, version=9, prediction=wrong),
    )


def scrape(port: int) -> str:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
    except httpx.HTTPError:
        return ""


def test_a_standby_takes_over_from_the_checkpoint(
    settings_factory: Callable[..., DriftlineSettings], tmp_path: Path
) -> None:
    settings, cfg, registry = loans_stream(settings_factory)
    set_alias(registry, "loans", "champion", register_tree(registry, cfg, 0))
    env = evaluator_env(
        settings, f"ev-{uuid.uuid4().hex[:8]}", DRIFTLINE_EVALUATOR_SNAPSHOT_EVERY="100"
    )
    log_a, log_b = tmp_path / "a.log", tmp_path / "b.log"
    metrics = TopicReader(settings, "metrics")

    def snapshots() -> list[MetricSnapshot]:
        """The per-version snapshots (not the stream's served track, which runs across swaps)."""
        return [e for e in metrics.poll() if isinstance(e, MetricSnapshot) and e.role != "served"]

    (port,) = free_ports(1)
    a = start_evaluator(env | {"DRIFTLINE_EVALUATOR_METRICS_PORT": str(port)}, log_a)
    b = None
    try:
        wait_for(lambda: "active:" in log_a.read_text(), 60, "a first active instance", [a], log_a)
        b = start_evaluator(env, log_b)
        wait_for(lambda: "models topic read" in log_b.read_text(), 60, "b started", [b], log_b)
        # Serving answered the first 100 requests wrongly (as shadow pairs tell); their
        # labels come later and are scored by what was served, not by the model again.
        data = examples("loans", 0, 600, seed=3)
        publish(settings, "shadow", [wrong_pair(e) for e in data[:100]])
        wait_for(
            lambda: 'driftline_evaluator_shadow_pairs{state="pending"} 100.0' in scrape(port),
            30,
            "the shadow pairs read",
            [a],
            log_a,
        )
        publish(settings, "examples.valid", data)
        wait_for(lambda: len(snapshots()) >= 6, 60, "600 examples scored", [a, b], log_a)
        assert "active:" not in log_b.read_text()  # the standby only waits
        assert "lease lost" not in log_a.read_text()  # and its joining moved nothing
        text = scrape(port)
        assert 'driftline_evaluator_shadow_pairs{state="joined"} 100.0' in text
        assert "driftline_evaluator_active 1.0" in text

        a.send_signal(signal.SIGKILL)  # no goodbye: the group notices after its session
        a.wait(timeout=20)
        wait_for(
            lambda: "active: restored checkpoint" in log_b.read_text(),
            60,
            "the standby's takeover",
            [b],
            log_b,
        )
        publish(settings, "examples.valid", examples("loans", 0, 400, seed=4, start=600))
        wait_for(
            lambda: any(s.example_count == 1000 for s in snapshots()), 60, "all scored", [b], log_b
        )
        # What the killed instance did after its last checkpoint is done again, with
        # the same event ids and values: consumers de-duplicate, nothing is counted twice.
        by_count: dict[int, set[tuple[str, str]]] = {}
        for snap in snapshots():
            by_count.setdefault(snap.example_count, set()).add(
                (str(snap.event_id), repr(sorted(snap.values.items())))
            )
        assert sorted(by_count) == list(range(100, 1001, 100))
        assert all(len(found) == 1 for found in by_count.values())
        assert all(s.version == 1 and s.role == "champion" for s in snapshots())
        first, last = snapshots()[0], snapshots()[-1]
        assert first.values["accuracy"] == 0.0  # the served answers, joined by example id
        assert 0.85 < last.values["accuracy"] <= 0.9  # the model itself is right on concept 0
        b.send_signal(signal.SIGTERM)
        assert b.wait(timeout=20) == 0, log_b.read_text()[-3000:]
    finally:
        for proc in (a, b):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
        metrics.close()
        registry.close()
