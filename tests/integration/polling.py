"""Polling with a deadline, for tests that wait on a real broker or a service process."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path


def wait_for(
    predicate: Callable[[], bool],
    timeout_s: float,
    what: str,
    procs: subprocess.Popen[bytes] | Sequence[subprocess.Popen[bytes]] | None = None,
    log: Path | None = None,
    poll_s: float = 0.1,
) -> None:
    """Poll ``predicate`` until it holds; fail naming ``what``, with the log's tail, at the
    deadline or as soon as one of the watched processes has exited."""
    watched = [procs] if isinstance(procs, subprocess.Popen) else list(procs or [])
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        for proc in watched:
            if proc.poll() is not None:
                raise AssertionError(
                    f"{' '.join(map(str, proc.args))} exited ({proc.returncode}) "
                    f"waiting for {what}\n{_tail(log)}"
                )
        time.sleep(poll_s)
    raise AssertionError(f"timed out waiting for {what}\n{_tail(log)}")


def _tail(log: Path | None) -> str:
    return log.read_text()[-4000:] if log is not None and log.exists() else ""
