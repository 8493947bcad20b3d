"""fresh: how far behind the learner is the online model that serving answers with?

The real broker, a learner process and two serving replicas; this process writes an
Agrawal stream (9 number features, a concept switch half-way) to ``examples.valid`` at
150 examples/s, as the validator would, and a load process asks each replica for one
prediction every 10 ms (V2 infer, one row; the two replicas in turn, the first of each
pair alternating), noting the ``learned_examples`` and ``base_version`` each answer
reports. The learner's own count (``driftline_learner_stream_examples``) is sampled
every 50 ms from its metrics endpoint.

For each model (River ARFClassifier(n_models=10), then StandardScaler | LogisticRegression,
``online_version_every`` 1,000), one phase with both replicas under the same stream, load
and machine (so the comparison holds on a shared, noisy machine):

* static: a replica with ``DRIFTLINE_SERVING_FOLLOW=false`` answers with the online
  snapshot as the learner registered it (the behaviour before followers);
* follow: a replica keeps the snapshot learning from ``examples.valid``.

Both replicas start as the phase starts, while the stream runs; a replica opens once its
follower has caught up, and the phase's measurements start a second after both are open.
Reported per model and replica: served staleness (the learner's count at the answer minus
the answering model's ``learned_examples``, floored at 0; in seconds, how long before the
answer the learner had learned the example the answering model had not), learner lag
(examples written minus the learner's count), serving predict p50/p99 and its CPU per
stream example, snapshot size and serialisation time (the learner's histograms).

value = ARF's served staleness p99 with followers (examples); baseline = the same
without followers (static snapshots), so ratio < 1 is better.
"""

from __future__ import annotations

import http.client
import itertools
import json
import multiprocessing
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from river.datasets import synth

from bench.harness import SIGNING_KEY, Result, broker_settings, cpu_seconds, peak_rss_mb
from schemas import LabelledExample, StreamConfig, Topics
from services.common.codec import encode
from services.common.kafka_client import ensure_topics, make_admin, make_producer
from services.localbroker.ports import free_ports
from services.registry.client import Registry

KEY = SIGNING_KEY
RATE = 150.0  # examples/s
REQUEST_EVERY_S = 0.01
FEATURES = ("salary", "commission", "age", "elevel", "car", "zipcode", "hvalue", "hyears", "loan")
MODELS = {
    "arf": "forest.ARFClassifier",
    "logistic": "preprocessing.StandardScaler | linear_model.LogisticRegression",
}


def _config(stream: str, pipeline: str) -> StreamConfig:
    return StreamConfig.model_validate(
        {
            "stream": stream,
            "version": 1,
            "spec": {
                "features": [{"name": f, "type": "number"} for f in FEATURES],
                "label": {"kind": "class", "classes": [0, 1]},
            },
            "model": {"pipeline": pipeline, "seed": 1},
            "policy": {"online_version_every": 1000, "drift": {"data_drift": False}},
        }
    )


def _examples(stream: str, n: int) -> list[LabelledExample]:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    first = itertools.islice(synth.Agrawal(classification_function=0, seed=1), n // 2)
    second = itertools.islice(synth.Agrawal(classification_function=4, seed=2), n - n // 2)
    return [
        LabelledExample(
            stream=stream,
            example_id=str(i),
            features={k: float(v) for k, v in x.items()},
            label=int(y),
            event_time=t0 + timedelta(seconds=i),
            spec_version=1,
        )
        for i, (x, y) in enumerate(itertools.chain(first, second))
    ]


# -- the load generator (a separate process) ------------------------------------------------


def _load(commands: Any, started: Any, stop: Any, results: Any) -> None:
    """Runs for the whole benchmark (a process started once: under load, starting one
    per phase takes long): each command ``(ports, model)`` starts a phase, one keep-alive
    connection per port, a request to each every ``REQUEST_EVERY_S`` until ``stop`` is
    set; the result is each port's answers.

    Each answer: (wall time at the response, latency s, status, base version, learned).
    """
    rows = [
        {k: float(v) for k, v in x.items()}
        for x, _ in itertools.islice(synth.Agrawal(seed=99), 256)
    ]
    bodies = [
        json.dumps(
            {
                "inputs": [
                    {"name": f, "shape": [1], "datatype": "FP64", "data": [r[f]]} for f in FEATURES
                ]
            }
        ).encode()
        for r in rows
    ]
    started.set()
    while (command := commands.get()) is not None:
        ports, model = command
        results.put(_requests(ports, model, bodies, stop))


Answer = tuple[float, float, int, int, int]


def _requests(
    ports: Sequence[int], model: str, bodies: list[bytes], stop: Any
) -> dict[int, list[Answer]]:
    out: dict[int, list[Answer]] = {port: [] for port in ports}
    conns = {port: http.client.HTTPConnection("127.0.0.1", port, timeout=10) for port in ports}
    headers = {"content-type": "application/json"}
    next_at = time.perf_counter()
    for i in itertools.count():
        if stop.is_set():
            break
        next_at += REQUEST_EVERY_S
        order = list(ports) if i % 2 == 0 else list(reversed(ports))
        for port in order:
            conn = conns[port]
            t0 = time.perf_counter()
            try:
                conn.request(
                    "POST", f"/v2/models/{model}/infer", body=bodies[i % 256], headers=headers
                )
                response = conn.getresponse()
                payload = response.read()
                status = response.status
                params = json.loads(payload)["parameters"] if status == 200 else {}
                base = int(params.get("base_version", 0))
                learned = int(params["learned_examples"])
            except (OSError, http.client.HTTPException, ValueError, KeyError):
                status, base, learned = 0, 0, 0
                conn.close()
                conns[port] = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            out[port].append((time.time(), time.perf_counter() - t0, status, base, learned))
        time.sleep(max(0.0, next_at - time.perf_counter()))
    for conn in conns.values():
        conn.close()
    return out


class Loader:
    """The load process and its controls."""

    def __init__(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.commands, self.started, self.stop = ctx.Queue(), ctx.Event(), ctx.Event()
        self.results = ctx.Queue()
        self.process = ctx.Process(
            target=_load, args=(self.commands, self.started, self.stop, self.results), daemon=True
        )
        self.process.start()

    def close(self) -> None:
        self.stop.set()
        self.commands.put(None)
        self.process.join(30)
        if self.process.is_alive():
            self.process.terminate()


# -- the run ----------------------------------------------------------------------------


@dataclass
class Tracker:
    """The stream head (written) and the learner's count, sampled over time."""

    times: list[float] = field(default_factory=list)
    heads: list[int] = field(default_factory=list)
    learned: list[int] = field(default_factory=list)

    def learner_at(self, t: float) -> int:
        i = bisect_right(self.times, t) - 1
        return self.learned[i] if i >= 0 else 0

    def learned_since(self, count: int) -> float | None:
        """When the learner's count first exceeded ``count`` (None: not yet)."""
        i = bisect_left(self.learned, count + 1)  # counts only grow
        return self.times[i] if i < len(self.times) else None


def _percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def _pair(r: dict[str, float], key: str, digits: int, suffix: str = "") -> str:
    p50, p99 = (
        r[f"{key}_p50{suffix}" if key else f"p50{suffix}"],
        r[f"{key}_p99{suffix}" if key else f"p99{suffix}"],
    )
    return f"{p50:.{digits}f} / {p99:.{digits}f}"


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:  # noqa: S310
        body: bytes = r.read()
    return body.decode()


def _value(text: str, name: str, stream: str | None = None) -> float:
    label = f'{{stream="{stream}"}}' if stream else ""
    match = re.search(rf"^driftline_{name}{re.escape(label)} ([0-9.e+-]+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


def _ready(port: int) -> bool:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        conn.request("GET", "/readyz")
        ok = conn.getresponse().status == 200
        conn.close()
        return ok
    except OSError:
        return False


class Stream:
    """Writes one stream's examples at ``RATE`` in a thread; samples the learner."""

    def __init__(self, settings: Any, stream: str, n: int, learner_port: int) -> None:
        self.settings = settings
        self.stream = stream
        self.data = _examples(stream, n)
        self.topic = Topics(settings.topic_prefix).name("examples.valid")
        self.learner_port = learner_port
        self.track = Tracker()
        self.sent = 0
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._write, daemon=True),
            threading.Thread(target=self._sample, daemon=True),
        ]

    def __enter__(self) -> Stream:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(10)

    def _write(self) -> None:
        producer = make_producer(self.settings, linger_ms=0)
        start = time.perf_counter()
        for i, example in enumerate(self.data):
            if self._stop.is_set():
                break
            time.sleep(max(0.0, start + i / RATE - time.perf_counter()))
            producer.send(self.topic, key=self.stream.encode(), value=encode(example))
            producer.flush()
            self.sent = i + 1
        producer.close()

    def _sample(self) -> None:
        while not self._stop.wait(0.05):
            try:
                count = int(
                    _value(_scrape(self.learner_port), "learner_stream_examples", self.stream)
                )
            except OSError:
                continue
            track = self.track
            if track.learned and count < track.learned[-1]:
                count = track.learned[-1]
            track.times.append(time.time())
            track.heads.append(self.sent)
            track.learned.append(count)


def _has_champion(registry: Registry, model: str) -> bool:
    info = registry.get_model(name=model)
    return info is not None and info.aliases.get("champion") is not None


def _serving(env: dict[str, str], log: Path, port: int, follow: bool) -> subprocess.Popen[bytes]:
    with open(log, "ab") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "services.serving"],
            env=env
            | {
                "DRIFTLINE_SERVING_FOLLOW": "true" if follow else "false",
                "DRIFTLINE_SERVING_PORT": str(port),
            },
            stdout=subprocess.DEVNULL,
            stderr=err,
        )


def _wait_ready(proc: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + 120
    while not _ready(port):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"serving did not become ready:\n{log.read_text()[-2000:]}")
        time.sleep(0.1)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _phase(
    stream: Stream,
    loader: Loader,
    env: dict[str, str],
    log: Path,
    ports: Sequence[int],
    *,
    seconds: float,
) -> dict[str, dict[str, float]]:
    """Both replicas (static on ``ports[0]``, follow on ``ports[1]``) under one load."""
    phases = ("static", "follow")
    servers = [
        _serving(env, log, port, phase == "follow")
        for port, phase in zip(ports, phases, strict=True)
    ]
    try:
        for server, port in zip(servers, ports, strict=True):
            _wait_ready(server, port, log)
        if not loader.started.wait(300):
            raise RuntimeError("the load process did not start")
        loader.stop.clear()
        loader.commands.put((list(ports), stream.stream))
        time.sleep(1.0)
        t0, sent0 = time.time(), stream.sent
        cpu0 = [cpu_seconds(server.pid) for server in servers]
        time.sleep(seconds)
        t1, sent1 = time.time(), stream.sent
        cpu1 = [cpu_seconds(server.pid) for server in servers]
        rss = [peak_rss_mb(server.pid) for server in servers]
        loader.stop.set()
        samples: dict[int, list[Answer]] = loader.results.get(timeout=60)
    finally:
        loader.stop.set()
        for server in servers:
            _stop(server)
    return {
        phase: _measure(
            stream.track, samples[port], t0, t1, (cpu1[i] - cpu0[i]) / max(1, sent1 - sent0), rss[i]
        )
        for i, (port, phase) in enumerate(zip(ports, phases, strict=True))
    }


def _measure(
    track: Tracker, samples: list[Answer], t0: float, t1: float, cpu_s: float, rss: float
) -> dict[str, float]:
    """One replica's figures over ``[t0, t1)`` (``cpu_s``: its CPU per stream example)."""
    answers = [s for s in samples if t0 <= s[0] < t1]
    ok = [s for s in answers if s[2] == 200]
    behind = [max(0, track.learner_at(wall) - learned) for wall, _, _, _, learned in ok]
    seconds_behind = []
    for wall, _, _, _, learned in ok:
        since = track.learned_since(learned)
        seconds_behind.append(max(0.0, wall - since) if since is not None and since < wall else 0.0)
    lag = [
        h - n
        for t, h, n in zip(track.times, track.heads, track.learned, strict=True)
        if t0 <= t < t1
    ]
    latency = [s[1] * 1000 for s in ok]
    return {
        "answers": len(answers),
        "failed": len(answers) - len(ok),
        "stale_p50": _percentile(behind, 0.5),
        "stale_p99": _percentile(behind, 0.99),
        "stale_s_p50": _percentile(seconds_behind, 0.5),
        "stale_s_p99": _percentile(seconds_behind, 0.99),
        "lag_p50": _percentile([float(v) for v in lag], 0.5),
        "lag_p99": _percentile([float(v) for v in lag], 0.99),
        "p50_ms": _percentile(latency, 0.5),
        "p99_ms": _percentile(latency, 0.99),
        "cpu_ms_per_example": cpu_s * 1000,
        "rss_mb": rss,
        "bases": len({s[3] for s in ok}),
    }


def run(quick: bool) -> Result:
    """Run the benchmark (quick: a 30 s phase per model; else 120 s)."""
    phase_s = 30.0 if quick else 120.0
    warm_s = 9.0  # the first snapshot (1,000 examples) and champion
    loader = Loader()  # imports while the broker starts
    with broker_settings(signing_key=KEY, signing_key_id="bench") as settings:
        admin = make_admin(settings)
        ensure_topics(admin, Topics(settings.topic_prefix).all())
        admin.close()
        registry = Registry.open(settings)
        learner_port, *serving_ports = free_ports(3)
        base_env = os.environ | {
            "DRIFTLINE_KAFKA_BOOTSTRAP": settings.bootstrap,
            "DRIFTLINE_TOPIC_PREFIX": settings.topic_prefix,
            "DRIFTLINE_DATA_DIR": str(settings.data_path),
            "DRIFTLINE_REGISTRY_URL": settings.registry_dsn,
            "DRIFTLINE_SIGNING_KEY": KEY,
            "DRIFTLINE_SIGNING_KEY_ID": "bench",
            "DRIFTLINE_LOG_LEVEL": "WARNING",
            "PYTHONPATH": str(Path.cwd()),
        }
        serving_env = base_env | {
            "DRIFTLINE_SERVING_KAFKA": "false",
            "DRIFTLINE_SERVING_SHADOW": "false",
        }
        configs = {name: _config(f"fresh-{name}", pipeline) for name, pipeline in MODELS.items()}
        producer = make_producer(settings)
        for cfg in configs.values():
            producer.send(
                Topics(settings.topic_prefix).name("streams"),
                key=cfg.stream.encode(),
                value=encode(cfg),
            )
        producer.flush()
        producer.close()
        learner_log = settings.data_path / "learner.log"
        serving_log = settings.data_path / "serving.log"
        with open(learner_log, "ab") as err:
            learner = subprocess.Popen(
                [sys.executable, "-m", "services.learner"],
                env=base_env | {"DRIFTLINE_LEARNER_METRICS_PORT": str(learner_port)},
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
        results: dict[str, dict[str, dict[str, float]]] = {}
        snapshots: dict[str, tuple[float, int, int]] = {}
        try:
            n = int(RATE * (warm_s + phase_s + 40))
            for name, cfg in configs.items():
                with Stream(settings, cfg.stream, n, learner_port) as stream:
                    deadline = time.monotonic() + 120
                    while not _has_champion(registry, cfg.stream):
                        if learner.poll() is not None or time.monotonic() > deadline:
                            raise RuntimeError(f"no champion:\n{learner_log.read_text()[-2000:]}")
                        time.sleep(0.2)
                    results[name] = _phase(
                        stream, loader, serving_env, serving_log, serving_ports, seconds=phase_s
                    )
                text = _scrape(learner_port)
                found = registry.list_versions(model=cfg.stream, limit=1000)
                sizes = [v.artifact.size for v in found]
                snapshots[name] = (max(sizes, default=0) / 1e6, len(found), stream.sent)
            count = _value(text, "learner_snapshot_seconds_count")
            total = _value(text, "learner_snapshot_seconds_sum")
            cp_count = _value(text, "learner_checkpoint_seconds_count")
            cp_total = _value(text, "learner_checkpoint_seconds_sum")
        finally:
            loader.close()
            _stop(learner)
            registry.close()

    rows: list[tuple[Any, ...]] = []
    for name, phases in results.items():
        size, versions, written = snapshots[name]
        for phase, r in phases.items():
            label = f"{name} {phase}"
            rows += [
                (label, "served staleness p50 / p99", _pair(r, "stale", 0), "examples"),
                (label, "served staleness p50 / p99", _pair(r, "stale_s", 2), "s"),
                (label, "learner lag p50 / p99", _pair(r, "lag", 0), "examples"),
                (label, "predict p50 / p99", _pair(r, "", 2, "_ms"), "ms"),
                (label, "serving CPU per stream example", f"{r['cpu_ms_per_example']:.2f}", "ms"),
                (label, "serving peak RSS", f"{r['rss_mb']:.0f}", "MB"),
                (label, "answers / failed", f"{r['answers']:.0f} / {r['failed']:.0f}", ""),
                (label, "snapshots that answered", f"{r['bases']:.0f}", ""),
            ]
        rows.append((name, "snapshots / examples written", f"{versions:.0f} / {written}", ""))
        rows.append((name, "largest snapshot", f"{size:.2f}", "MB"))
    snapshot_ms = total / max(1, count) * 1000
    checkpoint_ms = cp_total / max(1, cp_count) * 1000
    rows.append(("learner", "snapshot time mean (both streams)", f"{snapshot_ms:.0f}", "ms"))
    rows.append(("learner", "checkpoint time mean (both)", f"{checkpoint_ms:.0f}", "ms"))
    arf = results["arf"]
    return Result(
        bench="fresh",
        value=arf["follow"]["stale_p99"],
        unit="examples behind the learner, p99 (ARF(10), followers)",
        baseline=arf["static"]["stale_p99"],
        rows=rows,
        columns=("model / phase", "measure", "value", "unit"),
        extra={
            "rate": RATE,
            "phase_s": phase_s,
            **{
                f"{name}_{phase}_{key}": round(value, 3)
                for name, phases in results.items()
                for phase, r in phases.items()
                for key, value in r.items()
            },
            "predict_p99_ratio_arf": round(
                arf["follow"]["p99_ms"] / max(1e-9, arf["static"]["p99_ms"]), 3
            ),
            "snapshot_ms_mean": round(snapshot_ms, 1),
            "checkpoint_ms_mean": round(checkpoint_ms, 1),
        },
    )
