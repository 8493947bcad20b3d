"""bench/RESULTS.md: the table written from benchmark results (pure: no broker)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from bench import __main__ as bench_main
from bench.harness import Result
from bench.results import Machine, describe_baselines, render, write
from services.common.settings import DriftlineSettings
from services.localbroker import KAFKA_VERSION

MACHINE = Machine(
    cpu="AMD EPYC",
    cores=2,
    cores_total=8,
    ram_gib=24.0,
    os="Debian GNU/Linux 12 (bookworm), Linux 6.1",
    python="CPython 3.11.7",
    kafka="3.9.1 (local single-node KRaft broker)",
    date="2026-11-23 10:00 UTC",
)

RESULTS = [
    Result("roundtrip", 41_234.5, "events/s", 120_000.0),
    Result(
        "learner",
        9_876.0,
        "examples/s",
        12_345.0,
        extra={"accuracy": 0.8912, "accuracy_identical": True, "note": "a|b"},
    ),
]


def table_rows(text: str) -> list[list[str]]:
    """The cells of the results table (the first table of the document)."""
    lines = text.splitlines()
    start = lines.index("| bench | value | unit | baseline | ratio | details |")
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split(" | ")])
    return rows


def test_one_row_per_result_with_value_baseline_and_ratio() -> None:
    rows = table_rows(render(RESULTS, MACHINE))
    assert [r[0] for r in rows] == ["`roundtrip`", "`learner`"]
    assert rows[0][1:5] == ["41,234", "events/s", "120,000", "0.344"]
    assert rows[1][1:5] == ["9,876", "examples/s", "12,345", "0.800"]
    # extra figures go into the details cell; a '|' inside a value cannot break the table
    assert rows[1][5] == "accuracy=0.891, accuracy_identical=True, note=a\\|b"


def test_machine_and_mode_are_described() -> None:
    text = render(RESULTS, MACHINE, quick=True)
    for expected in (
        "| CPU | AMD EPYC |",
        "| cores | 2 available of 8 |",
        "| RAM | 24 GiB |",
        "| Python | CPython 3.11.7 |",
        "| Kafka | 3.9.1 (local single-node KRaft broker) |",
        "| date | 2026-11-23 10:00 UTC |",
    ):
        assert expected in text
    assert "mode: quick" in text


def test_baselines_come_from_the_bench_modules() -> None:
    found = describe_baselines(RESULTS)
    assert found["roundtrip"].startswith("events/s produced and consumed")
    text = render(RESULTS, MACHINE)
    assert f"- `roundtrip`: {found['roundtrip']}" in text
    # an explicit mapping wins, and a bench with no description is simply not listed
    text = render(RESULTS, MACHINE, baselines={"learner": "River in-process"})
    assert "- `learner`: River in-process" in text
    assert "- `roundtrip`" not in text


def test_describe_reports_the_broker_in_use() -> None:
    now = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    local = Machine.describe(DriftlineSettings.load(env={}), now=now)
    assert local.kafka.startswith(KAFKA_VERSION)
    assert local.date == "2026-11-23 10:00 UTC"
    assert local.cores >= 1 and local.ram_gib > 0 and local.cpu and local.python
    remote = Machine.describe(
        DriftlineSettings.load(env={"DRIFTLINE_KAFKA_BOOTSTRAP": "kafka:9092"}), now=now
    )
    assert remote.kafka == "external broker at kafka:9092"


def test_write_creates_the_file(tmp_path: Path) -> None:
    path = write(tmp_path / "bench" / "RESULTS.md", RESULTS)
    assert table_rows(path.read_text(encoding="utf-8"))[0][0] == "`roundtrip`"


def test_main_writes_every_result_it_ran(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`python -m bench NAME --write PATH`, with the benchmark's run replaced by a stub."""
    import bench.roundtrip

    def fake_run(quick: bool) -> Result:
        return Result("roundtrip", 2.0, "events/s", 4.0, extra={"quick": quick})

    monkeypatch.setattr(bench.roundtrip, "run", fake_run)
    out = tmp_path / "RESULTS.md"
    assert bench_main.main(["roundtrip", "--quick", "--write", str(out)]) == 0
    rows = table_rows(out.read_text(encoding="utf-8"))
    assert rows == [["`roundtrip`", "2.000", "events/s", "4.000", "0.500", "quick=True"]]
    # the JSON line is still the last line printed
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith('{"bench": "roundtrip"')
