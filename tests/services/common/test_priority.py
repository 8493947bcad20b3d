"""Lowering a service's priority: its nice value, and its autogroup's when it leads its
session (as every service ``driftline demo`` starts does)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from services.common.priority import lower_priority

_CHILD = """
import json, os, pathlib
from services.common.priority import lower_priority
group = pathlib.Path("/proc/self/autogroup")
now = lower_priority(3)
print(json.dumps([now, os.nice(0), group.read_text() if group.exists() else None]))
"""


def _group_nice(text: str | None) -> int | None:
    """The nice value in a ``/proc/PID/autogroup`` line (``/autogroup-25 nice 0``), or
    None when the kernel gives none (no autogroup, or a container that hides it)."""
    found = re.search(r"nice\s+(-?\d+)", text or "")
    return int(found.group(1)) if found else None


def _run(new_session: bool) -> tuple[int, int, int | None]:
    done = subprocess.run(
        [sys.executable, "-c", _CHILD],
        capture_output=True,
        text=True,
        timeout=120,
        start_new_session=new_session,
        check=True,
        cwd=Path(__file__).resolve().parents[3],
    )
    now, nice, group = json.loads(done.stdout.strip().splitlines()[-1])
    return now, nice, _group_nice(group)


def test_a_session_leader_lowers_its_nice_value_and_its_autogroup() -> None:
    base = os.nice(0)
    now, nice, group = _run(new_session=True)
    assert now == nice == min(19, base + 3)
    if group is not None:  # autogroup scheduling: the session's group yields too
        assert group == now


def test_a_process_that_does_not_lead_its_session_leaves_the_autogroup_alone() -> None:
    group_file = Path("/proc/self/autogroup")
    before = _group_nice(group_file.read_text()) if group_file.exists() else None
    if before is None:
        pytest.skip("no autogroup scheduling visible here")
    now, nice, group = _run(new_session=False)
    assert now == nice == min(19, os.nice(0) + 3)
    assert group == before  # the test's own session is not slowed down


def test_a_niceness_out_of_range_is_refused() -> None:
    with pytest.raises(ValueError, match="0..19"):
        lower_priority(20)
