"""fanout: many streams cost what one does. The same examples through the real learner
process on the real broker, once as 1 stream and once spread over 1,000 streams at once
(round-robin, each stream on its home partition of the valid topic).

Per run: examples/s (between two scrapes of the learner's ``/metrics`` taken while it
learns), learner CPU per example (the process's user + system time, all threads, from
the first scrape that shows learning to its exit after SIGTERM, so the last checkpoint,
of every stream not saved yet, is counted), the checkpoint time it exports
(``learner_checkpoint_seconds``, while learning) and the registry's growth (database
with its WAL, and artifact store). ``ratio`` = (1-stream CPU per example) / (1,000-stream
CPU per example): 1.0 when the fan-out costs nothing.
"""

from __future__ import annotations

import itertools
import os
import re
import resource
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from river.datasets import synth

from bench.harness import SIGNING_KEY, Result, broker_settings, cpu_seconds, logistic_config
from schemas import LabelledExample, StreamConfig, Topics
from services.common.codec import encode, event_key
from services.common.kafka_client import ensure_topics, make_admin, make_producer
from services.common.settings import DriftlineSettings
from services.localbroker.ports import free_ports

N_FEATURES = 10
KEY = SIGNING_KEY
SCRAPE_S = 0.5
Rows = list[tuple[dict[str, float], int]]


def config(stream: str) -> StreamConfig:
    """The stream's config: a scaled logistic regression, no versions, no data drift."""
    return logistic_config(stream, features=N_FEATURES, data_drift=False)


@dataclass(frozen=True)
class Run:
    """One learner process's measurements."""

    streams: int
    examples: int
    per_second: float
    cpu_us_per_example: float
    checkpoints: int
    checkpoint_seconds: float
    registry_bytes: int
    stop_cpu_seconds: float

    @property
    def checkpoint_ms(self) -> float:
        """Mean time of one checkpoint."""
        return 1000 * self.checkpoint_seconds / max(self.checkpoints, 1)


def _data(n: int) -> Rows:
    stream = synth.Hyperplane(seed=42, n_features=N_FEATURES)
    return [
        ({f"x{k}": float(v) for k, v in x.items()}, int(y)) for x, y in itertools.islice(stream, n)
    ]


def _scrape(port: int) -> dict[str, float]:
    """The learner's examples learned, and its checkpoints' count and total seconds."""
    url = f"http://127.0.0.1:{port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - our own endpoint
        text = response.read().decode()
    out = {"examples": 0.0, "checkpoints": 0.0, "checkpoint_seconds": 0.0}
    for line in text.splitlines():
        if line.startswith("driftline_learner_examples_total{"):
            out["examples"] += float(line.rsplit(" ", 1)[1])
        elif m := re.match(r"driftline_learner_checkpoint_seconds_(count|sum) (\S+)", line):
            out["checkpoints" if m[1] == "count" else "checkpoint_seconds"] = float(m[2])
    return out


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _run(
    settings: DriftlineSettings, data: list[tuple[dict[str, float], int]], streams: int
) -> Run:
    """Publish the configs and the examples under a fresh prefix, then time the learner."""
    n = len(data)
    topics = Topics(f"{settings.topic_prefix}s{streams}.")
    admin = make_admin(settings)
    ensure_topics(admin, topics.all())
    admin.close()
    names = [f"s{i:04d}" for i in range(streams)]
    producer = make_producer(settings)
    for name in names:
        producer.send(topics.name("streams"), key=name.encode(), value=encode(config(name)))
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    for i, (x, y) in enumerate(data):
        ex = LabelledExample(
            stream=names[i % streams],
            example_id=str(i),
            features=x,
            label=y,
            event_time=t0 + timedelta(seconds=i),
            spec_version=1,
        )
        producer.send(topics.name("examples.valid"), key=event_key(ex), value=encode(ex))
    producer.flush()
    producer.close()

    data_dir = settings.data_path / f"learner-{streams}"
    data_dir.mkdir()
    (port,) = free_ports(1)
    env = os.environ | {
        "DRIFTLINE_KAFKA_BOOTSTRAP": settings.bootstrap,
        "DRIFTLINE_TOPIC_PREFIX": topics.prefix,
        "DRIFTLINE_DATA_DIR": str(data_dir),
        "DRIFTLINE_SIGNING_KEY": KEY,
        "DRIFTLINE_SIGNING_KEY_ID": "bench",
        "DRIFTLINE_LEARNER_GROUP_ID": f"bench-{uuid.uuid4().hex[:6]}",
        "DRIFTLINE_LEARNER_METRICS_EVERY": str(10**9),  # no snapshots: the same in both runs
        "DRIFTLINE_LEARNER_METRICS_PORT": str(port),
        "PYTHONPATH": str(Path.cwd()),
    }
    before = _children_cpu()
    proc = subprocess.Popen(
        [sys.executable, "-m", "services.learner"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=(data_dir / "learner.log").open("wb"),
    )
    samples: list[tuple[float, float, float]] = []  # (time, cpu, examples), taken together
    last: dict[str, float] = {}
    try:
        deadline = time.monotonic() + 600
        while not samples or samples[-1][2] < n:
            if time.monotonic() > deadline or proc.poll() is not None:
                tail = (data_dir / "learner.log").read_text()[-2000:]
                raise RuntimeError(f"the learner stopped or stalled ({streams} streams): {tail}")
            time.sleep(SCRAPE_S)  # a sampling period, not a wait for a result
            try:
                last = _scrape(port)
            except OSError:
                continue  # not listening yet
            samples.append((time.perf_counter(), cpu_seconds(proc.pid), last["examples"]))
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    learning = [s for s in samples if 0 < s[2] < n]
    first = learning[0] if learning else next(s for s in samples if s[2] > 0)
    end = learning[-1] if len(learning) > 1 else samples[-1]
    if end[2] <= first[2]:
        end = samples[-1]
    done = end[2] - first[2]
    lifetime = _children_cpu() - before  # the learner's, exited and waited for
    return Run(
        streams=streams,
        examples=n,
        per_second=done / max(end[0] - first[0], 1e-9),
        cpu_us_per_example=1e6 * (lifetime - first[1]) / max(n - first[2], 1),
        stop_cpu_seconds=lifetime - samples[-1][1],
        checkpoints=int(last["checkpoints"]),
        checkpoint_seconds=last["checkpoint_seconds"],
        registry_bytes=_size(data_dir),
    )


def run(quick: bool) -> Result:
    """Run the benchmark (quick: 20,000 examples; else 100,000) with 1 and 1,000 streams."""
    n = 20_000 if quick else 100_000
    data = _data(n)
    with broker_settings(signing_key=KEY, signing_key_id="bench") as settings:
        one = _run(settings, data, 1)
        many = _run(settings, data, 1000)
    rows = []
    for r in (one, many):
        rows += [
            (f"{r.streams} stream(s): examples/s", r.examples, r.per_second),
            (
                f"{r.streams} stream(s): learner CPU µs per example",
                r.examples,
                r.cpu_us_per_example,
            ),
            (f"{r.streams} stream(s): checkpoints (while learning)", "", r.checkpoints),
            (f"{r.streams} stream(s): mean checkpoint ms", "", r.checkpoint_ms),
            (f"{r.streams} stream(s): CPU s at stop (last checkpoint)", "", r.stop_cpu_seconds),
            (f"{r.streams} stream(s): registry MB (db + artifacts)", "", r.registry_bytes / 1e6),
        ]
    return Result(
        bench="fanout",
        value=1e6 / many.cpu_us_per_example,
        unit="examples per CPU-second, 1,000 streams",
        baseline=1e6 / one.cpu_us_per_example,
        rows=rows,
        columns=("measure", "examples", "value"),
        extra={
            "per_second_1": round(one.per_second, 1),
            "per_second_1000": round(many.per_second, 1),
            "cpu_us_1": round(one.cpu_us_per_example, 1),
            "cpu_us_1000": round(many.cpu_us_per_example, 1),
            "checkpoint_ms_1": round(one.checkpoint_ms, 1),
            "checkpoint_ms_1000": round(many.checkpoint_ms, 1),
            "registry_mb_1": round(one.registry_bytes / 1e6, 2),
            "registry_mb_1000": round(many.registry_bytes / 1e6, 2),
            "stop_cpu_s_1": round(one.stop_cpu_seconds, 2),
            "stop_cpu_s_1000": round(many.stop_cpu_seconds, 2),
        },
    )
