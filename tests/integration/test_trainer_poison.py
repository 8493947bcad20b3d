"""No poison pills in the trainer, on the real broker: a retrain over a window holding
records that break the stream's spec or the event contract trains on the others (and
reproduces); drift-topic records the trainer cannot use are counted letters, and the
agent goes on to the next event."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from schemas import LabelledExample, Topics
from schemas.drift import RetrainRequested
from services.common.codec import encode
from services.common.kafka_client import make_producer
from services.common.settings import DriftlineSettings
from services.registry.client import Registry
from tests.integration.polling import wait_for
from tests.integration.processes import publish
from tests.integration.trainer_support import (
    KEY,
    config,
    dead_letters,
    examples,
    start_trainer,
    stop,
    trainer_env,
)


def _raw(ex: LabelledExample, **features: Any) -> bytes:
    """``ex`` with changed features, as any producer may write it (NaN as the literal)."""
    doc = ex.model_dump(mode="json")
    doc["features"] = {**ex.features, **features}
    return json.dumps(doc).encode()


def test_a_window_with_bad_records_trains_on_the_rest_and_bad_triggers_are_letters(
    settings_factory: Callable[..., DriftlineSettings], tmp_path: Path
) -> None:
    settings = settings_factory(signing_key=KEY, signing_key_id="k1")
    topics = Topics(settings.topic_prefix)
    cfg = config(
        "agr", retrain={"candidates": ["logistic_regression"], "window": 800, "min_size": 500}
    )
    data = examples("agr", 1300, before=1300)
    spare = examples("agr", 1310, before=1310)[1300:]  # unused ids for the bad records
    bad_rows: list[tuple[bytes, str]] = [
        (_raw(spare[0], salary="95000"), "wrong_type"),  # could not convert string to float
        (_raw(spare[1], extra=1.0), "unexpected_feature"),
        (_raw(spare[2], group="medium"), "unknown_category"),
        (_raw(spare[3], loan=float("nan")), "non_finite"),
        (spare[4].model_copy(update={"label": 7}).model_dump_json().encode(), "bad_label"),
        (b"not json", "unparseable"),
        (json.dumps({"stream": "agr", "label": 1}).encode(), "contract_violation"),
    ]
    values = [encode(ex) for ex in data]
    for i, (value, _) in enumerate(bad_rows):  # all within the newest 800
        values.insert(600 + 90 * i, value)
    producer = make_producer(settings)
    for value in values:
        producer.send(topics.name("examples.valid"), key=b"agr", value=value)
    producer.flush()
    publish(settings, "streams", [cfg])

    drift_topic = topics.name("drift")
    bad_triggers: list[tuple[bytes, str]] = [
        (b"{not json", "unparseable"),
        (encode(data[0]), "contract_violation"),  # an example, not a drift event
        (json.dumps({"event_type": "retrain_requested"}).encode(), "contract_violation"),
        (encode(RetrainRequested(stream="nobody")), "unknown_stream"),
    ]
    for value, _ in bad_triggers:
        producer.send(drift_topic, key=b"agr", value=value)
    request = RetrainRequested(stream="agr", window=800)
    producer.send(drift_topic, key=b"agr", value=encode(request))
    producer.flush()
    producer.close()

    env = trainer_env(settings, f"g-{uuid.uuid4().hex[:8]}")
    registry = Registry.open(settings, relay=False)
    log = tmp_path / "trainer.log"
    proc = start_trainer(env, log)
    try:
        wait_for(
            lambda: any(r.status != "running" for r in registry.list_runs(model="agr")),
            180,
            "the run over the window with bad records",
            proc,
            log,
        )
        (run,) = registry.list_runs(model="agr")
        assert run.status == "succeeded", run.decision
        assert run.trigger["event_id"] == str(request.event_id)
        assert run.window["rows"] == 800  # full: the bad records left out, not counted in
        assert run.window["skipped"] == {reason: 1 for _, reason in bad_rows}
        assert run.winner_version is not None
        letters = [d for d in dead_letters(settings) if d.service == "trainer"]
        assert sorted((d.source_offset, d.reason.value) for d in letters) == [
            (offset, reason) for offset, (_, reason) in enumerate(bad_triggers)
        ]
        assert "skipped" in log.read_text()  # each skip logged with its position
        assert stop(proc) == 0
    finally:
        stop(proc)
        registry.close()

    # reproduce leaves out the same records (it reads the ranges without the spec)
    done = subprocess.run(  # noqa: S603 - our own CLI
        [sys.executable, "-m", "services.cli.main", "models", "reproduce", "agr"]
        + [str(run.winner_version)],
        env={**env, "DRIFTLINE_KAFKA_BOOTSTRAP": settings.bootstrap},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "DIFFERENT" not in done.stdout
