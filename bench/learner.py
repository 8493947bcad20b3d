"""learner: the learner process's CPU per example, through the real broker (valid topic ->
learner process, checkpoints included), against the same core in-process (the stream's
``StreamLearner``: the same pipeline, metrics and drift policy, data drift on), measured in
the same run; the wall-clock ratio beside it; and the prequential accuracy against River's
``progressive_val_score``.

Two runs through the broker: the stream on one partition (its accuracy must equal
``progressive_val_score``) and spread round-robin over every partition of the valid topic.
Both runs are made once per Kafka backend (kafka-python, confluent-kafka). ``ratio`` is the
one-partition run's CPU ratio with the configured backend (``DRIFTLINE_KAFKA_CLIENT``,
kafka-python by default): in-process CPU-seconds per example over the learner process's (all
its threads, from ``/proc/<pid>/stat``); every backend's ratios are in the JSON line. Table
rows: each "in-process core" is the loop measured just before the run under it; "River
loop" is River's bare predict_one + learn_one on the same pipeline, for reference.
"""

from __future__ import annotations

import gc
import itertools
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from river import evaluate, metrics
from river.datasets import synth

from bench.harness import (
    SIGNING_KEY,
    Result,
    broker_settings,
    cpu_seconds,
    logistic_config,
    peak_rss_mb,
)
from schemas import LabelledExample, MetricSnapshot, StreamConfig, Topics
from services.common.codec import decode, encode, event_key
from services.common.kafka_client import (
    assign_all,
    ensure_topics,
    make_admin,
    make_consumer,
    make_producer,
)
from services.common.settings import DriftlineSettings
from services.learner.core import StreamLearner
from services.learner.pipeline import build_pipeline

N_FEATURES = 25
CHECKPOINT_EVERY = 5000
METRICS_EVERY = 1000
KEY = SIGNING_KEY


def _config() -> StreamConfig:
    """The bench's stream: fixed StandardScaler | LogisticRegression, data drift on (the
    policy's default windows), 0/1 labels."""
    return logistic_config("bench", features=N_FEATURES, data_drift=True)


def _data(n: int) -> list[tuple[dict[str, float], int]]:
    stream = synth.Hyperplane(seed=42, n_features=N_FEATURES)
    return [
        ({f"x{k}": float(v) for k, v in x.items()}, int(y)) for x, y in itertools.islice(stream, n)
    ]


@dataclass(frozen=True)
class InProcess:
    """One in-process loop: examples per wall second and per CPU second."""

    per_s: float
    per_cpu_s: float


def _in_process(cfg: StreamConfig, data: list[tuple[dict[str, float], int]]) -> InProcess:
    """The learner's core alone: StreamLearner.process over the data, as the service calls it
    (same pipeline, prequential metrics, drift monitor and snapshot cadence)."""
    learner = StreamLearner(cfg, metrics_every=METRICS_EVERY)
    gc.collect()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for x, y in data:
        learner.process(x, y)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return InProcess(len(data) / wall, len(data) / max(cpu, 1e-9))


def _river_loop(cfg: StreamConfig, data: list[tuple[dict[str, float], int]]) -> InProcess:
    """River's bare loop on the same pipeline (predict_one + learn_one), for reference."""
    model = build_pipeline(cfg.model, cfg.spec)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for x, y in data:
        model.predict_one(x)
        model.learn_one(x, y)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return InProcess(len(data) / wall, len(data) / max(cpu, 1e-9))


@dataclass(frozen=True)
class Through:
    """One run through the broker."""

    per_s: float
    per_cpu_s: float
    examples: int  # measured: from the first metric snapshot to the last
    partitions: int
    accuracy: float | None  # the last snapshot's cumulative accuracy (one state only)
    rss_mb: float


def _through_broker(
    base: DriftlineSettings,
    cfg: StreamConfig,
    data: list[tuple[dict[str, float], int]],
    *,
    spread: bool,
    client: str,
) -> Through:
    """Produce the data on fresh topics (one partition, or round-robin over all), run the
    learner process on them with the ``client`` backend and follow its metric snapshots to
    the end."""
    n = len(data)
    name = f"{client}.{'spread' if spread else 'one'}"
    settings = base.model_copy(
        update={
            "topic_prefix": f"{base.topic_prefix}{name}.",
            "data_dir": base.data_dir / name,
        }
    )
    topics = Topics(settings.topic_prefix)
    admin = make_admin(settings)
    ensure_topics(admin, topics.all())
    admin.close()
    valid = topics.name("examples.valid")
    partitions = topics.spec_of(valid).partitions if spread else 1
    producer = make_producer(settings)
    producer.send(topics.name("streams"), key=b"bench", value=encode(cfg))
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    for i, (x, y) in enumerate(data):
        ex = LabelledExample(
            stream="bench",
            example_id=str(i),
            features=x,
            label=y,
            event_time=t0 + timedelta(seconds=i),
            spec_version=1,
        )
        if spread:
            producer.send(valid, key=event_key(ex), value=encode(ex), partition=i % partitions)
        else:
            producer.send(valid, key=event_key(ex), value=encode(ex))
    producer.flush()
    producer.close()

    env = os.environ | {
        "DRIFTLINE_KAFKA_BOOTSTRAP": settings.bootstrap,
        "DRIFTLINE_TOPIC_PREFIX": settings.topic_prefix,
        "DRIFTLINE_DATA_DIR": str(settings.data_path),
        "DRIFTLINE_SIGNING_KEY": KEY,
        "DRIFTLINE_SIGNING_KEY_ID": "bench",
        "DRIFTLINE_KAFKA_CLIENT": client,
        "DRIFTLINE_LEARNER_GROUP_ID": f"bench-{uuid.uuid4().hex[:6]}",
        "DRIFTLINE_LEARNER_CHECKPOINT_EVERY": str(CHECKPOINT_EVERY),
        "DRIFTLINE_LEARNER_METRICS_EVERY": str(METRICS_EVERY),
        "DRIFTLINE_LEARNER_METRICS_PORT": "0",
        "PYTHONPATH": str(Path.cwd()),
    }
    watcher = make_consumer(settings, group_id=None)
    assign_all(watcher, topics.name("metrics"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "services.learner"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    # A snapshot per METRICS_EVERY examples of each partition's state: the snapshots seen so
    # far times METRICS_EVERY is the examples learned (to within a snapshot per partition).
    learned = 0
    marks: dict[int, tuple[float, float]] = {}  # examples learned -> (wall, learner CPU)
    final: dict[str, float] = {}
    rss = 0.0
    try:
        deadline = time.monotonic() + 900
        while learned < n:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"the learner stopped or stalled at {learned} examples")
            for records in watcher.poll(timeout_ms=200).values():
                now, cpu = time.perf_counter(), cpu_seconds(proc.pid)
                for record in records:
                    snap = decode(record.value, MetricSnapshot)
                    assert isinstance(snap, MetricSnapshot)  # noqa: S101
                    learned += METRICS_EVERY
                    final = snap.values
                marks.setdefault(learned, (now, cpu))
            rss = max(rss, peak_rss_mb(proc.pid))
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        watcher.close()
    first = min(marks)
    (wall0, cpu0), (wall1, cpu1) = marks[first], marks[max(marks)]
    examples = max(marks) - first
    return Through(
        per_s=examples / max(wall1 - wall0, 1e-9),
        per_cpu_s=examples / max(cpu1 - cpu0, 1e-9),
        examples=examples,
        partitions=partitions,
        accuracy=None if spread else final["accuracy"],
        rss_mb=rss,
    )


def run(quick: bool) -> Result:
    """Run the benchmark (quick: 20,000 examples; else 100,000)."""
    n = 20_000 if quick else 100_000
    cfg = _config()
    data = _data(n)
    rows_any: list[tuple[dict[Any, Any], Any]] = list(data)
    accuracy: Any = metrics.Accuracy()  # type: ignore[no-untyped-call]
    river_acc = evaluate.progressive_val_score(
        rows_any, build_pipeline(cfg.model, cfg.spec), accuracy
    ).get()
    river = _river_loop(cfg, data)

    clients = ("kafka-python", "confluent")
    with broker_settings(signing_key=KEY, signing_key_id="bench") as settings:
        # Each through-broker run has its in-process loop measured just before it, so both
        # see the same load on the machine.
        runs: dict[tuple[str, bool], tuple[InProcess, Through]] = {}
        for client in clients:
            for spread in (False, True):
                base = _in_process(cfg, data)
                runs[client, spread] = (
                    base,
                    _through_broker(settings, cfg, data, spread=spread, client=client),
                )
        configured = settings.kafka_client

    def ratios(client: str, spread: bool) -> tuple[float, float]:
        base, through = runs[client, spread]
        return through.per_s / base.per_s, through.per_cpu_s / base.per_cpu_s

    base_one, one = runs[configured, False]
    wall_ratio, cpu_ratio = ratios(configured, False)
    spread_wall_ratio, spread_cpu_ratio = ratios(configured, True)
    rows: list[tuple[Any, ...]] = []
    for client in clients:
        for spread in (False, True):
            base, through = runs[client, spread]
            wall, cpu = ratios(client, spread)
            where = f"{through.partitions} partitions" if spread else "one partition"
            rows.append((f"{client}: in-process core", n, base.per_s, base.per_cpu_s, "", ""))
            rows.append(
                (
                    f"{client}: learner, {where}",
                    through.examples,
                    through.per_s,
                    through.per_cpu_s,
                    wall,
                    cpu,
                )
            )
    rows += [
        ("River loop (reference)", n, river.per_s, river.per_cpu_s, "", ""),
        *[(f"accuracy: learner ({c})", n, runs[c, False][1].accuracy, "", "", "") for c in clients],
        ("accuracy: River", n, river_acc, "", "", ""),
        *[
            (f"peak RSS MB ({c})", "", runs[c, False][1].rss_mb, runs[c, True][1].rss_mb, "", "")
            for c in clients
        ],
    ]
    by_client = {
        f"{c.replace('-', '_')}_{k}": round(v, 4)
        for c in clients
        for k, v in zip(
            ("wall_ratio", "cpu_ratio", "spread_wall_ratio", "spread_cpu_ratio"),
            (*ratios(c, False), *ratios(c, True)),
            strict=True,
        )
    }
    return Result(
        bench="learner",
        value=one.per_cpu_s,
        unit="examples/CPU-s",
        baseline=base_one.per_cpu_s,
        rows=rows,
        columns=("measure", "examples", "per s", "per CPU-s", "wall ratio", "CPU ratio"),
        extra={
            "cpu_ratio": round(cpu_ratio, 4),
            "wall_ratio": round(wall_ratio, 4),
            "examples_per_s": round(one.per_s, 1),
            "baseline_per_s": round(base_one.per_s, 1),
            "spread_cpu_ratio": round(spread_cpu_ratio, 4),
            "spread_wall_ratio": round(spread_wall_ratio, 4),
            "cpu_ratio_vs_river_loop": round(one.per_cpu_s / river.per_cpu_s, 4),
            "accuracy": one.accuracy,
            "river_accuracy": river_acc,
            "accuracy_identical": all(runs[c, False][1].accuracy == river_acc for c in clients),
            "peak_rss_mb": round(max(t.rss_mb for _, t in runs.values()), 1),
            "kafka_client": configured,
            **by_client,
        },
    )
