"""Helpers of the validator's integration tests: run it as a subprocess, read its topics."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kafka import TopicPartition
from kafka.errors import KafkaError

from schemas import LabelledExample, StreamConfig, Topics
from services.cli.main import main
from services.common.codec import encode, event_key
from services.common.kafka_client import end_offsets, make_admin, make_producer, read_between
from services.common.settings import DriftlineSettings

SPEC: dict[str, Any] = {
    "features": [
        {"name": "x", "type": "number", "min": 0, "max": 10},
        {"name": "color", "type": "category", "categories": ["red", "green", "blue"]},
        {"name": "member", "type": "bool", "nullable": True},
    ],
    "label": {"kind": "class", "classes": [False, True]},
    "max_future_s": 3600,
}


def stream_config(stream: str, version: int, **spec: Any) -> StreamConfig:
    """A published-looking config of ``stream`` (the test spec, with overrides)."""
    return StreamConfig.model_validate(
        {"stream": stream, "version": version, "spec": {**SPEC, **spec}}
    )


def publish(settings: DriftlineSettings, *configs: StreamConfig) -> None:
    """Put configs on the streams topic directly (the CLI's path is tested on its own)."""
    topic = Topics(settings.topic_prefix).name("streams")
    producer = make_producer(settings)
    try:
        for config in configs:
            producer.send(topic, key=config.stream.encode(), value=encode(config))
        producer.flush()
    finally:
        producer.close()


def wait_until(
    check: Callable[[], Any], timeout_s: float, what: str, proc: ValidatorProcess | None = None
) -> Any:
    """Poll ``check`` until it returns something truthy; fail naming ``what`` at the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if result:
            return result
        if proc is not None and proc.popen.poll() is not None:
            raise AssertionError(
                f"validator exited ({proc.popen.returncode}) while waiting for "
                f"{what}:\n{proc.log_tail()}"
            )
        if time.monotonic() > deadline:
            tail = f"\n{proc.log_tail()}" if proc is not None else ""
            raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}{tail}")
        time.sleep(0.2)


class ValidatorProcess:
    """``python -m services.validator`` on the test's settings."""

    def __init__(
        self, settings: DriftlineSettings, workdir: Path, metrics_port: int = 0, **env: str
    ) -> None:
        self.settings = settings
        self.metrics_port = metrics_port
        self.log_path = workdir / f"validator-{time.monotonic_ns()}.log"
        environment = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTLINE_")} | {
            "DRIFTLINE_KAFKA_BOOTSTRAP": settings.bootstrap,
            "DRIFTLINE_TOPIC_PREFIX": settings.topic_prefix,
            "DRIFTLINE_DATA_DIR": str(settings.data_path),
            "DRIFTLINE_KAFKA_CLIENT": settings.kafka_client,
            "DRIFTLINE_LOG_LEVEL": "INFO",
            "DRIFTLINE_VALIDATOR_METRICS_PORT": str(metrics_port),
            "DRIFTLINE_VALIDATOR_SESSION_TIMEOUT_S": "3",
            "DRIFTLINE_VALIDATOR_COMMIT_INTERVAL_S": "0.5",
            **env,
        }
        self._log = self.log_path.open("wb")
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "services.validator"],
            env=environment,
            cwd=workdir,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    def terminate(self, timeout_s: float = 30) -> int:
        """SIGTERM, then wait; returns the exit code."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
        try:
            return self.popen.wait(timeout=timeout_s)
        finally:
            self.close()

    def kill(self) -> None:
        """kill -9."""
        self.popen.kill()
        self.popen.wait(timeout=30)
        self.close()

    def close(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(timeout=30)
        self._log.close()

    def metrics(self) -> str:
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - local http
            return str(response.read().decode())

    def metric(self, line_prefix: str) -> float | None:
        """The value of the first metric line starting with ``line_prefix``."""
        try:
            text = self.metrics()
        except OSError:
            return None
        for line in text.splitlines():
            if line.startswith(line_prefix):
                return float(line.rsplit(" ", 1)[1])
        return None


@contextmanager
def running_validator(
    settings: DriftlineSettings, workdir: Path, **kwargs: Any
) -> Iterator[ValidatorProcess]:
    """A validator for the duration of the block, stopped with SIGTERM (its code checked)."""
    proc = ValidatorProcess(settings, workdir, **kwargs)
    try:
        yield proc
    except BaseException:
        proc.close()
        raise
    code = proc.terminate()
    assert code == 0, f"validator exited with {code}:\n{proc.log_tail()}"


def topic_total(settings: DriftlineSettings, suffix: str) -> int:
    """Records written to a topic so far (sum of end offsets)."""
    return sum(end_offsets(settings, Topics(settings.topic_prefix).name(suffix)).values())


def read_all(settings: DriftlineSettings, suffix: str) -> list[Any]:
    """Every record of a catalogue topic, as it is now."""
    topic = Topics(settings.topic_prefix).name(suffix)
    return list(read_between(settings, topic, {}, end_offsets(settings, topic)))


def committed(settings: DriftlineSettings, group: str, topic: str) -> dict[int, int]:
    """A consumer group's committed offsets on ``topic``, by partition."""
    admin = make_admin(settings)
    try:
        offsets = admin.list_group_offsets(group).get(group, {})
    except KafkaError as exc:  # e.g. the coordinator is not elected yet on a fresh broker
        if not exc.retriable:
            raise
        return {}
    finally:
        admin.close()
    return {
        tp.partition: meta.offset
        for tp, meta in offsets.items()
        if isinstance(tp, TopicPartition) and tp.topic == topic
    }


def caught_up(settings: DriftlineSettings) -> bool:
    """True once the validator's group has committed every raw message written so far."""
    topics = Topics(settings.topic_prefix)
    raw = topics.name("examples.raw")
    ends = {p: e for p, e in end_offsets(settings, raw).items() if e > 0}
    done = committed(settings, f"{settings.topic_prefix}validator", raw)
    return all(done.get(p, 0) >= e for p, e in ends.items())


def source_of(record: Any) -> tuple[int, int]:
    """The raw (partition, offset) an output came from: header of a valid example, or the
    dead letter's source fields."""
    headers = dict(record.headers or [])
    if "driftline-source" in headers:
        _, partition, offset = headers["driftline-source"].decode().rsplit("/", 2)
        return int(partition), int(offset)
    doc = json.loads(record.value)
    return int(doc["source_partition"]), int(doc["source_offset"])


def send_examples(
    settings: DriftlineSettings,
    streams: Sequence[str],
    numbers: Iterable[int],
    *,
    features: dict[str, Any],
    label: Any,
) -> set[str]:
    """Raw examples ``e<i>`` on ``streams[i % len(streams)]`` with the same features and
    label, each under a new event id; returns those event ids."""
    topic = Topics(settings.topic_prefix).name("examples.raw")
    producer = make_producer(settings)
    sent = set()
    try:
        for i in numbers:
            example = LabelledExample(
                stream=streams[i % len(streams)],
                example_id=f"e{i}",
                features=features,
                label=label,
                event_time=datetime.now(UTC),
            )
            sent.add(str(example.event_id))
            producer.send(topic, key=event_key(example), value=encode(example))
        producer.flush()
    finally:
        producer.close()
    return sent


def cli(capsys: pytest.CaptureFixture[str], *argv: str, code: int = 0) -> Any:
    """Run the CLI in-process: its JSON output (with ``--json``), else stdout and stderr."""
    capsys.readouterr()
    assert main(list(argv)) == code
    out = capsys.readouterr()
    if "--json" in argv and code == 0:
        return json.loads(out.out)
    return out.out + out.err
