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

from schemas import Topics
from services.common.errors import DriftlineError
from services.common.kafka_client import ensure_topics, make_admin
from services.common.settings import DriftlineSettings
from services.console.output import print_table
from services.demo import analysis, live
from services.demo.baselines_job import stream_args
from services.demo.checks import Check, LagSample, end_checks
from services.demo.credentials import PRIVATE_VARS, service_token_env, signing_env
from services.demo.observer import Observer
from services.demo.replay import ReplayView, produce, settle
from services.demo.run_report import write_run_report
from services.demo.state import DemoState
from services.demo.stream import DEFAULT_SEED, DemoStream, load_stream
from services.demo.supervisor import Supervisor
from services.ingest.sources import Columns, csv_header, unnamed_columns
from services.ingest.spec_publish import publish_config
from services.localbroker.ports import free_ports
from services.localbroker.process import LocalBroker
from services.registry.client import is_remote

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
        view = ReplayView(
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
            produced = produce(
                local, source, view, options.rate or (RATE_QUICK if options.quick else RATE)
            )
            learned = settle(local, view, ports, timeout_s=180.0 if options.quick else 300.0)
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
            path, summary = write_run_report(
                snapshot, source, run_dir, time.monotonic() - started, checks
            )
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
