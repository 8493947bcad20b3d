"""Scale-out: a second validator in the group takes partitions over with their duplicate index."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from services.common.kafka_client import make_admin
from services.common.settings import DriftlineSettings
from tests.integration.validator_support import (
    ValidatorProcess,
    caught_up,
    publish,
    read_all,
    send_examples,
    stream_config,
    wait_until,
)

# a rebalance between validators: both Kafka backends (make test)
pytestmark = pytest.mark.backends

STREAMS = [f"r{i}" for i in range(8)]


def produce(settings: DriftlineSettings, numbers: range) -> set[str]:
    features = {"x": 1.0, "color": "blue", "member": True}
    return send_examples(settings, STREAMS, numbers, features=features, label=False)


def members_with_partitions(settings: DriftlineSettings) -> int:
    group = f"{settings.topic_prefix}validator"
    admin = make_admin(settings)
    try:
        described = admin.describe_groups([group]).get(group, {})
    finally:
        admin.close()
    if described.get("group_state") != "Stable":
        return 0
    return sum(
        1
        for member in described.get("members", [])
        if any(a["partitions"] for a in member["member_assignment"]["assigned_partitions"])
    )


@pytest.mark.slow
def test_second_validator_rebuilds_the_index_of_the_partitions_it_takes(
    settings_factory: Callable[..., DriftlineSettings], tmp_path: Path
) -> None:
    settings = settings_factory()
    publish(settings, *(stream_config(s, 1) for s in STREAMS))
    produce(settings, range(2000))
    first = ValidatorProcess(settings, tmp_path)
    second: ValidatorProcess | None = None
    try:
        wait_until(lambda: caught_up(settings), 90, "the first validator to catch up", first)
        second = ValidatorProcess(settings, tmp_path)
        wait_until(
            lambda: members_with_partitions(settings) == 2,
            90,
            "both validators to own partitions",
            second,
        )
        duplicates = produce(settings, range(2000))  # the same example ids, new event ids
        fresh = produce(settings, range(2000, 2500))
        wait_until(lambda: caught_up(settings), 90, "the group to catch up", second)
    finally:
        assert first.terminate() == 0, first.log_tail()
        if second is not None:
            assert second.terminate() == 0, second.log_tail()

    dead = [json.loads(r.value) for r in read_all(settings, "examples.dead")]
    reasons = Counter(d["reason"] for d in dead if d["source_event_id"] in duplicates)
    assert reasons == {"duplicate_example_id": len(duplicates)}
    valid = {json.loads(r.value)["raw_event_id"] for r in read_all(settings, "examples.valid")}
    assert fresh <= valid and not duplicates & valid
    rebuilt = [
        int(n)
        for n in re.findall(r"rebuilt from (\d+) valid examples", second.log_path.read_text())
    ]
    assert any(n > 0 for n in rebuilt), second.log_tail()  # it judged partitions it took over
