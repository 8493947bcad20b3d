"""The fit pool: its workers run below the trainer's priority, so a run's fits take only the
CPU the learner, serving and the evaluator leave."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from services.trainer.app import make_pool, stop_pool


def _worker_facts(pool: Any) -> tuple[int, bool, str]:
    """A worker's nice value, whether it leads its session, and its autogroup line (asked
    with standard-library calls: the workers cannot import the tests)."""
    nice = pool.submit(os.nice, 0).result(timeout=120)
    pid = pool.submit(os.getpid).result(timeout=120)
    sid = pool.submit(os.getsid, 0).result(timeout=120)
    group = Path("/proc/self/autogroup")
    text = pool.submit(group.read_text).result(timeout=120) if group.exists() else ""
    return nice, sid == pid, text


def test_fit_workers_run_nice_steps_below_the_trainer() -> None:
    pool = make_pool(1, nice=7)
    try:
        worker = pool.submit(os.nice, 0).result(timeout=120)  # os.nice(0): its niceness now
    finally:
        stop_pool(pool)
    assert worker == os.nice(0) + 7


def test_a_nice_fit_worker_leads_its_own_session_and_lowers_its_autogroup() -> None:
    """Under autogroup scheduling a nice value counts only within a session: the worker
    must lead a session of its own, whose group yields too, or the learner's session would
    still share the CPU evenly with the trainer's fits."""
    pool = make_pool(1, nice=7)
    try:
        nice, leads, group = _worker_facts(pool)
    finally:
        stop_pool(pool)
    assert nice == os.nice(0) + 7
    assert leads
    found = re.search(r"nice\s+(-?\d+)", group)
    if found:  # autogroup scheduling visible here (not in a container's cgroup)
        assert int(found.group(1)) == nice


def test_a_fit_worker_without_nice_stays_in_the_trainer_session() -> None:
    pool = make_pool(1, nice=0)
    try:
        nice, leads, _ = _worker_facts(pool)
    finally:
        stop_pool(pool)
    assert nice == os.nice(0) and not leads
