"""validator: events/s validated through the real broker (raw -> valid) by the running
validator, against in-process judge + encode of the same bytes in the same run.

The raw examples (all valid, 10 numbers, a category and a bool each, 4 streams) are
produced before the validator starts; the clock runs from its first valid example to
the last, so start-up (group join, reading the streams topic) is reported apart.
The validator's peak RSS is its VmHWM. ``DRIFTLINE_BENCH_PROFILE=FILE`` attaches py-spy
(when installed) to the validator and writes a speedscope profile to FILE (extra py-spy
options in ``DRIFTLINE_BENCH_PROFILE_ARGS``, e.g. ``--gil``).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kafka import TopicPartition

from bench.harness import Result, Stopwatch, broker_settings, peak_rss_mb
from bench.roundtrip import make_events
from schemas import StreamConfig, Topics
from services.common.codec import encode, event_key
from services.common.kafka_client import ensure_topics, make_admin, make_consumer, make_producer
from services.common.settings import DriftlineSettings
from services.validator.dedupe import DuplicateIndex
from services.validator.rules import Position, QualityStats, judge
from services.validator.specs import SpecRegistry

AIM_RATIO = 0.4
AIM_RSS_MB = 300.0
STREAMS = ("s0", "s1", "s2", "s3")


def configs() -> list[StreamConfig]:
    """The spec every benchmark example meets."""
    spec = {
        "features": [{"name": f"x{j}", "type": "number", "min": 0, "max": 1} for j in range(10)]
        + [
            {"name": "c1", "type": "category", "categories": ["a", "b", "c"]},
            {"name": "c2", "type": "bool"},
        ],
        "label": {"kind": "class", "classes": [False, True]},
        "max_future_s": 10 * 365 * 86400,
    }
    return [StreamConfig.model_validate({"stream": s, "version": 1, "spec": spec}) for s in STREAMS]


def corpus(n: int) -> list[tuple[bytes | None, bytes]]:
    """``n`` raw examples as (key, value) bytes."""
    return [(event_key(e), encode(e)) for e in make_events(n)]


def in_process(messages: list[tuple[bytes | None, bytes]]) -> tuple[float, float]:
    """Wall and CPU seconds the pure core takes to judge and encode every message (the
    baseline)."""
    registry = SpecRegistry()
    for config in configs():
        registry.apply(config)
    indexes = {key: DuplicateIndex() for key in {k for k, _ in messages}}
    stats = QualityStats()
    now = datetime.now(UTC)
    cpu0 = time.process_time()
    with Stopwatch() as watch:
        for offset, (key, value) in enumerate(messages):
            out = judge(
                value, Position("raw", 0, offset, key), registry, indexes[key], now, stats=stats
            )
            encode(out)
    if stats.outcomes.total() != len(messages) or any(o != "valid" for _, o in stats.outcomes):
        raise RuntimeError(f"the baseline rejected examples: {dict(stats.rejected)}")
    return watch.seconds, time.process_time() - cpu0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a live process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _prepare(settings: DriftlineSettings, messages: list[tuple[bytes | None, bytes]]) -> None:
    topics = Topics(settings.topic_prefix)
    admin = make_admin(settings)
    try:
        ensure_topics(admin, topics.all())
    finally:
        admin.close()
    producer = make_producer(settings)
    try:
        for config in configs():
            producer.send(topics.name("streams"), key=config.stream.encode(), value=encode(config))
        raw = topics.name("examples.raw")
        for key, value in messages:
            producer.send(raw, key=key, value=value)
        producer.flush()
    finally:
        producer.close()


def _profiler(pid: int, path: str) -> subprocess.Popen[bytes] | None:
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        print(f"py-spy not found: no profile written to {path}", file=sys.stderr)
        return None
    cmd = [
        spy,
        "record",
        "--pid",
        str(pid),
        "--format",
        "speedscope",
        "--output",
        path,
        "--rate",
        "200",
        *os.environ.get("DRIFTLINE_BENCH_PROFILE_ARGS", "").split(),
    ]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def through_broker(settings: DriftlineSettings, n: int, client: str) -> dict[str, Any]:
    """Run the validator (on the ``client`` backend) on the prepared topic; measure its
    throughput, CPU and peak RSS."""
    valid = Topics(settings.topic_prefix).name("examples.valid")
    # DRIFTLINE_VALIDATOR_* from the environment pass through (to try batch sizes, say)
    keep = ("DRIFTLINE_VALIDATOR_", "DRIFTLINE_CACHE_DIR")
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("DRIFTLINE_") or k.startswith(keep)
    } | {
        "DRIFTLINE_KAFKA_BOOTSTRAP": settings.bootstrap,
        "DRIFTLINE_TOPIC_PREFIX": settings.topic_prefix,
        "DRIFTLINE_DATA_DIR": str(settings.data_path),
        "DRIFTLINE_LOG_LEVEL": "WARNING",
        "DRIFTLINE_VALIDATOR_METRICS_PORT": "0",
        "DRIFTLINE_KAFKA_CLIENT": client,
    }
    watcher = make_consumer(settings, group_id=None, client_id="driftline-bench")
    partitions = [TopicPartition(valid, p) for p in sorted(watcher.partitions_for_topic(valid))]
    with tempfile.TemporaryFile() as log:
        started = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "services.validator"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        profile = os.environ.get("DRIFTLINE_BENCH_PROFILE")
        spy = _profiler(proc.pid, profile) if profile else None
        try:
            first_at = first_count = None
            cpu_at_first = 0.0
            done = 0
            deadline = time.monotonic() + 900
            while done < n:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    raise RuntimeError(
                        f"validator stopped or stalled at {done}/{n}:\n"
                        f"{log.read().decode(errors='replace')[-3000:]}"
                    )
                done = sum(watcher.end_offsets(partitions).values())
                if done and first_at is None:
                    first_at, first_count = time.perf_counter(), done
                    cpu_at_first = cpu_seconds(proc.pid)
                time.sleep(0.05)
            finished = time.perf_counter()
            cpu = cpu_seconds(proc.pid) - cpu_at_first
            rss = peak_rss_mb(proc.pid)
        finally:
            watcher.close()
            proc.send_signal(signal.SIGTERM)
            try:
                code = proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                code = proc.wait()
            if spy is not None:
                spy.wait(timeout=60)
    if code != 0:
        raise RuntimeError(f"validator exited with {code}")
    assert first_at is not None and first_count is not None  # noqa: S101 - set by the loop
    measured = n - first_count
    seconds = finished - first_at
    return {
        "events": measured,
        "seconds": seconds,
        "rate": measured / seconds,
        "startup_s": first_at - started,
        "cpu_s": cpu,
        "rss_mb": rss,
    }


def run(quick: bool) -> Result:
    """Run the benchmark once per Kafka backend; ``quick`` uses 20,000 examples instead of
    100,000. ``ratio`` is the configured backend's CPU ratio (DRIFTLINE_KAFKA_CLIENT,
    kafka-python by default): in-process CPU-seconds per message over the validator
    process's (all its threads), the in-process loop measured just before each run."""
    n = 20_000 if quick else 100_000
    messages = corpus(n)
    clients = ("kafka-python", "confluent")
    runs: dict[str, tuple[tuple[float, float], dict[str, Any]]] = {}
    with broker_settings() as base_settings:
        for client in clients:
            settings = base_settings.model_copy(
                update={"topic_prefix": f"{base_settings.topic_prefix}{client}."}
            )
            _prepare(settings, messages)
            base = in_process(messages)
            runs[client] = base, through_broker(settings, n, client)
        configured = base_settings.kafka_client

    def ratios(client: str) -> tuple[float, float]:
        (base_wall, base_cpu), got = runs[client]
        wall = got["rate"] / (n / base_wall)
        cpu = (got["events"] / got["cpu_s"]) / (n / base_cpu) if got["cpu_s"] else 0.0
        return wall, cpu

    rows: list[tuple[Any, ...]] = []
    for client in clients:
        (base_wall, base_cpu), got = runs[client]
        wall, cpu = ratios(client)
        per_cpu = got["events"] / got["cpu_s"] if got["cpu_s"] else 0.0
        engine = (
            "faust" if os.environ.get("DRIFTLINE_VALIDATOR_ENGINE") == "faust" else "batch loop"
        )
        rows += [
            (f"{client}: in-process judge + encode", n, n / base_wall, n / base_cpu, "", ""),
            (
                f"{client}: validator ({engine}), raw -> valid",
                got["events"],
                got["rate"],
                per_cpu,
                wall,
                cpu,
            ),
            (f"{client}: start-up to first valid (s)", "", got["startup_s"], "", "", ""),
            (f"{client}: peak RSS (MB)", "", got["rss_mb"], "", "", ""),
        ]
    (base_wall, base_cpu), got = runs[configured]
    wall_ratio, cpu_ratio = ratios(configured)
    per_cpu = got["events"] / got["cpu_s"] if got["cpu_s"] else 0.0
    rss = max(r[1]["rss_mb"] for r in runs.values())
    return Result(
        bench="validator",
        value=per_cpu,
        unit="events/CPU-s",
        baseline=n / base_cpu,
        rows=rows,
        columns=("measure", "events", "per s", "per CPU-s", "wall ratio", "CPU ratio"),
        extra={
            "events": n,
            "kafka_client": configured,
            "cpu_ratio": round(cpu_ratio, 4),
            "wall_ratio": round(wall_ratio, 4),
            "events_per_s": round(got["rate"], 1),
            **{
                f"{c.replace('-', '_')}_{k}": round(v, 4)
                for c in clients
                for k, v in zip(("wall_ratio", "cpu_ratio"), ratios(c), strict=True)
            },
            "rss_mb": round(rss, 1),
            "startup_s": round(got["startup_s"], 2),
            "aim_ratio": AIM_RATIO,
            "aim_rss_mb": AIM_RSS_MB,
            "aims_met": cpu_ratio >= AIM_RATIO and rss <= AIM_RSS_MB,
        },
    )
