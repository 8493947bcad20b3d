"""A broker outage is quiet: a few log lines a second and a count of the rest, then the
service recovers by itself (the validator: the noisiest, with faust and kafka-python)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from schemas import LabelledExample, Topics
from services.common.codec import decode
from services.common.kafka_client import ensure_topics, make_admin
from services.common.settings import DriftlineSettings
from tests.integration.validator_support import (
    ValidatorProcess,
    publish,
    read_all,
    send_examples,
    stream_config,
    wait_until,
)

OUTAGE_S = 15.0
# The throttle's budget: 20 lines at once then 2 a second for the client libraries, and a
# few of our own; without it the validator wrote about 60 lines a second here.
LINES_PER_S = 4
LINES_AT_ONCE = 40
GOOD = {"x": 1, "color": "red", "member": True}


def valid_ids(settings: DriftlineSettings) -> set[str]:
    """The example ids on ``examples.valid``. A batch whose commit failed in the outage (the
    group forgot the member) is redelivered and re-emitted with the same ids, so the
    records can outnumber the examples: at least once, de-duplicated downstream."""
    return {
        decode(r.value, LabelledExample).example_id  # type: ignore[attr-defined]
        for r in read_all(settings, "examples.valid")
    }


def test_validator_logs_a_broker_outage_quietly_and_recovers(
    own_broker: Callable[..., Any], tmp_path: Path
) -> None:
    broker = own_broker()
    settings = DriftlineSettings.load(
        env={}, kafka_bootstrap=broker.start(), topic_prefix="o.", data_dir=tmp_path
    )
    admin = make_admin(settings)
    try:
        ensure_topics(admin, Topics(settings.topic_prefix).all())
    finally:
        admin.close()
    publish(settings, stream_config("s", 1))
    send_examples(settings, ["s"], range(3), features=GOOD, label=True)
    proc = ValidatorProcess(settings, tmp_path)
    try:
        wait_until(lambda: len(valid_ids(settings)) == 3, 90, "first examples", proc)
        before = len(proc.log_path.read_text().splitlines())

        stopped = time.monotonic()
        broker.stop()
        time.sleep(OUTAGE_S)  # the outage itself: nothing to poll for
        broker.start()
        send_examples(settings, ["s"], range(3, 6), features=GOOD, label=True)
        six = {f"e{i}" for i in range(6)}
        wait_until(lambda: valid_ids(settings) == six, 60, "recovery", proc)
        elapsed = time.monotonic() - stopped

        log = proc.log_path.read_text().splitlines()[before:]
        assert len(log) <= LINES_PER_S * elapsed + LINES_AT_ONCE, "\n".join(log[-50:])
        wait_until(
            lambda: "similar lines suppressed in the last" in proc.log_path.read_text(),
            15,
            "the suppression summary",
            proc,
        )
        assert proc.terminate() == 0, proc.log_tail()
    finally:
        proc.close()
