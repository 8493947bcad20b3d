"""What every benchmark shares: a broker for the run, timing, the table and the JSON line."""

from __future__ import annotations

import json
import os
import resource
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from schemas import StreamConfig
from services.common.settings import DriftlineSettings
from services.localbroker.ports import free_ports
from services.localbroker.process import LocalBroker

# A fixed Ed25519 private key (base64) for bench processes.
SIGNING_KEY = "3vVq+MF+7Pju9GlrAKTrriYzSvWCbTSTB/+lyab8iO4="


@dataclass
class Result:
    """A benchmark's outcome: the headline value against a same-run baseline."""

    bench: str
    value: float
    unit: str
    baseline: float
    rows: Sequence[Sequence[Any]] = field(default_factory=list)
    columns: Sequence[str] = ("measure", "value", "unit")
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        """value / baseline (0 when the baseline is 0)."""
        return self.value / self.baseline if self.baseline else 0.0

    def json_line(self) -> str:
        """The last line a benchmark prints."""
        doc = {
            "bench": self.bench,
            "value": round(self.value, 4),
            "unit": self.unit,
            "baseline": round(self.baseline, 4),
            "ratio": round(self.ratio, 4),
            **self.extra,
        }
        return json.dumps(doc)


def emit(result: Result, console: Console | None = None) -> None:
    """Print the readable table, then the JSON line as the very last line."""
    if console is None:  # a wide table is not squeezed into 80 columns
        console = Console(width=max(100, 12 * len(result.columns)))
    table = Table(title=f"bench {result.bench}", title_justify="left")
    for column in result.columns:
        table.add_column(str(column))
    for row in result.rows:
        table.add_row(*(_fmt(v) for v in row))
    console.print(table)
    console.print(
        f"value {_fmt(result.value)} {result.unit} vs baseline {_fmt(result.baseline)} "
        f"-> ratio {result.ratio:.3f}"
    )
    print(result.json_line(), flush=True)  # noqa: T201 - the contract of every benchmark


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 100 else f"{value:,.0f}"
    return str(value)


@contextmanager
def broker_settings(**overrides: Any) -> Iterator[DriftlineSettings]:
    """Settings for a benchmark run, with a unique topic prefix.

    Uses ``DRIFTLINE_KAFKA_BOOTSTRAP`` when set; otherwise starts a local broker on free
    ports in a temporary directory and stops it afterwards.
    """
    prefix = f"bench-{uuid.uuid4().hex[:8]}."
    base = DriftlineSettings.load()
    with tempfile.TemporaryDirectory(prefix="driftline-bench-") as tmp:
        if not base.uses_local_broker:
            yield DriftlineSettings.load(topic_prefix=prefix, data_dir=Path(tmp), **overrides)
            return
        port, controller = free_ports(2)
        broker = LocalBroker(Path(tmp), base.cache_path, port=port, controller_port=controller)
        bootstrap = broker.start()
        try:
            yield DriftlineSettings.load(
                kafka_bootstrap=bootstrap, topic_prefix=prefix, data_dir=Path(tmp), **overrides
            )
        finally:
            broker.stop()


class Stopwatch:
    """``with Stopwatch() as sw: ...`` then ``sw.seconds``."""

    def __enter__(self) -> Stopwatch:
        self._start = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self._start


def peak_rss_mb(pid: int | None = None) -> float:
    """Peak resident memory in MB of this process, or of another live process by pid."""
    if pid is None:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    status = Path(f"/proc/{pid}/status").read_text()
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a live process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_count() -> int:
    """Cores available to this process."""
    return len(os.sched_getaffinity(0))


def logistic_config(stream: str, *, features: int, data_drift: bool) -> StreamConfig:
    """A bench stream's config: ``features`` number features ``x0...``, 0/1 labels, the
    fixed ``StandardScaler | LogisticRegression`` pipeline, no online versions."""
    return StreamConfig.model_validate(
        {
            "stream": stream,
            "version": 1,
            "spec": {
                "features": [{"name": f"x{i}", "type": "number"} for i in range(features)],
                "label": {"kind": "class", "classes": [0, 1]},
            },
            "model": {"pipeline": "preprocessing.StandardScaler | linear_model.LogisticRegression"},
            "policy": {
                "online_version_every": 10**9,
                "rolling_window": 1000,
                "drift": {"data_drift": data_drift},
            },
        }
    )
