"""hotswap: p99 predict latency of a serving process while 20 new versions are published
and ``champion`` is moved to each in turn, against the same run's p99 while 20 versions of
a model it does not serve are published (no swap); closed-loop load from another process.

Three phases in one run, under the same load:

1. quiet: nothing is published;
2. baseline (no swaps): 20 versions of *another* model are published and its champion
   moved at the same cadence as in phase 3; the server does not serve that model
   (``DRIFTLINE_SERVING_MODELS``), so the publisher's work (signing, SQLite, Kafka) and
   the events reach the same machine, but nothing is swapped;
3. swaps: 20 versions of the served model are published and champion moved to each.

Reported: requests, failed requests (must be 0), versions of the served model that
answered at least one request (must be 20), p50/p99 latency per phase (value = p99
during swaps, baseline = p99 of phase 2), the swap latency from the alias-moved event's
publication (its Kafka timestamp) to the first response by the new version, the server's
own load time per version (fetch, verify, unpickle, warm up) and its peak RSS.
"""

from __future__ import annotations

import http.client
import itertools
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from river import linear_model, preprocessing
from river.datasets import synth

from bench.harness import SIGNING_KEY, Result, broker_settings, peak_rss_mb
from schemas import CATALOGUE, AliasMoved, AliasReason, Spec, StreamConfig, Topics
from services.common.codec import decode
from services.common.kafka_client import assign_all, ensure_topics, make_admin, make_consumer
from services.common.predictor import Predictor
from services.localbroker.ports import free_ports
from services.registry.client import ANY, Registry

KEY = SIGNING_KEY
MODEL = "bench"
DECOY = "bench-decoy"
VERSIONS = 20
CONNECTIONS = 2
SPEC = Spec.model_validate(
    {
        "features": [{"name": f"x{i}", "type": "number"} for i in range(3)],
        "label": {"kind": "class", "classes": [False, True]},
    }
)


def _predictors(n: int) -> list[Predictor]:
    sha = StreamConfig(stream=MODEL, version=1, spec=SPEC).spec_sha256()
    out = []
    for seed in range(n):
        model = preprocessing.StandardScaler() | linear_model.LogisticRegression()
        for x, y in itertools.islice(synth.SEA(seed=seed, variant=seed % 4), 200):
            model.learn_one({f"x{i}": float(v) for i, v in x.items()}, bool(y))
        out.append(Predictor.river(model, spec=SPEC, spec_sha256=sha))
    return out


# -- the load generator (a separate process) ------------------------------------------------


def _load(port: int, started: Any, stop: Any, results: Any) -> None:
    """Closed loop over ``CONNECTIONS`` keep-alive connections until ``stop`` is set.

    Each request: (start wall time, latency s, HTTP status or 0 on error, version).
    """
    rows = [
        json.dumps({"instances": [{f"x{i}": float(v) for i, v in x.items()}]}).encode()
        for x, _ in itertools.islice(synth.SEA(seed=99), 256)
    ]
    done: list[list[tuple[float, float, int, int]]] = [[] for _ in range(CONNECTIONS)]

    def worker(out: list[tuple[float, float, int, int]], offset: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        headers = {"content-type": "application/json"}
        i = offset
        while not stop.is_set():
            body = rows[i % len(rows)]
            i += 1
            wall, t0 = time.time(), time.perf_counter()
            try:
                conn.request("POST", f"/models/{MODEL}/predict", body=body, headers=headers)
                response = conn.getresponse()
                payload = response.read()
                status = response.status
                version = json.loads(payload)["version"] if status == 200 else 0
            except (OSError, http.client.HTTPException, ValueError, KeyError):
                status, version = 0, 0
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            out.append((wall, time.perf_counter() - t0, status, version))
        conn.close()

    threads = [threading.Thread(target=worker, args=(done[k], k * 97)) for k in range(CONNECTIONS)]
    for t in threads:
        t.start()
    started.set()
    for t in threads:
        t.join()
    results.put(sorted(itertools.chain.from_iterable(done)))


# -- the run ----------------------------------------------------------------------------


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def _ready(port: int) -> bool:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        conn.request("GET", "/readyz")
        ok = conn.getresponse().status == 200
        conn.close()
        return ok
    except OSError:
        return False


def run(quick: bool) -> Result:
    """Run the benchmark (quick: 3 s quiet, 10 s baseline, 10 s of swaps; else 10, 40, 40)."""
    quiet_s, phase_s = (3.0, 10.0) if quick else (10.0, 40.0)
    predictors = _predictors(VERSIONS + 1)
    with broker_settings(signing_key=KEY, signing_key_id="bench") as settings:
        admin = make_admin(settings)
        ensure_topics(admin, Topics(settings.topic_prefix).all())
        admin.close()
        registry = Registry.open(settings)

        def publish(predictor: Predictor, model: str = MODEL) -> int:
            version = registry.register_version(model=model, kind="batch", predictor=predictor)
            registry.move_alias(
                model=model,
                alias="champion",
                to_version=version.version,
                expect=ANY,
                reason=AliasReason.MANUAL,
                actor="bench",
            )
            return version.version

        first = publish(predictors[0])
        (port,) = free_ports(1)
        env = os.environ | {
            "DRIFTLINE_KAFKA_BOOTSTRAP": settings.bootstrap,
            "DRIFTLINE_TOPIC_PREFIX": settings.topic_prefix,
            "DRIFTLINE_DATA_DIR": str(settings.data_path),
            "DRIFTLINE_SIGNING_KEY": KEY,
            "DRIFTLINE_SIGNING_KEY_ID": "bench",
            "DRIFTLINE_LOG_LEVEL": "WARNING",
            "DRIFTLINE_SERVING_PORT": str(port),
            "DRIFTLINE_SERVING_MODELS": MODEL,
            "DRIFTLINE_SERVING_KAFKA": "false",
            "DRIFTLINE_SERVING_SHADOW": "false",
            "PYTHONPATH": str(Path.cwd()),
        }
        log = settings.data_path / "serving.log"
        with open(log, "ab") as err:
            server = subprocess.Popen(
                [sys.executable, "-m", "services.serving"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
        ctx = multiprocessing.get_context("spawn")
        started, stop, results = ctx.Event(), ctx.Event(), ctx.Queue()
        loader = ctx.Process(target=_load, args=(port, started, stop, results), daemon=True)
        rss = 0.0
        published: list[int] = []
        try:
            deadline = time.monotonic() + 120
            while not _ready(port):
                if server.poll() is not None or time.monotonic() > deadline:
                    tail = log.read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"the serving process did not become ready:\n{tail}")
                time.sleep(0.1)
            loader.start()
            if not started.wait(60):
                raise RuntimeError("the load process did not start")
            time.sleep(1.0)  # connections warm
            quiet_start = time.time()
            time.sleep(quiet_s)
            load_start = time.time()
            slot = phase_s / VERSIONS
            for k in range(1, VERSIONS + 1):  # the control: same work, another model
                time.sleep(max(0.0, load_start + (k - 1) * slot - time.time()))
                publish(predictors[k], DECOY)
            time.sleep(max(0.0, load_start + phase_s - time.time()))
            swap_start = time.time()
            for k in range(1, VERSIONS + 1):
                time.sleep(max(0.0, swap_start + (k - 1) * slot - time.time()))
                published.append(publish(predictors[k]))
                rss = max(rss, peak_rss_mb(server.pid))
            time.sleep(max(1.0, swap_start + phase_s - time.time()))
            stop.set()
            samples: list[tuple[float, float, int, int]] = results.get(timeout=60)
            loader.join(30)
            rss = max(rss, peak_rss_mb(server.pid))
            moved_at = _alias_times(settings)
            load_ms = _load_times(port)
        finally:
            stop.set()
            if loader.is_alive():
                loader.terminate()
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
            registry.close()

    quiet = [lat * 1000 for wall, lat, _, _ in samples if quiet_start <= wall < load_start]
    base = [lat * 1000 for wall, lat, _, _ in samples if load_start <= wall < swap_start]
    during = [lat * 1000 for wall, lat, _, _ in samples if wall >= swap_start]
    failed = sum(1 for _, _, status, _ in samples if status != 200)
    served = {v for _, _, status, v in samples if status == 200}
    versions_served = len(served & set(published))
    swap_ms = []
    for version in published:
        first_answer = min(
            (wall + lat for wall, lat, status, v in samples if status == 200 and v == version),
            default=None,
        )
        if first_answer is not None and version in moved_at:
            swap_ms.append((first_answer - moved_at[version]) * 1000)
    p99_base, p99_swaps = _percentile(base, 0.99), _percentile(during, 0.99)
    rows = [
        ("requests", len(samples), ""),
        ("failed requests", failed, ""),
        (f"versions answering >= 1 request (of {VERSIONS})", versions_served, ""),
        ("p50 latency, quiet (nothing published)", _percentile(quiet, 0.5), "ms"),
        ("p99 latency, quiet (nothing published)", _percentile(quiet, 0.99), "ms"),
        ("p50 latency, no swaps (baseline: another model published)", _percentile(base, 0.5), "ms"),
        ("p99 latency, no swaps (baseline: another model published)", p99_base, "ms"),
        ("p50 latency during swaps", _percentile(during, 0.5), "ms"),
        ("p99 latency during swaps", p99_swaps, "ms"),
        ("swap latency p50 (event published -> first answer)", _percentile(swap_ms, 0.5), "ms"),
        ("swap latency p99", _percentile(swap_ms, 0.99), "ms"),
        (
            "server load time per version p50",
            _percentile(load_ms, 0.5),
            "ms",
        ),
        ("server load time per version max", max(load_ms, default=0.0), "ms"),
        ("server peak RSS", rss, "MB"),
    ]
    return Result(
        bench="hotswap",
        value=p99_swaps,
        unit="ms p99 during swaps",
        baseline=p99_base,
        rows=rows,
        columns=("measure", "value", "unit"),
        extra={
            "requests": len(samples),
            "failed": failed,
            "versions_served": versions_served,
            "versions_published": len(published),
            "first_version": first,
            "p50_ms": round(_percentile(during, 0.5), 3),
            "p50_baseline_ms": round(_percentile(base, 0.5), 3),
            "p99_quiet_ms": round(_percentile(quiet, 0.99), 3),
            "p50_quiet_ms": round(_percentile(quiet, 0.5), 3),
            "swap_p50_ms": round(_percentile(swap_ms, 0.5), 1),
            "swap_p99_ms": round(_percentile(swap_ms, 0.99), 1),
            "load_p50_ms": round(_percentile(load_ms, 0.5), 2),
            "peak_rss_mb": round(rss, 1),
            "connections": CONNECTIONS,
        },
    )


def _load_times(port: int) -> list[float]:
    """The server's own load time of each version after the first (``GET /models``)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/models")
        history = json.loads(conn.getresponse().read())["history"]
    finally:
        conn.close()
    loads = [h["load_ms"] for h in history if h["event"] == "loaded" and h["model"] == MODEL]
    return [float(ms) for ms in loads[1:]]


def _alias_times(settings: Any) -> dict[int, float]:
    """When each champion move was published: the Kafka timestamp of its event (s)."""
    consumer = make_consumer(settings, group_id=None)
    topic = Topics(settings.topic_prefix).name("models")
    try:
        tps = assign_all(consumer, topic)
        end = consumer.end_offsets(tps)
        out: dict[int, float] = {}
        deadline = time.monotonic() + 30
        while any(consumer.position(tp) < end[tp] for tp in tps):
            if time.monotonic() > deadline:
                break
            for records in consumer.poll(timeout_ms=500).values():
                for record in records:
                    event = decode(record.value, CATALOGUE["models"])
                    if (
                        isinstance(event, AliasMoved)
                        and event.model == MODEL
                        and event.to_version is not None
                    ):
                        out[event.to_version] = record.timestamp / 1000
        return out
    finally:
        consumer.close()
