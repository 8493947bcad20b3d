"""A drifting stream produced through the validator: the learner publishes exactly one
drift event for the one real change, and none for a stationary stream of the same length."""

from __future__ import annotations

import signal
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from schemas import CATALOGUE, DriftDetected, LabelledExample, StreamConfig, Topics
from services.common.codec import decode
from services.common.settings import DriftlineSettings
from services.registry.client import Registry
from tests.integration.learner_support import (
    KEY,
    learned,
    learner_env,
    start_learner,
)
from tests.integration.polling import wait_for
from tests.integration.processes import publish
from tests.integration.validator_support import read_all, running_validator
from tests.streams import agrawal, agrawal_config

N, SWITCH = 8000, 4000


def named(stream: str) -> StreamConfig:
    body = agrawal_config().model_dump(mode="json") | {"stream": stream, "version": 1}
    return StreamConfig.model_validate(body)


def raw(stream: str, rows: list[tuple[dict[str, float], bool]]) -> list[LabelledExample]:
    start = datetime.now(UTC) - timedelta(seconds=len(rows))
    return [
        LabelledExample(
            stream=stream,
            example_id=f"{stream}-{i}",
            features=x,
            label=y,
            event_time=start + timedelta(seconds=i),
        )
        for i, (x, y) in enumerate(rows)
    ]


def test_one_drift_event_per_real_change(
    settings_factory: Callable[..., DriftlineSettings], tmp_path: Path
) -> None:
    settings = settings_factory(signing_key=KEY, signing_key_id="k1")
    publish(settings, "streams", [named("drifting"), named("steady")])
    drifting = list(agrawal(3, n=N, switch_at=SWITCH))
    steady = list(agrawal(4, n=N))
    interleaved = [
        ex
        for pair in zip(raw("drifting", drifting), raw("steady", steady), strict=True)
        for ex in pair
    ]
    publish(settings, "examples.raw", interleaved)

    group = f"g-{uuid.uuid4().hex[:8]}"
    log = tmp_path / "learner.log"
    registry = Registry.open(settings, relay=False)
    valid = Topics(settings.topic_prefix).name("examples.valid")
    with running_validator(settings, tmp_path):
        learner = start_learner(learner_env(settings, group), log)
        try:
            wait_for(
                lambda: learned(registry, group, valid, 4) == {"drifting": N, "steady": N},
                240,
                "both streams learned",
                learner,
                log,
            )
        finally:
            learner.send_signal(signal.SIGTERM)
            code = learner.wait(timeout=20)
            registry.close()
    assert code == 0, log.read_text()[-3000:]

    decoded = [decode(r.value, CATALOGUE["drift"]) for r in read_all(settings, "drift")]
    drift = [e for e in decoded if isinstance(e, DriftDetected)]
    by_stream = {s: [e for e in drift if e.stream == s] for s in ("drifting", "steady")}
    assert by_stream["steady"] == []
    (event,) = by_stream["drifting"]
    assert event.kind == "concept" and event.detector == "ADWIN"
    assert SWITCH < event.example_count <= SWITCH + 500
    assert event.topic == valid and event.offset >= 0
