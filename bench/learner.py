"""learner: examples/s learned through the real broker (valid topic -> learner process,
checkpoints included) against an in-process River loop (predict_one + learn_one, same
pipeline, same data); and the prequential accuracy against River's progressive_val_score.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from river import evaluate, metrics
from river.datasets import synth

from bench.harness import Result, Stopwatch, broker_settings, cpu_seconds, peak_rss_mb
from schemas import LabelledExample, MetricSnapshot, StreamConfig, Topics
from services.common.codec import decode, encode, event_key
from services.common.kafka_client import (
    assign_all,
    ensure_topics,
    make_admin,
    make_consumer,
    make_producer,
)
from services.learner.pipeline import build_pipeline

N_FEATURES = 25
KEY = "bench-signing-key-0123456789"


def _config() -> StreamConfig:
    return StreamConfig.model_validate(
        {
            "stream": "bench",
            "version": 1,
            "spec": {
                "features": [{"name": f"x{i}", "type": "number"} for i in range(N_FEATURES)],
                "label": {"kind": "class", "classes": [0, 1]},
            },
            "model": {"pipeline": "preprocessing.StandardScaler | linear_model.LogisticRegression"},
            "policy": {
                "online_version_every": 10**9,
                "rolling_window": 1000,
                "drift": {"data_drift": False},
            },
        }
    )


def _data(n: int) -> list[tuple[dict[str, float], int]]:
    stream = synth.Hyperplane(seed=42, n_features=N_FEATURES)
    return [
        ({f"x{k}": float(v) for k, v in x.items()}, int(y)) for x, y in itertools.islice(stream, n)
    ]


def run(quick: bool) -> Result:
    """Run the benchmark (quick: 20,000 examples; else 100,000)."""
    n = 20_000 if quick else 100_000
    cfg = _config()
    data = _data(n)

    model = build_pipeline(cfg.model, cfg.spec)
    with Stopwatch() as base:
        for x, y in data:
            model.predict_one(x)
            model.learn_one(x, y)
    baseline = n / base.seconds
    rows_any: list[tuple[dict[Any, Any], Any]] = list(data)
    accuracy: Any = metrics.Accuracy()  # type: ignore[no-untyped-call]
    river_acc = evaluate.progressive_val_score(
        rows_any, build_pipeline(cfg.model, cfg.spec), accuracy
    ).get()

    checkpoint_every = 5000
    with broker_settings(signing_key=KEY, signing_key_id="bench") as settings:
        topics = Topics(settings.topic_prefix)
        admin = make_admin(settings)
        ensure_topics(admin, topics.all())
        admin.close()
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
            producer.send(topics.name("examples.valid"), key=event_key(ex), value=encode(ex))
        producer.flush()
        producer.close()

        group = f"bench-{uuid.uuid4().hex[:6]}"
        env = os.environ | {
            "DRIFTLINE_KAFKA_BOOTSTRAP": settings.bootstrap,
            "DRIFTLINE_TOPIC_PREFIX": settings.topic_prefix,
            "DRIFTLINE_DATA_DIR": str(settings.data_path),
            "DRIFTLINE_SIGNING_KEY": KEY,
            "DRIFTLINE_SIGNING_KEY_ID": "bench",
            "DRIFTLINE_LEARNER_GROUP_ID": group,
            "DRIFTLINE_LEARNER_CHECKPOINT_EVERY": str(checkpoint_every),
            "DRIFTLINE_LEARNER_METRICS_EVERY": "1000",
            "DRIFTLINE_LEARNER_METRICS_PORT": "0",
            "PYTHONPATH": str(Path.cwd()),
        }
        metrics_topic = topics.name("metrics")
        watcher = make_consumer(settings, group_id=None)
        assign_all(watcher, metrics_topic)
        proc = subprocess.Popen(
            [sys.executable, "-m", "services.learner"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        # A metric snapshot every 1,000 examples: its arrival marks the learner's progress.
        marks: dict[int, float] = {}
        cpu: dict[int, float] = {}
        final: dict[str, float] = {}
        rss = 0.0
        try:
            deadline = time.monotonic() + 900
            while n not in marks:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"the learner stopped or stalled at {max(marks, default=0)}")
                for records in watcher.poll(timeout_ms=200).values():
                    now = time.perf_counter()
                    for record in records:
                        snap = decode(record.value, MetricSnapshot)
                        assert isinstance(snap, MetricSnapshot)  # noqa: S101
                        if snap.example_count not in marks:
                            marks[snap.example_count] = now
                            cpu[snap.example_count] = cpu_seconds(proc.pid)
                        if snap.example_count == n:
                            final = snap.values
                rss = max(rss, peak_rss_mb(proc.pid))
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            watcher.close()
    first = min(marks)
    value = (n - first) / (marks[n] - marks[first])
    per_cpu = (n - first) / max(cpu[n] - cpu[first], 1e-9)
    served_acc = final["accuracy"]
    rows = [
        ("in-process River loop (baseline)", n, baseline),
        (f"through the broker, checkpoints every {checkpoint_every}", n - first, value),
        ("prequential accuracy: learner", n, served_acc),
        ("prequential accuracy: progressive_val_score", n, river_acc),
        ("through the broker, per learner CPU-second", n - first, per_cpu),
        ("learner peak RSS (MB)", "", rss),
    ]
    return Result(
        bench="learner",
        value=value,
        unit="examples/s",
        baseline=baseline,
        rows=rows,
        columns=("measure", "examples", "value"),
        extra={
            "accuracy": served_acc,
            "river_accuracy": river_acc,
            "accuracy_identical": served_acc == river_acc,
            "peak_rss_mb": round(rss, 1),
            "per_cpu_second": round(per_cpu, 1),
        },
    )
