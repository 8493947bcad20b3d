"""retrain: seconds from a drift event published to the trainer's alias-moved event on the
``models`` topic, for a 50,000-example window (quick: 10,000), against the bare in-process
fit of the same candidates (same search, same budget, same rows, one after another) in the
same run. The table splits the trainer's time into replay, decode, fit, scoring and
registry work, and shows the critical path of the fits (the slowest candidate), which is
what the trainer's process pool waits for when it has a worker per candidate.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from river import compose, linear_model, preprocessing
from river.datasets import synth

from bench.harness import SIGNING_KEY, Result, Stopwatch, broker_settings
from schemas import (
    CATALOGUE,
    AliasMoved,
    AliasReason,
    DeadLetter,
    LabelledExample,
    Lineage,
    StreamConfig,
    Topics,
)
from schemas.drift import DriftDetected, RetrainRequested
from services.common.codec import decode, encode, event_key
from services.common.kafka_client import (
    assign_all,
    ensure_topics,
    make_admin,
    make_consumer,
    make_producer,
)
from services.common.predictor import Predictor, Vectorizer
from services.registry.client import Registry
from services.trainer import train, window
from services.trainer.run_window import labels
from services.trainer.window import Row

KEY = SIGNING_KEY
NUMBERS = ("salary", "commission", "age", "hvalue", "hyears", "loan", "car", "zipcode")
T0 = datetime(2026, 1, 1, tzinfo=UTC)
CANDIDATES = ("logistic_regression", "hist_gradient_boosting", "random_forest")


def _config(n: int, budget_s: float) -> StreamConfig:
    return StreamConfig.model_validate(
        {
            "stream": "bench",
            "version": 1,
            "spec": {
                "features": [
                    *({"name": f, "type": "number"} for f in NUMBERS),
                    {"name": "group", "type": "category", "categories": ["low", "high"]},
                ],
                "label": {"kind": "class", "classes": [0, 1]},
            },
            "policy": {
                "segment_feature": "group",
                "max_gap": 1.0,
                "retrain": {
                    "mode": "last",  # the newest n rows, as the in-process baseline trains
                    "window": n,
                    "min_size": 100,
                    "budget_s": budget_s,
                    "candidates": list(CANDIDATES),
                },
            },
        }
    )


def _examples(n: int, before: int) -> list[LabelledExample]:
    old = itertools.islice(synth.Agrawal(classification_function=0, seed=1), before)
    new = itertools.islice(synth.Agrawal(classification_function=2, seed=2), n - before)
    out = []
    for i, (x, y) in enumerate(itertools.chain(old, new)):
        features: dict[str, Any] = {f: float(x[f]) for f in NUMBERS}
        features["group"] = "low" if x["elevel"] < 2 else "high"
        out.append(
            LabelledExample(
                stream="bench",
                example_id=str(i),
                features=features,
                label=int(y),
                event_time=T0 + timedelta(seconds=i),
                spec_version=1,
            )
        )
    return out


def _publish(settings: Any, suffix: str, events: list[Any]) -> None:
    producer = make_producer(settings)
    topic = Topics(settings.topic_prefix).name(suffix)
    for event in events:
        producer.send(topic, key=event_key(event), value=encode(event))
    producer.flush()
    producer.close()


def _champion(registry: Registry, cfg: StreamConfig, data: list[LabelledExample]) -> int:
    model = compose.Pipeline(
        compose.Select(*NUMBERS), preprocessing.StandardScaler(), linear_model.LogisticRegression()
    )
    for ex in data:
        model.learn_one(dict(ex.features), ex.label)
    version = registry.register_version(
        model="bench",
        kind="online",
        predictor=Predictor.river(model, spec=cfg.spec, spec_sha256=cfg.spec_sha256()),
        lineage=Lineage(
            event_time_start=data[0].event_time,
            event_time_end=data[-1].event_time,
            example_count=len(data),
        ),
    )
    registry.move_alias(
        model="bench",
        alias="champion",
        to_version=version.version,
        expect=None,
        reason=AliasReason.COLD_START,
        actor="bench",
    )
    return version.version


def _wait(
    consumer: Any,
    want: Any,
    timeout_s: float,
    proc: subprocess.Popen[bytes],
    check: Any = None,
) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check is not None:
            check()
        for records in consumer.poll(timeout_ms=100).values():
            for record in records:
                if record.value is None:
                    continue
                event = want(record)
                if event is not None:
                    return event
        if proc.poll() is not None:
            raise RuntimeError(f"the trainer exited with {proc.returncode}")
    raise RuntimeError("timed out waiting for the trainer")


def _bare_fit(rows: list[Row], cfg: StreamConfig, budget_s: float) -> dict[str, float]:
    """The same candidates fitted in this process, one after another, on the same rows."""
    train_rows, _ = window.split(rows, holdout_fraction=cfg.policy.retrain.holdout_fraction)
    vec = Vectorizer(cfg.spec.features)
    X, y = vec.matrix([r.features for r in train_rows]), labels(train_rows)
    seconds = {}
    for name in CANDIDATES:
        with Stopwatch() as sw:
            train.search_and_fit(
                name,
                "class",
                X,
                y,
                metric="accuracy",
                seed=cfg.policy.retrain.seed,
                budget_s=budget_s,
            )
        seconds[name] = sw.seconds
    return seconds


def run(quick: bool) -> Result:
    """Measure drift -> alias moved through a real broker and a trainer process."""
    n = 10_000 if quick else 50_000
    before = 1000 + n // 5  # the drift: a fifth of the window is from before it
    budget_s = 600.0  # generous: both sides run the whole search
    cfg = _config(n, budget_s)
    data = _examples(n + 1000, before)  # more on the topic than the window holds
    with broker_settings(signing_key=KEY, signing_key_id="k1") as settings:
        topics = Topics(settings.topic_prefix)
        admin = make_admin(settings)
        try:
            ensure_topics(admin, topics.all())
        finally:
            admin.close()
        _publish(settings, "streams", [cfg])
        _publish(settings, "examples.valid", data)
        registry = Registry.open(settings, relay=False)
        champion = _champion(registry, cfg, data[:before])
        env = os.environ | {
            "DRIFTLINE_KAFKA_BOOTSTRAP": settings.bootstrap,
            "DRIFTLINE_TOPIC_PREFIX": settings.topic_prefix,
            "DRIFTLINE_DATA_DIR": str(settings.data_path),
            "DRIFTLINE_REGISTRY_URL": settings.registry_dsn,
            "DRIFTLINE_SIGNING_KEY": KEY,
            "DRIFTLINE_SIGNING_KEY_ID": "k1",
            "DRIFTLINE_TRAINER_METRICS_PORT": "0",
            "DRIFTLINE_TRAINER_WORKERS": str(len(CANDIDATES)),
            "DRIFTLINE_LOG_LEVEL": "WARNING",
        }
        dead = make_consumer(settings, group_id=None)
        assign_all(dead, topics.name("events.dead"))
        models = make_consumer(settings, group_id=None)
        assign_all(models, topics.name("models"))
        with tempfile.TemporaryFile() as log:
            proc = subprocess.Popen(  # noqa: S603 - our own service
                [sys.executable, "-m", "services.trainer"], env=env, stdout=log, stderr=log
            )
            try:
                # warm-up: a request for an unknown stream is dead-lettered once the
                # trainer consumes, so the timing below starts with a running trainer
                _publish(settings, "drift", [RetrainRequested(stream="nobody")])
                _wait(
                    dead,
                    lambda r: decode(r.value, DeadLetter),
                    180,
                    proc,
                )
                event = DriftDetected(
                    stream="bench",
                    kind="concept",
                    detector="ADWIN",
                    topic=topics.name("examples.valid"),
                    partition=0,
                    offset=before,
                    event_time=data[before].event_time,
                    example_count=len(data),
                    model_version=champion,
                )
                started = time.perf_counter()
                _publish(settings, "drift", [event])

                def moved(record: Any) -> AliasMoved | None:
                    found = decode(record.value, CATALOGUE["models"])
                    if isinstance(found, AliasMoved) and found.actor == "trainer":
                        return found
                    return None

                def finished_without_move() -> None:
                    runs = registry.list_runs(model="bench")
                    if runs and runs[0].status not in ("running", "succeeded"):
                        raise RuntimeError(f"the run ended without a move: {runs[0].decision}")

                move = _wait(models, moved, 1800, proc, finished_without_move)
                total = time.perf_counter() - started
            finally:
                proc.terminate()
                proc.wait(timeout=60)
                dead.close()
                models.close()
        run_ = registry.list_runs(model="bench")[0]
        timings: dict[str, float] = run_.window.get("timings", {})
        versions = {v.version: v for v in registry.list_versions(model="bench")}
        registry.close()
    rows = window.select(
        [Row(0, i, e.example_id, e.features, e.label, e.event_time) for i, e in enumerate(data)],
        count=n,
    )
    bare = _bare_fit(rows, cfg, budget_s)
    bare_total = sum(bare.values())
    served = {
        str(v.params.get("candidate")): v.training_duration_s or 0.0
        for v in versions.values()
        if v.kind == "batch"
    }
    accounted = sum(timings.values())
    out_rows: list[tuple[str, Any, str]] = [
        ("window rows", n, "examples"),
        ("drift published -> alias moved", total, "s"),
        *((f"  {phase}", seconds, "s") for phase, seconds in timings.items()),
        ("  other (consume, run records, relay)", max(0.0, total - accounted), "s"),
        *(
            (f"trainer fit {name} (in its worker)", served.get(name, 0.0), "s")
            for name in CANDIDATES
        ),
        *((f"bare fit {name}", bare[name], "s") for name in CANDIDATES),
        ("bare fit, all candidates one after another (baseline)", bare_total, "s"),
        ("bare critical path (slowest candidate)", max(bare.values()), "s"),
        ("ratio total / critical path", total / max(bare.values()), "x"),
        ("winner", f"v{move.to_version} {versions[move.to_version].params.get('candidate')}", ""),
        ("cores", len(os.sched_getaffinity(0)), ""),
    ]
    return Result(
        bench="retrain",
        value=total,
        unit="s",
        baseline=bare_total,
        rows=out_rows,
        extra={"window": n, "phases": {k: round(v, 3) for k, v in timings.items()}},
    )
