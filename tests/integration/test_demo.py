"""``driftline demo``: Ctrl-C stops every process it started (the full run is CI's smoke step)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest


def processes_mentioning(text: str) -> list[int]:
    """PIDs (other than ours) whose command line or environment contains ``text``."""
    found = []
    needle = text.encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if (
                needle in (entry / "cmdline").read_bytes()
                or needle in (entry / "environ").read_bytes()
            ):
                found.append(int(entry.name))
        except OSError:  # gone, or not ours
            continue
    return found


def wait_for(predicate: object, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.2)
    return False


@pytest.mark.slow
def test_ctrl_c_leaves_no_process_behind(tmp_path: Path, kafka_bootstrap: str) -> None:
    """The demo on the session's broker (so no fixed port): its six services and the
    baselines job all stop on Ctrl-C. (CI's demo step runs the demo with its own broker.)"""
    data_dir = tmp_path / "demo-data"
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("DRIFTLINE_") or k in {"DRIFTLINE_CACHE_DIR", "DRIFTLINE_REQUIRE_REAL"}
    }
    env["DRIFTLINE_DATA_DIR"] = str(data_dir)
    env["DRIFTLINE_KAFKA_BOOTSTRAP"] = kafka_bootstrap
    demo = subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "services.cli.main", "demo", "--quick", "--no-live"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output: list[str] = []
    try:
        assert demo.stdout is not None
        deadline = time.monotonic() + 240
        for line in demo.stdout:
            output.append(line)
            if "are up" in line or time.monotonic() > deadline:
                break
        assert any("are up" in line for line in output), "".join(output)
        started = processes_mentioning(str(data_dir))
        assert len(started) >= 7, "six services and the baselines job should run"
        demo.send_signal(signal.SIGINT)  # what Ctrl-C sends to the foreground process
        rest, _ = demo.communicate(timeout=90)
        output.append(rest)
    finally:
        if demo.poll() is None:
            demo.kill()
    assert demo.returncode == 130, "".join(output)
    assert wait_for(lambda: not processes_mentioning(str(data_dir)), 30), (
        f"left behind: {processes_mentioning(str(data_dir))}"
    )
