"""``driftline demo``: the whole loop on one machine, watched live, ending with a report.

Starts the local broker (unless ``DRIFTLINE_KAFKA_BOOTSTRAP`` is set), runs the six services
as supervised subprocesses on topics and a registry of their own (a fresh run directory
under the data dir), publishes the stream config, replays a drifting stream as labelled
examples plus prediction requests, then checks that nothing was lost and that the loop
closed: drift detected, a model trained, promoted and swapped in by serving. The HTML
report compares the served model with in-process baselines on the same stream.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.live import Live

from schemas import LabelledExample, Topics
from schemas.predictions import PredictionRequest
from services.common import keys
from services.common.codec import encode
from services.common.errors import DriftlineError
from services.common.kafka_client import ensure_topics, make_admin, make_producer
from services.common.settings import DriftlineSettings
from services.console.output import print_table
from services.demo import analysis, live, report
from services.demo.baselines_job import load as load_baselines
from services.demo.baselines_job import stream_args
from services.demo.checks import LAG_WARNING, Check, LagSample, end_checks
from services.demo.observer import Observer
from services.demo.state import DemoState
from services.demo.stream import BAD_EVERY, DEFAULT_SEED, DemoStream, is_malformed, load_stream
from services.demo.supervisor import Supervisor
from services.ingest.producer import encode_raw
from services.ingest.sources import Columns, csv_header, unnamed_columns
from services.ingest.spec_publish import publish_config
from services.localbroker.ports import free_ports
from services.localbroker.process import LocalBroker
from services.registry.client import Registry, is_remote

log = logging.getLogger(__name__)

SERVICES = ("registry", "validator", "learner", "trainer", "serving", "evaluator")
# service -> (env var of its metrics/HTTP port, counters shown as its events/s, unit)
PORTS = {
    "registry": "DRIFTLINE_REGISTRY_PORT",
    "validator": "DRIFTLINE_VALIDATOR_METRICS_PORT",
    "learner": "DRIFTLINE_LEARNER_METRICS_PORT",
    "trainer": "DRIFTLINE_TRAINER_METRICS_PORT",
    "serving": "DRIFTLINE_SERVING_PORT",
    "evaluator": "DRIFTLINE_EVALUATOR_METRICS_PORT",
}
COUNTERS = {
    "registry": (("driftline_registry_http_requests_total",), "requests"),
    "validator": (("driftline_validator_examples_total",), "examples"),
    "learner": (("driftline_learner_examples_total",), "examples"),
    "trainer": (("driftline_trainer_runs_total",), "runs"),
    "serving": (("driftline_serving_requests_total",), "predictions"),
    "evaluator": (("driftline_evaluator_examples_total",), "examples"),
}
RATE, RATE_QUICK = 150.0, 150.0  # examples/s replayed: the loop keeps up on 2 cores
GARBAGE_EVERY = 2000  # one undecodable message in this many examples


@dataclass(frozen=True)
class DemoOptions:
    """What ``driftline demo`` was asked to do."""

    quick: bool = False
    dataset: str | None = None
    config: Path | None = None
    rate: float | None = None
    keep_broker: bool = False
    live: bool = True
    seed: int = DEFAULT_SEED
    columns: Columns | None = None
    drift_at: str | None = None
    baselines: bool = True
    """Run the baselines job beside the services (for the report)."""


@dataclass
class LoopOutcome:
    """What one run of the loop left: the folded topics, checks, samples and report."""

    source: DemoStream
    state: DemoState
    checks: list[Check]
    samples: list[LagSample]
    run_dir: Path
    report_path: Path
    summary: list[analysis.SummaryRow]
    statuses: dict[str, int | None]

    @property
    def ok(self) -> bool:
        """Every required check passed."""
        return all(c.ok for c in self.checks if c.required)


SIGNERS = frozenset({"registry", "learner", "trainer"})  # hold the private key
STATE_KEEPERS = frozenset({"evaluator"})  # checkpoint without a private key
PRIVATE_VARS = ("DRIFTLINE_SIGNING_KEY", "DRIFTLINE_SIGNING_KEY_ID")


@dataclass(frozen=True)
class KeyEnv:
    """The key settings of the demo's services: ``signer`` for the registry, the learner
    and the trainer only; ``state`` (the checkpoint key) for the evaluator only;
    ``verifier`` (public keys) for every service."""

    signer: dict[str, str]
    verifier: dict[str, str]
    state: dict[str, str]

    def of(self, service: str) -> dict[str, str]:
        """The key settings ``service`` gets."""
        env = dict(self.verifier)
        if service in SIGNERS:
            env.update(self.signer)
        if service in STATE_KEEPERS:
            env.update(self.state)
        return env


def signing_env(settings: DriftlineSettings, console: Console) -> KeyEnv:
    """The configured signing key, or a key pair kept in the data dir (generated once):
    the private key goes to signers only, its public key to every service."""
    if settings.signing_key is not None and settings.signing_key_id is not None:
        private = settings.signing_key.get_secret_value()
        key_id = settings.signing_key_id
    else:
        key_id = "demo"
        path = settings.data_path / "demo-ed25519.key"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(keys.generate()[0], encoding="utf-8")
            path.chmod(0o600)
            console.print(f"[bold]signing[/]: generated an Ed25519 key pair into {path}")
        else:
            console.print(f"[bold]signing[/]: using the demo key pair in {path}")
        private = path.read_text(encoding="utf-8").strip()
    public = keys.public_text(keys.load_private_key(private).public_key())
    listed = settings.verify_keys.get_secret_value() if settings.verify_keys else ""
    checkpoint = settings.checkpoint_key.get_secret_value() if settings.checkpoint_key else None
    if checkpoint is None:
        cp_path = settings.data_path / "demo-checkpoint.key"
        if not cp_path.exists():
            cp_path.write_text(secrets.token_hex(32), encoding="utf-8")
            cp_path.chmod(0o600)
        checkpoint = cp_path.read_text(encoding="utf-8").strip()
    console.print(
        f"[bold]signing[/]: key id {key_id!r}: the private key to "
        f"{', '.join(sorted(SIGNERS))}; serving and the evaluator get its public key only"
    )
    return KeyEnv(
        signer={"DRIFTLINE_SIGNING_KEY": private, "DRIFTLINE_SIGNING_KEY_ID": key_id},
        verifier={
            "DRIFTLINE_VERIFY_KEYS": ",".join(k for k in (f"{key_id}:{public}", listed) if k),
        },
        state={"DRIFTLINE_CHECKPOINT_KEY": checkpoint},
    )


def service_token_env(settings: DriftlineSettings, console: Console) -> dict[str, str]:
    """The token the services write to the registry with: the configured one, or one
    made for this run (handed to the registry and the services like the signing key)."""
    if settings.service_token is not None:
        return {}
    console.print("[bold]registry[/]: generated a service token for this run's services")
    return {"DRIFTLINE_SERVICE_TOKEN": secrets.token_urlsafe(32)}


def run_demo(settings: DriftlineSettings, options: DemoOptions, console: Console) -> int:
    """Run the demo; returns 0 when every required check passed."""
    outcome = run_loop(settings, options, console)
    _print_summary(console, outcome)
    return 0 if outcome.ok else 1


def load_source(options: DemoOptions) -> DemoStream:
    """The stream the options name (a bad --dataset, --config or --drift-at fails here)."""
    return load_stream(
        options.dataset,
        options.config,
        quick=options.quick,
        seed=options.seed,
        columns=options.columns,
        drift_at=options.drift_at,
    )


def run_loop(
    settings: DriftlineSettings,
    options: DemoOptions,
    console: Console,
    source: DemoStream | None = None,
) -> LoopOutcome:
    """Run the whole loop once on ``source`` (default: the options' stream)."""
    # the stream first: a bad --dataset or --config fails before anything starts
    source = source or load_source(options)
    console.print(f"[bold]stream[/]: {source.name}: {source.description}")
    for skipped in source.skipped[:3]:
        console.print(f"[yellow]skipped[/] line {skipped.line}: {skipped.reason}")
    if options.dataset is not None and options.dataset.lower().endswith(".csv"):
        for note in unnamed_columns(csv_header(Path(options.dataset))):
            console.print(f"[yellow]warning[/]: {note}")
    broker: LocalBroker | None = None
    bootstrap = settings.bootstrap
    if settings.uses_local_broker:
        broker = LocalBroker.from_data_dir(settings.data_path, settings.cache_path)
        was_running = broker.status().running
        console.print(f"[bold]broker[/]: local Kafka broker in {broker.data_dir}")
        bootstrap = broker.start()
        if was_running or options.keep_broker:
            broker = None  # not ours to stop
    else:
        console.print(f"[bold]broker[/]: using DRIFTLINE_KAFKA_BOOTSTRAP={bootstrap}")
    try:
        return _run(settings, bootstrap, options, console, source)
    finally:
        if broker is not None:
            console.print("[bold]broker[/]: stopping the local broker")
            broker.stop()


def _run(
    settings: DriftlineSettings,
    bootstrap: str,
    options: DemoOptions,
    console: Console,
    source: DemoStream,
) -> LoopOutcome:
    run_id = datetime.now(UTC).strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2)
    run_dir = settings.data_path / "demo" / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    prefix = f"{settings.topic_prefix}demo-{run_id}."
    ports = dict(zip(SERVICES, free_ports(len(SERVICES)), strict=True))
    env = {
        "DRIFTLINE_KAFKA_BOOTSTRAP": bootstrap,
        "DRIFTLINE_TOPIC_PREFIX": prefix,
        "DRIFTLINE_DATA_DIR": str(run_dir),
        "DRIFTLINE_REGISTRY_HTTP_URL": f"http://127.0.0.1:{ports['registry']}",
        # every process but the registry reaches it over its HTTP API
        "DRIFTLINE_REGISTRY_URL": f"http://127.0.0.1:{ports['registry']}",
        **service_token_env(settings, console),
        "DRIFTLINE_LOG_FORMAT": "json",
        **{PORTS[name]: str(port) for name, port in ports.items()},
    }
    database = settings.registry_url
    if database is None or is_remote(database):
        database = f"sqlite:///{run_dir / 'registry.db'}"
    key_env = signing_env(settings, console)
    # Children inherit no private key: each gets its own key settings (key_env.of).
    base_env = {k: v for k, v in os.environ.items() if k not in PRIVATE_VARS}
    local = DriftlineSettings.load(env={**base_env, **env, **key_env.verifier})
    console.print(f"[bold]run[/]: {run_id}: topics {prefix}*, registry and artifacts in {run_dir}")
    admin = make_admin(local)
    try:
        ensure_topics(admin, Topics(prefix).all())
    finally:
        admin.close()

    config = source.config
    state = DemoState(stream=config.stream)
    observer = Observer(local, state).start()
    with Supervisor(run_dir / "logs", env={**base_env, **env}, stop_last=("registry",)) as sup:
        views = []
        for name in SERVICES:
            own = {"DRIFTLINE_REGISTRY_URL": database} if name == "registry" else {}
            child = sup.start(
                name, [sys.executable, "-m", f"services.{name}"], env={**key_env.of(name), **own}
            )
            if name == "registry":  # the others' first calls go to it
                _wait_ready(sup, {name: ports[name]}, console)
            counters, unit = COUNTERS[name]
            views.append(
                live.ServiceView(
                    name,
                    f"http://127.0.0.1:{ports[name]}/metrics",
                    counters,
                    unit,
                    pid=child.process.pid,
                )
            )
        baselines = None
        if options.baselines:
            baselines = sup.start(
                "baselines",
                [
                    sys.executable,
                    "-m",
                    "services.demo.baselines_job",
                    "--out",
                    str(run_dir / "baselines.json"),
                    *stream_args(
                        options.dataset,
                        options.config,
                        options.quick,
                        options.seed,
                        options.columns,
                        source.drifts if options.drift_at else (),
                    ),
                ],
                oneshot=True,
                niceness=19,  # the baselines yield the CPU to the services they are compared with
            )
        _wait_ready(sup, ports, console)
        published, status = publish_config(local, config)
        console.print(f"[bold]spec[/]: {published.stream} v{published.version} {status}")
        _wait_metric(
            sup,
            f"http://127.0.0.1:{ports['validator']}/metrics",
            ("driftline_validator_spec_version",),
            1.0,
            60.0,
            "the validator to load the stream config",
        )
        started = time.monotonic()
        display = Live(console=console, refresh_per_second=4) if options.live else None
        view = _View(
            sup,
            observer,
            views,
            display,
            source.size,
            started,
            learner_url=f"http://127.0.0.1:{ports['learner']}/metrics",
            console=None if display is not None else console,
            metric=config.policy.primary_metric_for(config.spec.label.kind),
        )
        if display is not None:
            display.start()
        try:
            produced = _produce(local, source, view, options)
            learned = _settle(local, view, ports, timeout_s=180.0 if options.quick else 300.0)
            view.tick(force=True)
        finally:
            if display is not None:
                display.stop()
        console.print(
            f"[bold]produce[/]: {produced:,} examples in {time.monotonic() - started:,.0f}s"
        )
        if baselines is not None and baselines.process.poll() is None:
            # the loop is done: the baselines need not yield the CPU any more (only a
            # privileged user may lower a niceness; otherwise they finish as they are)
            with contextlib.suppress(OSError):
                os.setpriority(os.PRIO_PROCESS, baselines.process.pid, 0)
                Path(f"/proc/{baselines.process.pid}/autogroup").write_text("0")
        if baselines is not None and baselines.process.wait(timeout=900) != 0:
            raise DriftlineError(f"the baselines failed:\n{baselines.tail()}")
        with observer.locked() as snapshot:
            checks = end_checks(
                local, snapshot, learned, expect_drift=bool(source.drifts), samples=view.samples
            )
            path, summary = _report(snapshot, source, run_dir, time.monotonic() - started, checks)
        statuses = sup.stop_all()
    observer.stop()
    return LoopOutcome(
        source, observer.state, checks, view.samples, run_dir, path, summary, statuses
    )


def _wait_ready(sup: Supervisor, ports: dict[str, int], console: Console) -> None:
    deadline = time.monotonic() + 120
    pending = dict(ports)
    while pending:
        sup.check()
        for name, port in list(pending.items()):
            if live.scrape(f"http://127.0.0.1:{port}/metrics", ()) is not None:
                del pending[name]
        if time.monotonic() > deadline:
            raise DriftlineError(f"services not ready after 120 s: {', '.join(pending)}")
        time.sleep(0.2)
    if len(ports) == 1:
        console.print(f"[bold]service[/]: {next(iter(ports))} is up")
    else:
        console.print(f"[bold]services[/]: {', '.join(ports)} are up")


def _wait_metric(
    sup: Supervisor, url: str, names: tuple[str, ...], at_least: float, timeout_s: float, what: str
) -> None:
    deadline = time.monotonic() + timeout_s
    while (live.scrape(url, names) or 0.0) < at_least:
        sup.check()
        if time.monotonic() > deadline:
            raise DriftlineError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(0.2)


class _View:
    """Refreshes the live view (and checks the children) at most every ``every_s``."""

    def __init__(
        self,
        sup: Supervisor,
        observer: Observer,
        views: list[live.ServiceView],
        display: Live | None,
        total: int,
        started: float,
        every_s: float = 0.5,
        *,
        learner_url: str | None = None,
        console: Console | None = None,
        metric: str = "accuracy",
    ) -> None:
        self.sup, self.observer, self.views, self.display = sup, observer, views, display
        self.total, self.started, self.every_s = total, started, every_s
        self.learner_url, self.console, self.metric = learner_url, console, metric
        self._last = 0.0
        self.produced = 0
        self.phase = "producing"
        self.samples: list[LagSample] = []
        self._warned = False

    def tick(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < self.every_s:
            return
        self._last = now
        self.sup.check()
        if self.observer.error is not None:
            raise DriftlineError(f"the demo's topic observer failed: {self.observer.error}")
        lag = self._sample()
        if self.display is None:
            return
        for view, child in zip(self.views, self.sup.children, strict=False):
            view.alive = child.alive
        live.refresh(self.views)
        with self.observer.locked() as state:
            self.display.update(
                live.render(
                    state,
                    self.views,
                    produced=self.produced,
                    total=self.total,
                    elapsed_s=now - self.started,
                    phase=self.phase,
                    lag=lag,
                    lag_warning=LAG_WARNING,
                    metric=self.metric,
                )
            )

    def _sample(self) -> int | None:
        """Read the learner's position; warn (once per episode) when it lags the replay."""
        if self.learner_url is None or self.phase != "producing":
            return None
        learned = live.scrape(self.learner_url, ("driftline_learner_examples_total",))
        if learned is None:
            return None
        replayed = self.produced - self.produced // BAD_EVERY  # less the malformed ones
        sample = LagSample(int(time.time() * 1000), replayed, int(learned))
        self.samples.append(sample)
        if sample.lag > LAG_WARNING and not self._warned:
            self._warned = True
            if self.console is not None:
                self.console.print(
                    f"[yellow]warning[/]: the learner lags the replay by {sample.lag:,} "
                    f"examples (more than {LAG_WARNING}); the served model is that far behind"
                )
        elif sample.lag <= LAG_WARNING // 2:
            self._warned = False
        return sample.lag


def _malformed(example: LabelledExample, index: int) -> bytes:
    """A broken copy of ``example`` that the validator must dead-letter (not lose)."""
    doc = example.model_dump(mode="json")
    features = doc["features"]
    kind = index // BAD_EVERY % 3
    if kind == 0 and features:
        features.pop(sorted(features)[0])  # missing_feature
    elif kind == 1:
        features["not_in_the_spec"] = 1.0  # unexpected_feature
    else:
        doc["label"] = "not-a-label"  # bad_label
    return json.dumps(doc).encode()


def _produce(
    settings: DriftlineSettings,
    source: DemoStream,
    view: _View,
    options: DemoOptions,
) -> int:
    topics = Topics(settings.topic_prefix)
    raw, requests = topics.name("examples.raw"), topics.name("predictions.requests")
    producer = make_producer(settings, client_id="driftline-demo", linger_ms=5)
    rate = options.rate or (RATE_QUICK if options.quick else RATE)
    stream = source.name
    key = stream.encode()
    sent = 0
    try:
        for index, (example_id, features, label) in enumerate(source.identified()):
            delay = view.started + index / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)  # pacing the replay, not waiting for a result
            now = datetime.now(UTC)
            example = LabelledExample(
                stream=stream,
                example_id=example_id,
                features=features,
                label=label,
                event_time=now,
            )
            with view.observer.locked() as state:
                state.expect(example_id, index)
                serving = bool(state.loads)
            if is_malformed(index):
                producer.send(raw, key=key, value=_malformed(example, index))
            else:
                if serving:  # the request comes first; its label follows
                    request = PredictionRequest(
                        stream=stream, example_id=example_id, features=features
                    )
                    producer.send(requests, key=key, value=encode(request))
                producer.send(raw, key=key, value=encode_raw(example))
            if index % GARBAGE_EVERY == GARBAGE_EVERY // 2:
                producer.send(raw, key=key, value=b"\xff\xfe not an event")
                with view.observer.locked() as state:
                    state.garbage_sent += 1
            sent = index + 1
            view.produced = sent
            view.tick()
        producer.flush()
    finally:
        producer.close()
    return sent


def _settle(
    settings: DriftlineSettings,
    view: _View,
    ports: dict[str, int],
    timeout_s: float,
) -> float | None:
    """Wait until every example is accounted for, learned, and no training run is open."""
    view.phase = "settling"
    learner_url = f"http://127.0.0.1:{ports['learner']}/metrics"
    registry = Registry.open(settings, relay=False)
    deadline = time.monotonic() + timeout_s
    learned: float | None = None
    try:
        while time.monotonic() < deadline:
            view.tick(force=True)
            learned = live.scrape(learner_url, ("driftline_learner_examples_total",))
            with view.observer.locked() as state:
                accounted = not state.unaccounted() and (
                    state.rejected_unreadable >= state.garbage_sent
                )
                valid = len(state.valid_ids)
                stream = state.stream
            running = [r for r in registry.list_runs(model=stream) if r.status == "running"]
            if accounted and learned is not None and learned >= valid and not running:
                return learned
            time.sleep(0.5)
    finally:
        registry.close()
    return learned


def _valid_positions(state: DemoState) -> list[int]:
    """Stream index of the k-th valid example (the valid topic keeps the stream's order)."""
    return sorted(state.index_of[i] for i in state.valid_ids if i in state.index_of)


def _at(positions: list[int], count: int) -> int:
    """The stream index just after the ``count``-th valid example."""
    if not positions or count <= 0:
        return 0
    return positions[min(count, len(positions)) - 1] + 1


def _served_curve(
    state: DemoState, positions: list[int], metric: str = "accuracy"
) -> analysis.Curve:
    """The served model's ``metric`` from the evaluator's ``served`` track (across swaps).

    The track counts the valid examples the evaluator scored with the champion of the
    moment; they run without a gap from the first champion to the end of the stream, so
    the k-th scored one is valid example ``skipped + k``.
    """
    snaps = sorted((s for s in state.served if s.role == "served"), key=lambda s: s.example_count)
    skipped = max(0, len(positions) - (snaps[-1].example_count if snaps else 0))
    rolling: list[tuple[int, float]] = []
    cumulative: list[tuple[int, int, float]] = []
    for snap in snaps:
        x = _at(positions, skipped + snap.example_count)
        value = snap.values.get(f"rolling_{metric}")
        if value is not None:
            rolling.append((x, value))
        total = snap.values.get(metric)
        if total is not None:
            cumulative.append((x, snap.example_count, total * snap.example_count))
    window = snaps[-1].window if snaps else 1
    return analysis.Curve("driftline (served)", "served", tuple(rolling), window, tuple(cumulative))


def _report(
    state: DemoState, source: DemoStream, run_dir: Path, elapsed_s: float, checks: list[Check]
) -> tuple[Path, list[analysis.SummaryRow]]:
    positions = _valid_positions(state)
    metric = "accuracy" if source.config.spec.label.kind == "class" else "mae"
    served = _served_curve(state, positions, metric)
    baselines_file = run_dir / "baselines.json"
    baselines = load_baselines(baselines_file) if baselines_file.exists() else []
    aliases: dict[int, list[str]] = {}
    for name in ("champion", "challenger", "online"):
        version = state.alias(name)
        if version is not None:
            aliases.setdefault(version, []).append(name)
    data = analysis.build_report(
        source,
        baselines,
        served=served,
        drift_events=[
            d.model_copy(update={"example_count": _at(positions, d.example_count)})
            for d in state.drifts
        ],
        swaps=[
            (move, state.first_answer[move.to_version])
            for move in state.alias_moves
            if move.alias == "champion"
            and move.to_version is not None
            and move.to_version in state.first_answer
        ],
        versions=[state.versions[v] for v in sorted(state.versions)],
        aliases={v: ", ".join(names) for v, names in aliases.items()},
        metadata=(
            ("run directory", str(run_dir)),
            ("duration", f"{elapsed_s:,.0f} s"),
            ("examples produced", f"{state.produced:,}"),
            ("valid / rejected", f"{len(state.valid_ids):,} / {len(state.rejected_ids):,}"),
            ("dead letters", ", ".join(f"{r} {n}" for r, n in state.dead_reasons.items())),
            ("drift events", str(len(state.drifts))),
            ("promotions", str(len(state.promotions()))),
            ("swaps seen by serving", str(len(state.swaps()))),
            *(
                (
                    f"check: {c.name}",
                    ("ok: " if c.ok else "FAILED: " if c.required else "WARNING: ") + c.detail,
                )
                for c in checks
            ),
        ),
    )
    path = report.write_report(run_dir / "report.html", data)
    return path, analysis.summarize_data(data)


def _print_summary(console: Console, outcome: LoopOutcome) -> None:
    rows = outcome.summary
    number = outcome.source.config.spec.label.kind == "number"
    name = "MAE" if number else "accuracy"
    fmt = _num if number else _pct
    print_table(
        f"{name} on the stream",
        ("model", "overall", "post-drift", "recovery after each drift (examples)"),
        [
            (
                row.name,
                fmt(row.overall),
                fmt(row.post_drift),
                ", ".join("not recovered" if r is None else f"{r:,}" for r in row.recovery),
            )
            for row in rows
        ],
    )
    served = [r.post_drift for r in rows if r.role == "served" and r.post_drift is not None]
    others = [r for r in rows if r.role == "baseline" and r.post_drift is not None]
    if served and others:
        sign = -1.0 if number else 1.0  # the best: the lowest error, the highest accuracy
        best = max(others, key=lambda r: sign * (r.post_drift or 0.0))
        wins = sign * served[0] >= sign * (best.post_drift or 0.0)
        console.print(
            f"post-drift {name}: served {fmt(served[0])} is "
            f"{'at least as good as' if wins else 'WORSE than'} the best baseline "
            f"({best.name}, {fmt(best.post_drift)})"
        )
    print_table(
        "end-of-run checks",
        ("check", "result", "evidence"),
        [
            (c.name, "ok" if c.ok else ("FAILED" if c.required else "WARNING"), c.detail)
            for c in outcome.checks
        ],
    )
    unclean = {name: code for name, code in outcome.statuses.items() if code not in (0, None)}
    if unclean:
        console.print(f"[yellow]services that did not exit 0 on SIGTERM[/]: {unclean}")
    console.print(f"[bold]report[/]: {outcome.report_path}")


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:,.4g}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.2%}"
