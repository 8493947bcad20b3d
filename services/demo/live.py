"""The demo's live terminal view: service rates from /metrics, the loop from the topics."""

from __future__ import annotations

import time
import urllib.request
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families
from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from services.demo.state import DemoState


def scrape(url: str, names: tuple[str, ...], timeout_s: float = 0.5) -> float | None:
    """Sum of the samples of the named metrics at ``url`` (None when unreachable)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310 - our URL
            text = response.read().decode()
    except OSError:
        return None
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in names:
                total += sample.value
    return total


@dataclass
class Rate:
    """Events per second from successive readings of a counter."""

    last: tuple[float, float] | None = None
    value: float = 0.0
    total: float | None = None

    def update(self, total: float | None, now: float) -> None:
        """Take a new reading of the counter."""
        if total is None:
            return
        if self.last is not None and now > self.last[0]:
            self.value = max(0.0, (total - self.last[1]) / (now - self.last[0]))
        self.last = (now, total)
        self.total = total


@dataclass
class ServiceView:
    """One supervised service as the view shows it."""

    name: str
    metrics_url: str | None
    counters: tuple[str, ...]
    unit: str
    pid: int | None = None
    alive: bool = True
    rate: Rate = field(default_factory=Rate)


def refresh(services: list[ServiceView]) -> None:
    """Scrape every service's counters once."""
    now = time.monotonic()
    for svc in services:
        if svc.metrics_url is not None and svc.alive:
            svc.rate.update(scrape(svc.metrics_url, svc.counters), now)


def render(
    state: DemoState,
    services: list[ServiceView],
    *,
    produced: int,
    total: int,
    elapsed_s: float,
    phase: str,
    lag: int | None = None,
    lag_warning: int = 100,
    metric: str = "accuracy",
) -> Group:
    """The whole view for one refresh; ``lag``: examples the learner is behind the replay
    (in red, with a warning, above ``lag_warning``)."""
    head = Text.assemble(
        ("driftline demo", "bold"),
        f"  stream {state.stream}   produced {produced:,}/{total:,}   ",
        f"elapsed {elapsed_s:,.0f}s   ",
        (phase, "cyan"),
    )
    table = Table(title="services", expand=True)
    for col in ("service", "pid", "state", "events/s", "total"):
        table.add_column(col, justify="right" if col in {"events/s", "total", "pid"} else "left")
    for svc in services:
        total_text = "-" if svc.rate.total is None else f"{svc.rate.total:,.0f} {svc.unit}"
        table.add_row(
            svc.name,
            str(svc.pid or "-"),
            "[green]up[/]" if svc.alive else "[red]exited[/]",
            f"{svc.rate.value:,.0f}",
            total_text,
        )
    version, accuracy = state.served_accuracy(metric)
    champion = state.alias("champion")
    meta = state.versions.get(champion) if champion is not None else None
    model_lines = [
        f"champion   v{champion} ({meta.kind} {meta.algorithm})"
        if meta is not None
        else f"champion   {'v' + str(champion) if champion else 'none yet'}",
        f"challenger {_v(state.alias('challenger'))}    online {_v(state.alias('online'))}",
        f"served rolling {metric} "
        + (f"[bold]{accuracy:.3f}[/] (v{version})" if accuracy is not None else "waiting"),
        "learner lag "
        + (
            "-"
            if lag is None
            else f"[bold red]{lag:,} examples: WARNING, more than {lag_warning} behind "
            "the replay[/]"
            if lag > lag_warning
            else f"{lag:,} examples"
        ),
        f"versions {len(state.versions)}   promotions {len(state.promotions())}   "
        f"swaps seen by serving {len(state.swaps())}   load failures {len(state.load_failures)}",
        f"valid {len(state.valid_ids):,}   dead letters {sum(state.dead_reasons.values()):,}"
        + (
            "  (" + ", ".join(f"{r} {n}" for r, n in state.dead_reasons.most_common(4)) + ")"
            if state.dead_reasons
            else ""
        ),
    ]
    drift_lines = [
        f"#{i + 1} {d.kind} by {d.detector} at example {d.example_count:,}"
        + (f" ({d.feature})" if d.feature else "")
        for i, d in enumerate(state.drifts[-4:], start=max(0, len(state.drifts) - 4))
    ] or ["none yet"]
    return Group(
        head,
        table,
        Panel("\n".join(model_lines), title="models"),
        Panel("\n".join(drift_lines), title=f"drift events ({len(state.drifts)})"),
    )


def _v(version: int | None) -> str:
    return "-" if version is None else f"v{version}"
