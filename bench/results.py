"""``bench/RESULTS.md``: the benchmark results as a markdown table, with the machine.

``make bench`` runs ``python -m bench all --write bench/RESULTS.md``: every benchmark's
:class:`~bench.harness.Result` (value, unit, same-run baseline, ratio and its extra
figures) goes into one table, followed by what each baseline is (the first paragraph of
the benchmark module's docstring) and a description of the machine, so that figures from
different machines are never compared blind.

>>> from bench.harness import Result
>>> machine = Machine(cpu="Example CPU", cores=2, cores_total=2, ram_gib=24.0,
...                   os="Linux", python="3.11.7", kafka="3.9.1", date="2026-11-23 10:00 UTC")
>>> text = render([Result("roundtrip", 50_000.0, "events/s", 100_000.0)], machine)
>>> print(text.splitlines()[4])
| bench | value | unit | baseline | ratio | details |
>>> print(text.splitlines()[6])
| `roundtrip` | 50,000 | events/s | 100,000 | 0.500 |  |
"""

from __future__ import annotations

import importlib
import os
import platform
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.harness import Result, cpu_count
from services.common.settings import DriftlineSettings
from services.localbroker import KAFKA_VERSION


@dataclass(frozen=True)
class Machine:
    """What the benchmarks ran on.

    Build it with :meth:`describe`; the fields are plain text so a result file can be
    read without driftline.

    Examples
    --------
    >>> m = Machine.describe(DriftlineSettings.load(env={}))
    >>> m.cores >= 1 and m.ram_gib > 0 and m.kafka.startswith(KAFKA_VERSION)
    True
    """

    cpu: str
    cores: int
    cores_total: int
    ram_gib: float
    os: str
    python: str
    kafka: str
    date: str

    @classmethod
    def describe(
        cls, settings: DriftlineSettings | None = None, now: datetime | None = None
    ) -> Machine:
        """This machine, the broker the benchmarks use and the time (UTC)."""
        settings = settings or DriftlineSettings.load()
        if settings.uses_local_broker:
            kafka = f"{KAFKA_VERSION} (local single-node KRaft broker)"
        else:
            kafka = f"external broker at {settings.bootstrap}"
        when = (now or datetime.now(UTC)).astimezone(UTC)
        return cls(
            cpu=_cpu_model(),
            cores=cpu_count(),
            cores_total=os.cpu_count() or cpu_count(),
            ram_gib=round(_ram_bytes() / 2**30, 1),
            os=_os_name(),
            python=f"{platform.python_implementation()} {platform.python_version()}",
            kafka=kafka,
            date=when.strftime("%Y-%m-%d %H:%M UTC"),
        )

    def rows(self) -> list[tuple[str, str]]:
        """``(what, value)`` pairs for the table."""
        cores = str(self.cores)
        if self.cores_total != self.cores:
            cores += f" available of {self.cores_total}"
        return [
            ("CPU", self.cpu),
            ("cores", cores),
            ("RAM", f"{self.ram_gib:g} GiB"),
            ("OS", self.os),
            ("Python", self.python),
            ("Kafka", self.kafka),
            ("date", self.date),
        ]


def render(
    results: Sequence[Result],
    machine: Machine,
    *,
    quick: bool = False,
    baselines: Mapping[str, str] | None = None,
) -> str:
    """The markdown document: results table, what the baselines are, the machine.

    ``baselines`` maps a bench name to a description of its baseline; the default takes
    the first paragraph of each ``bench.<name>`` module's docstring.
    """
    baselines = dict(baselines) if baselines is not None else describe_baselines(results)
    mode = "quick (`--quick`, short runs: indicative only)" if quick else "full"
    lines = [
        "# Benchmark results",
        "",
        f"Written by `python -m bench ... --write`; mode: {mode}. Ratio = value / baseline.",
        "",
        "| bench | value | unit | baseline | ratio | details |",
        "|---|---:|---|---:|---:|---|",
    ]
    for r in results:
        details = ", ".join(f"{k}={_cell(v)}" for k, v in r.extra.items())
        lines.append(
            f"| `{r.bench}` | {_number(r.value)} | {_cell(r.unit)} | {_number(r.baseline)} "
            f"| {r.ratio:.3f} | {details} |"
        )
    described = [(r.bench, baselines[r.bench]) for r in results if baselines.get(r.bench)]
    if described:
        lines += ["", "## What is measured", ""]
        lines += [f"- `{name}`: {_cell(text)}" for name, text in described]
    lines += ["", "## Machine", "", "| | |", "|---|---|"]
    lines += [f"| {what} | {_cell(value)} |" for what, value in machine.rows()]
    return "\n".join(lines) + "\n"


def write(path: Path, results: Sequence[Result], *, quick: bool = False) -> Path:
    """Render ``results`` with this machine's description into ``path``; returns it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(results, Machine.describe(), quick=quick), encoding="utf-8")
    return path


def describe_baselines(results: Sequence[Result]) -> dict[str, str]:
    """The first docstring paragraph of each result's ``bench.<name>`` module, by name."""
    found: dict[str, str] = {}
    for r in results:
        try:
            doc = importlib.import_module(f"bench.{r.bench}").__doc__ or ""
        except ImportError:
            continue
        paragraph = " ".join(doc.strip().split("\n\n")[0].split())
        paragraph = paragraph.removeprefix(f"{r.bench}:").strip()
        if paragraph:
            found[r.bench] = paragraph
    return found


def _number(value: float) -> str:
    if value == 0 or abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:,.3f}"


def _cell(value: Any) -> str:
    if isinstance(value, float):
        value = _number(value)
    return str(value).replace("|", "\\|").replace("\n", " ")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _ram_bytes() -> int:
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 0


def _os_name() -> str:
    pretty = ""
    try:
        for line in Path("/etc/os-release").read_text(encoding="utf-8").splitlines():
            if line.startswith("PRETTY_NAME="):
                pretty = line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    kernel = f"{platform.system()} {platform.release()}"
    return f"{pretty}, {kernel}" if pretty else kernel
