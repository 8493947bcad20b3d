"""Lowering a service's CPU priority, for work off the hot path.

With the kernel's autogroup scheduling on (most desktop and many server kernels), the CPU
is shared fairly between sessions first, and a process's nice value only orders it within
its session: a service started in a session of its own (as ``driftline demo`` starts
each one) would keep an equal share of the CPU whatever its nice value. So a process that
leads its own session gives its niceness to that session's autogroup too; one that does
not lead its session (a shell's job, a test) leaves the autogroup alone, since that would
slow down everything else in the session.
"""

from __future__ import annotations

import os

__all__ = ["lower_priority"]


def lower_priority(niceness: int) -> int:
    """Add ``niceness`` (0 to 19) to this process's nice value, and to its session's
    autogroup when it leads the session; returns the nice value now."""
    if not 0 <= niceness <= 19:
        raise ValueError(f"niceness must be within 0..19, got {niceness}")
    now = os.nice(niceness) if niceness else os.nice(0)
    if niceness and os.getsid(0) == os.getpid():
        try:
            with open("/proc/self/autogroup", "w") as autogroup:
                autogroup.write(str(now))
        except OSError:  # no autogroup scheduling here: the nice value is enough
            pass
    return now
