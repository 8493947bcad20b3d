"""restart: how long the learner, the validator and a serving replica take to work again
after they are stopped and started again with the same command, against how long the same
service takes on its cold first start in the same run.

* learner and validator: a feeder produces examples to their input topic at a steady
  rate; the process is killed with -9 and started again at once; the time runs from the
  kill to the first example the new process handles (its own Prometheus counter,
  ``driftline_learner_examples_total`` / ``driftline_validator_examples_total``, above zero).
* serving: a champion is registered; the replica is stopped with SIGTERM (its exit time
  is reported) and started again at once; the time runs from the SIGTERM to the first
  prediction answered (HTTP 200) by the new process; "HTTP open" is its first HTTP answer
  of any kind, so "open -> answer" is what a client behind a readiness probe waits.

The cold start is the same measure from a first ``Popen`` (consumer group new, nothing on
disk). value = the worst restart time of the three services (s); baseline = that service's
cold start in this run; ratio <= ~1 means a restart costs no more than a first start (a
restart that waits for the group's session timeout shows as a ratio of several). The aims
(DESIGN.md): a restart processes again within 5 s; serving exits within 1 s of SIGTERM
and answers within 1 s of opening HTTP; ``within_aims`` says whether all held.

``DRIFTLINE_BENCH_SOURCE=DIR`` runs the services from another source tree (for example an
export of an older commit), so the same bench measures before and after a change.
"""

from __future__ import annotations

import http.client
import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from river import linear_model, preprocessing
from river.datasets import synth

from bench.harness import SIGNING_KEY, Result, broker_settings
from bench.roundtrip import make_events
from bench.validator import configs
from schemas import AliasReason, Event, Spec, StreamConfig, Topics
from services.common.codec import encode, event_key
from services.common.kafka_client import ensure_topics, make_admin, make_producer
from services.common.predictor import Predictor
from services.common.settings import DriftlineSettings
from services.localbroker.ports import free_ports
from services.registry.client import ANY, Registry

KEY = SIGNING_KEY
AIM_S = 5.0
SERVING_AIM_S = 1.0
MODEL = "bench"
RATE_PER_S = 200
DEADLINE_S = 90.0
SPEC = Spec.model_validate(
    {
        "features": [{"name": f"x{i}", "type": "number"} for i in range(3)],
        "label": {"kind": "class", "classes": [False, True]},
    }
)


@dataclass
class Timing:
    """One service's cold start and restarts (seconds)."""

    service: str
    stop: str
    cold_s: float = 0.0
    restarts: list[float] = field(default_factory=list)
    exits: list[float] = field(default_factory=list)  # serving: SIGTERM -> exit
    open_to_answer: list[float] = field(default_factory=list)  # serving
    errors: int = 0  # serving: answers other than 200 (503, 404) while restarting
    stop_exit_s: float = 0.0  # the final SIGTERM -> exit
    stop_code: int | None = None

    @property
    def worst(self) -> float:
        """The slowest restart."""
        return max(self.restarts, default=0.0)


# -- helpers ------------------------------------------------------------------------------


def _env(settings: DriftlineSettings, **extra: str) -> dict[str, str]:
    source = os.environ.get("DRIFTLINE_BENCH_SOURCE") or str(Path.cwd())
    base = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTLINE_")}
    return base | {
        "DRIFTLINE_KAFKA_BOOTSTRAP": settings.bootstrap,
        "DRIFTLINE_TOPIC_PREFIX": settings.topic_prefix,
        "DRIFTLINE_DATA_DIR": str(settings.data_path),
        "DRIFTLINE_SIGNING_KEY": KEY,
        "DRIFTLINE_SIGNING_KEY_ID": "bench",
        "DRIFTLINE_LOG_LEVEL": "INFO",
        "PYTHONPATH": source,
        **extra,
    }


def _start(name: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as err:
        return subprocess.Popen(
            [sys.executable, "-m", f"services.{name}"],
            env=env,
            cwd=env["PYTHONPATH"],
            stdout=subprocess.DEVNULL,
            stderr=err,
        )


def _until(check: Callable[[], bool], proc: subprocess.Popen[bytes], log: Path, what: str) -> float:
    """Poll ``check`` every 20 ms; the monotonic time it first held."""
    deadline = time.monotonic() + DEADLINE_S
    while not check():
        if proc.poll() is not None:
            raise RuntimeError(f"{what}: the process exited ({proc.returncode}):\n{_tail(log)}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not within {DEADLINE_S:.0f}s:\n{_tail(log)}")
        time.sleep(0.02)
    return time.monotonic()


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:] if log.exists() else ""


def _counter(port: int, name: str) -> float:
    """The sum of a Prometheus counter's samples on ``port`` (0 when unreachable)."""
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
        conn.close()
    except (OSError, http.client.HTTPException):
        return 0.0
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name) and not line.startswith(f"{name[:-6]}_created")
    )


def _stop(proc: subprocess.Popen[bytes], timing: Timing | None = None) -> None:
    """SIGTERM, then wait (kill after 20 s); records the exit time in ``timing``."""
    if proc.poll() is not None:
        return
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        code = proc.wait()
    if timing is not None:
        timing.stop_exit_s = time.monotonic() - started
        timing.stop_code = code


class Feeder:
    """Produces events to a topic at a steady rate in a thread until closed."""

    def __init__(self, settings: DriftlineSettings, suffix: str, events: list[Event]) -> None:
        self.producer = make_producer(settings, client_id="driftline-bench")
        self.topic = Topics(settings.topic_prefix).name(suffix)
        self.events = events
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="feeder", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        started = time.monotonic()
        for i, event in enumerate(self.events):
            if self._stop.is_set():
                break
            self.producer.send(self.topic, key=event_key(event), value=encode(event))
            ahead = started + (i + 1) / RATE_PER_S - time.monotonic()
            if ahead > 0:
                self.producer.flush()
                self._stop.wait(ahead)
        self.producer.flush()

    def close(self) -> None:
        """Stop producing and close the producer."""
        self._stop.set()
        self._thread.join(10)
        self.producer.close()


# -- learner and validator: kill -9 ---------------------------------------------------------


def _killed(
    settings: DriftlineSettings,
    service: str,
    counter: str,
    rounds: int,
    extra: dict[str, str],
    suffix: str,
    events: list[Event],
) -> Timing:
    (port,) = free_ports(1)
    env = _env(settings, **{f"DRIFTLINE_{service.upper()}_METRICS_PORT": str(port)}, **extra)
    log = settings.data_path / f"{service}.log"
    timing = Timing(service, "kill -9")
    feeder = Feeder(settings, suffix, events)
    proc = None
    try:
        started = time.monotonic()
        proc = _start(service, env, log)
        seen = _until(lambda: _counter(port, counter) > 0, proc, log, f"{service} cold start")
        timing.cold_s = seen - started
        for _ in range(rounds):
            time.sleep(2.0)  # steady state: processing, a checkpoint or commit behind it
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            killed = time.monotonic()
            proc = _start(service, env, log)
            seen = _until(lambda: _counter(port, counter) > 0, proc, log, f"{service} restart")
            timing.restarts.append(seen - killed)
        _stop(proc, timing)
    finally:
        feeder.close()
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
    return timing


def _learner(settings: DriftlineSettings, rounds: int) -> Timing:
    config = configs()[0]
    publish(settings, "streams", [config])
    events: list[Event] = [
        e.model_copy(update={"spec_version": 1, "stream": config.stream})
        for e in make_events(RATE_PER_S * 60 * (rounds + 1))
    ]
    extra = {
        "DRIFTLINE_REGISTRY_URL": settings.registry_dsn,
        "DRIFTLINE_LEARNER_CHECKPOINT_INTERVAL_S": "1",
    }
    return _killed(
        settings,
        "learner",
        "driftline_learner_examples_total",
        rounds,
        extra,
        "examples.valid",
        events,
    )


def _validator(settings: DriftlineSettings, rounds: int) -> Timing:
    publish(settings, "streams", configs())
    events: list[Event] = list(make_events(RATE_PER_S * 60 * (rounds + 1)))
    return _killed(
        settings,
        "validator",
        "driftline_validator_examples_total",
        rounds,
        {},
        "examples.raw",
        events,
    )


def publish(settings: DriftlineSettings, suffix: str, events: list[Any]) -> None:
    """Send ``events`` to a topic and flush."""
    producer = make_producer(settings, client_id="driftline-bench")
    topic = Topics(settings.topic_prefix).name(suffix)
    for event in events:
        producer.send(topic, key=event_key(event), value=encode(event))
    producer.flush()
    producer.close()


# -- serving: SIGTERM -----------------------------------------------------------------------


def _champion(settings: DriftlineSettings) -> None:
    sha = StreamConfig(stream=MODEL, version=1, spec=SPEC).spec_sha256()
    model = preprocessing.StandardScaler() | linear_model.LogisticRegression()
    for x, y in itertools.islice(synth.SEA(seed=1), 200):
        model.learn_one({f"x{i}": float(v) for i, v in x.items()}, bool(y))
    registry = Registry.open(settings)
    try:
        version = registry.register_version(
            model=MODEL, kind="batch", predictor=Predictor.river(model, spec=SPEC, spec_sha256=sha)
        )
        registry.move_alias(
            model=MODEL,
            alias="champion",
            to_version=version.version,
            expect=ANY,
            reason=AliasReason.MANUAL,
            actor="bench",
        )
    finally:
        registry.close()


def _http(port: int, method: str, path: str, body: bytes | None = None) -> int:
    """The status of one request (0: no HTTP answer)."""
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=0.5)
        conn.request(method, path, body=body, headers={"content-type": "application/json"})
        status = conn.getresponse().status
        conn.close()
        return status
    except (OSError, http.client.HTTPException):
        return 0


def _serving(settings: DriftlineSettings, rounds: int) -> Timing:
    _champion(settings)
    (port,) = free_ports(1)
    env = _env(
        settings,
        DRIFTLINE_REGISTRY_URL=settings.registry_dsn,
        DRIFTLINE_SERVING_PORT=str(port),
        DRIFTLINE_SERVING_MODELS=MODEL,
    )
    log = settings.data_path / "serving.log"
    body = json.dumps({"instances": [{"x0": 1.0, "x1": 2.0, "x2": 3.0}]}).encode()
    timing = Timing("serving", "SIGTERM")

    def answers(proc: subprocess.Popen[bytes]) -> tuple[float, float]:
        """(first HTTP answer, first prediction) as monotonic times."""
        opened = 0.0
        while True:
            status = _http(port, "POST", f"/models/{MODEL}/predict", body)
            now = time.monotonic()
            if status and not opened:
                opened = now
            if status == 200:
                return opened, now
            if status:
                timing.errors += 1
            if proc.poll() is not None:
                raise RuntimeError(f"serving exited ({proc.returncode}):\n{_tail(log)}")
            if now > deadline:
                raise RuntimeError(f"serving: no prediction within {DEADLINE_S:.0f}s")
            time.sleep(0.02)

    proc = None
    try:
        started = time.monotonic()
        deadline = started + DEADLINE_S
        proc = _start("serving", env, log)
        _, answered = answers(proc)
        timing.cold_s = answered - started
        for _ in range(rounds):
            time.sleep(1.0)
            stopped = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=30)
            if code != 0:
                raise RuntimeError(f"serving exited {code} on SIGTERM:\n{_tail(log)}")
            exited = time.monotonic()
            timing.exits.append(exited - stopped)
            deadline = exited + DEADLINE_S
            proc = _start("serving", env, log)
            opened, answered = answers(proc)
            timing.restarts.append(answered - stopped)
            timing.open_to_answer.append(answered - opened)
        _stop(proc, timing)
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
    return timing


# -- the run --------------------------------------------------------------------------------


def run(quick: bool) -> Result:
    """Run the benchmark (quick: one restart per service; else three)."""
    rounds = 1 if quick else 3
    timings: list[Timing] = []
    with broker_settings(signing_key=KEY, signing_key_id="bench") as settings:
        admin = make_admin(settings)
        ensure_topics(admin, Topics(settings.topic_prefix).all())
        admin.close()
        timings.append(_learner(settings, rounds))
        timings.append(_validator(settings, rounds))
        timings.append(_serving(settings, rounds))
    serving = timings[-1]
    worst = max(timings, key=lambda t: t.worst)
    within = (
        all(t.worst <= AIM_S for t in timings[:2])
        and max(serving.exits, default=0.0) <= SERVING_AIM_S
        and max(serving.open_to_answer, default=0.0) <= SERVING_AIM_S
        and all(t.stop_code == 0 for t in timings)
    )
    rows: list[tuple[str, Any, str]] = []
    for t in timings:
        rows.append((f"{t.service}: cold start -> processing", t.cold_s, "s"))
        for i, seconds in enumerate(t.restarts, 1):
            rows.append((f"{t.service}: {t.stop} #{i} -> processing again", seconds, "s"))
        for i, seconds in enumerate(t.exits, 1):
            rows.append((f"{t.service}: SIGTERM #{i} -> exit", seconds, "s"))
        for i, seconds in enumerate(t.open_to_answer, 1):
            rows.append((f"{t.service}: restart #{i} HTTP open -> first answer", seconds, "s"))
        if t.service == "serving":
            rows.append(("serving: answers other than 200 while (re)starting", t.errors, ""))
        rows.append(
            (f"{t.service}: final SIGTERM -> exit (code {t.stop_code})", t.stop_exit_s, "s")
        )
    return Result(
        bench="restart",
        value=worst.worst,
        unit=f"s worst restart ({worst.service})",
        baseline=worst.cold_s,
        rows=rows,
        extra={
            "aim_s": AIM_S,
            "within_aims": within,
            **{f"{t.service}_restart_s": round(t.worst, 3) for t in timings},
            **{f"{t.service}_cold_s": round(t.cold_s, 3) for t in timings},
            "serving_exit_s": round(max(serving.exits, default=0.0), 3),
            "serving_open_to_answer_s": round(max(serving.open_to_answer, default=0.0), 3),
            "serving_errors": serving.errors,
            "rounds": rounds,
        },
    )
