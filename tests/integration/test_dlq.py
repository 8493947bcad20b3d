"""``driftline dlq``: letters counted once however often they were written, and a replay
that re-injects each message once per filter, even when the validator rejects it again."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from services.cli.main import main
from services.common.kafka_client import make_producer
from services.common.settings import DriftlineSettings
from tests.integration.validator_support import (
    caught_up,
    publish,
    read_all,
    running_validator,
    send_examples,
    stream_config,
    topic_total,
    wait_until,
)

OUT_OF_RANGE = {"x": 15, "color": "red", "member": True}  # the spec's x is 0..10


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    capsys.readouterr()
    code = main([*argv, "--json"])
    out = capsys.readouterr()
    assert code == 0, out.err
    return json.loads(out.out)


def replayed(capsys: pytest.CaptureFixture[str], *argv: str) -> int:
    rows = cli(capsys, "dlq", "replay", "--reason", "out_of_range", *argv)
    return sum(row["replayed"] for row in rows)


def duplicate_every_letter(settings: DriftlineSettings) -> int:
    """Write every record of the dead-letter topic again, byte for byte, on its partition:
    what the validator does when it re-judges a batch after a crash."""
    records = read_all(settings, "examples.dead")
    producer = make_producer(settings)
    try:
        for r in records:
            producer.send(r.topic, key=r.key, value=r.value, partition=r.partition)
        producer.flush()
    finally:
        producer.close()
    return len(records)


def test_replay_three_times_reinjects_once_and_stats_count_distinct_letters(
    cli_env: DriftlineSettings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = cli_env
    publish(settings, stream_config("shapes", 1))
    with running_validator(settings, tmp_path) as validator:
        send_examples(settings, ["shapes"], range(3), features=OUT_OF_RANGE, label=True)
        wait_until(lambda: caught_up(settings), 90, "the validator to judge", validator)
        assert topic_total(settings, "examples.dead") == 3

        # The spec is not fixed: every replayed message is rejected again as a new letter.
        # Running the same replay again must not send those again.
        sent = []
        for _ in range(3):
            sent.append(replayed(capsys))
            wait_until(lambda: caught_up(settings), 60, "the replay to be judged", validator)
        assert sent == [3, 0, 0]
        assert topic_total(settings, "examples.raw") == 6
        assert topic_total(settings, "examples.dead") == 6  # 3 letters, 3 rejected again

    assert duplicate_every_letter(settings) == 6
    stats = cli(capsys, "dlq", "stats")
    assert stats == [
        {
            "stream": "shapes",
            "reason": "out_of_range",
            "count": 6,  # letters: 3 rejections and 3 re-rejections, each once
            "messages": 3,
            "duplicates": 6,  # the copies written again, not counted
        }
    ]
    shown = cli(capsys, "dlq", "show", "--reason", "out_of_range")
    assert len(shown) == 6 and {row["copies"] for row in shown} == {2}

    # --again forgets the filter's memory: each message once, not once per letter or copy
    assert replayed(capsys, "--again", "--dry-run") == 3
    raw = topic_total(settings, "examples.raw")
    assert replayed(capsys, "--again") == 3
    assert replayed(capsys) == 0
    assert topic_total(settings, "examples.raw") == raw + 3
    # and another filter remembers on its own
    assert replayed(capsys, "--stream", "shapes") == 3
