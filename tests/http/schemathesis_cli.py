"""Run the schemathesis CLI, as a user would, against a running server's OpenAPI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLES = 6  # per operation and phase: each run takes about a minute on 2 busy cores
SEED = 20261207  # fixed, so a failure in CI reproduces with the printed command


def schemathesis(base_url: str, *headers: str, report: Path, config: Path | None = None) -> str:
    """``schemathesis run --checks all`` against ``base_url``; fails the test on any
    failure (a server error, an undocumented status, a response off its schema, a
    schema-valid request refused or an invalid one accepted), with the report's tail."""
    command = [str(Path(sys.executable).with_name("schemathesis"))]
    if config is not None:
        command += ["--config-file", str(config)]
    command += [
        "run",
        f"{base_url}/openapi.json",
        "--checks",
        "all",
        "--max-examples",
        str(EXAMPLES),
        "--seed",
        str(SEED),
        "--workers",
        "1",
        "--wait-for-schema",
        "30",
        "--request-timeout",
        "30",
        "--report",
        "junit",
        "--report-dir",
        str(report),
    ]
    for header in headers:
        command += ["--header", header]
    report.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(  # in report's directory: the CLI keeps a cache in its cwd
        command, cwd=report, capture_output=True, text=True, timeout=600, check=False
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{' '.join(command)}\n{output[-6000:]}"
    assert " passed" in output, output[-3000:]
    return output
