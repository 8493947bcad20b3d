"""``driftline demo`` on data a user brings: a CSV with its own columns and known drift
points, River's TrumpApproval (a number label), and a drifting regression CSV.

Each runs the whole demo (six services, the baselines job) on the session's broker, on a
short stream, to the end; its report must show post-drift numbers and the right baselines.
"""

from __future__ import annotations

import csv
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest

# a whole demo each (six services, the baselines job): slow, and longer than the default
# timeout on a loaded 2-core machine
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def run_demo(tmp_path: Path, kafka_bootstrap: str, *args: str) -> tuple[str, Path]:
    """Run ``driftline demo --no-live ARGS`` to the end; its output and its report."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("DRIFTLINE_") or k in {"DRIFTLINE_CACHE_DIR", "DRIFTLINE_REQUIRE_REAL"}
    }
    env["DRIFTLINE_DATA_DIR"] = str(tmp_path / "demo-data")
    env["DRIFTLINE_KAFKA_BOOTSTRAP"] = kafka_bootstrap
    done = subprocess.run(  # noqa: S603
        [sys.executable, "-m", "services.cli.main", "demo", "--no-live", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    found = re.search(r"report\S*: (\S+report\.html)", output.replace("\n", ""))
    assert found is not None, output
    return output, Path(found.group(1))


def summary_rows(report: Path) -> dict[str, list[str]]:
    """The report's summary table: model -> its cells (role, overall, post-drift, ...)."""
    html = report.read_text(encoding="utf-8")
    table = html.split('<table id="summary">', 1)[1].split("</table>", 1)[0]
    rows = {}
    for row in re.findall(r"<tr class=\"\w+\">(.*?)</tr>", table):
        cells = re.findall(r"<td[^>]*>(.*?)</td>", row)
        rows[cells[0]] = cells[1:]
    return rows


def drifting_rows(n: int, drift_at: int, *, number: bool, seed: int = 7) -> list[list[object]]:
    """Rows of ``[index, id, a, b, target]``: the target's rule flips at ``drift_at``."""
    rng = random.Random(seed)  # noqa: S311 - test data
    rows: list[list[object]] = []
    for i in range(n):
        a, b = rng.uniform(0, 10), rng.uniform(0, 10)
        sign = 1 if i < drift_at else -1
        if number:
            target: object = round(sign * (2 * a - b) + rng.gauss(0, 0.5), 4)
        else:
            target = "rain" if sign * (a - b) + rng.gauss(0, 1) > 0 else "dry"
        rows.append([i, f"day-{i}", round(a, 4), round(b, 4), target])
    return rows


def write_csv(path: Path, rows: list[list[object]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["", "day", "a", "b", "target"])  # a dataframe's unnamed index first
        writer.writerows(rows)
    return path


def run_csv_demo(
    tmp_path: Path, kafka_bootstrap: str, name: str, *, number: bool
) -> tuple[str, Path]:
    """The demo on a drifting CSV of 1,600 rows (drift at 800) with its own label and id
    columns and an unnamed index column, as a user's file would come."""
    data = write_csv(tmp_path / name, drifting_rows(1600, 800, number=number))
    return run_demo(
        tmp_path,
        kafka_bootstrap,
        "--dataset",
        str(data),
        "--label-column",
        "target",
        "--id-column",
        "day",
        "--drift-at",
        "800",
    )


def test_a_csv_with_its_own_columns_and_a_drift_point(tmp_path: Path, kafka_bootstrap: str) -> None:
    output, report = run_csv_demo(tmp_path, kafka_bootstrap, "weather.csv", number=False)
    rows = summary_rows(report)
    served = next(cells for cells in rows.values() if cells[0] == "served")
    assert re.fullmatch(r"\d+\.\d%", served[2]), served  # a post-drift accuracy
    baselines = [cells for cells in rows.values() if cells[0] == "baseline"]
    assert len(baselines) == 6 and all(re.fullmatch(r"\d+\.\d%", c[2]) for c in baselines)
    assert "majority class (so far)" in rows
    assert "abrupt drift at 800" in report.read_text(encoding="utf-8")
    assert "post-drift accuracy: served" in output
    assert "column 1 has no name in the header" in output  # the index: named, not read


def test_a_number_label_runs_to_the_end_with_regression_baselines(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    output, report = run_csv_demo(tmp_path, kafka_bootstrap, "load.csv", number=True)
    rows = summary_rows(report)
    assert "River StandardScaler | LinearRegression" in rows
    assert "River StandardScaler | ARFRegressor (10 models)" in rows
    assert "mean label (so far)" in rows
    served = next(cells for cells in rows.values() if cells[0] == "served")
    assert re.fullmatch(r"[\d.,]+", served[2]), served  # a post-drift MAE
    assert "post-drift MAE: served" in output
    assert "MAE over the stream" in report.read_text(encoding="utf-8")


def test_trump_approval_runs_to_the_end_with_regression_baselines(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    output, report = run_demo(tmp_path, kafka_bootstrap, "--dataset", "river:TrumpApproval")
    rows = summary_rows(report)
    assert "River StandardScaler | HoeffdingAdaptiveTreeRegressor" in rows
    assert all(not name.startswith("River DriftRetraining") for name in rows)
    assert "MAE on the stream" in output
