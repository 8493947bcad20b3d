"""Lowering a service's priority: its nice value, and its autogroup's when it leads its
session (as every service ``driftline demo`` starts does)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from services.common.priority import lower_priority

_CHILD = """
import os, pathlib
from services.common.priority import lower_priority
print(lower_priority(3), os.nice(0))
group = pathlib.Path("/proc/self/autogroup")
print(group.read_text().split("nice")[-1].strip() if group.exists() else "none")
"""


def _run(new_session: bool) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", _CHILD],
        capture_output=True,
        text=True,
        timeout=120,
        start_new_session=new_session,
        check=True,
        cwd=Path(__file__).resolve().parents[3],
    )
    return done.stdout.split()


def test_a_session_leader_lowers_its_nice_value_and_its_autogroup() -> None:
    base = os.nice(0)
    now, nice, group = _run(new_session=True)
    assert int(now) == int(nice) == min(19, base + 3)
    if group != "none":  # autogroup scheduling: the session's group yields too
        assert int(group) == int(now)


def test_a_process_that_does_not_lead_its_session_leaves_the_autogroup_alone() -> None:
    group_before = Path("/proc/self/autogroup")
    if not group_before.exists():
        pytest.skip("no autogroup scheduling on this kernel")
    before = group_before.read_text().split("nice")[-1].strip()
    now, nice, group = _run(new_session=False)
    assert int(now) == int(nice) == min(19, os.nice(0) + 3)
    assert group == before  # the test's own session is not slowed down


def test_a_niceness_out_of_range_is_refused() -> None:
    with pytest.raises(ValueError, match="0..19"):
        lower_priority(20)
