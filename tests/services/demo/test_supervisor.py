"""The demo's supervisor: children stop, stubborn ones are killed."""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from services.demo.supervisor import ServiceDied, Supervisor


def wait_for(predicate: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_supervisor_stops_a_child_that_ignores_sigterm(tmp_path: Path) -> None:
    code = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('ready', flush=True); time.sleep(60)"
    )
    with Supervisor(tmp_path) as sup:
        child = sup.start("stubborn", [sys.executable, "-c", code])
        assert wait_for(lambda: "ready" in child.tail(), 30)
        status = sup.stop(child, grace_s=0.5)
    assert status == -signal.SIGKILL
    assert not child.alive


def test_check_names_the_dead_service_with_its_log(tmp_path: Path) -> None:
    code = "import sys; print('bad config: DRIFTLINE_X', flush=True); sys.exit(3)"
    with Supervisor(tmp_path) as sup:
        child = sup.start("fragile", [sys.executable, "-c", code])
        assert wait_for(lambda: not child.alive, 30)
        with pytest.raises(ServiceDied, match=r"fragile exited with status 3(.|\n)*DRIFTLINE_X"):
            sup.check()


def test_a_oneshot_job_that_succeeds_is_not_a_death(tmp_path: Path) -> None:
    with Supervisor(tmp_path) as sup:
        job = sup.start("job", [sys.executable, "-c", "pass"], oneshot=True)
        assert wait_for(lambda: not job.alive, 30)
        sup.check()
        failing = sup.start("job2", [sys.executable, "-c", "raise SystemExit(1)"], oneshot=True)
        assert wait_for(lambda: not failing.alive, 30)
        with pytest.raises(ServiceDied, match="job2"):
            sup.check()


PRINT_PRIORITY = """
import os
print(os.nice(0))
try:
    print(open("/proc/self/autogroup").read().split()[-1])
except OSError:
    print("none")
"""


def test_a_background_job_runs_at_a_lower_priority(tmp_path: Path) -> None:
    with Supervisor(tmp_path) as sup:
        job = sup.start("nice", [sys.executable, "-c", PRINT_PRIORITY], oneshot=True, niceness=19)
        assert wait_for(lambda: not job.alive, 30)
    nice, autogroup = job.tail().split()[-2:]
    assert nice == "19"
    # its own session's autogroup yields too, or the nice value would not count between
    # sessions
    assert autogroup in ("19", "none")


STOP_ORDER = """
import pathlib, signal, sys, time
def bye(*_):
    with open(sys.argv[1], "a") as out:
        out.write(sys.argv[2] + "\\n")
    if sys.argv[2] == "writer":
        time.sleep(0.5)  # still writing to the server as it stops
        with open(sys.argv[1], "a") as out:
            out.write("writer done\\n")
    sys.exit(0)
signal.signal(signal.SIGTERM, bye)
print("ready", flush=True)
time.sleep(60)
"""


def test_stop_last_children_outlive_the_others(tmp_path: Path) -> None:
    order = tmp_path / "order.txt"
    with Supervisor(tmp_path, stop_last=("server",)) as sup:
        server = sup.start("server", [sys.executable, "-c", STOP_ORDER, str(order), "server"])
        writer = sup.start("writer", [sys.executable, "-c", STOP_ORDER, str(order), "writer"])
        assert wait_for(lambda: "ready" in server.tail() and "ready" in writer.tail(), 30)
        statuses = sup.stop_all()
    assert statuses == {"writer": 0, "server": 0}
    assert order.read_text().split("\n")[:3] == ["writer", "writer done", "server"]
