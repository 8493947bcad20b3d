"""Run services as supervised subprocesses, and stop every one of them on the way out.

Each child runs ``python -m services.NAME`` in its own session, so a Ctrl-C in the
terminal reaches only the supervisor, which then stops the children in reverse order:
SIGTERM, a grace period, then SIGKILL. On Linux each child also asks the kernel for a
SIGTERM when its parent dies (``PR_SET_PDEATHSIG``), so even a killed supervisor leaves
no orphan behind.

>>> import sys
>>> with Supervisor(log_dir=None) as sup:
...     child = sup.start("sleeper", [sys.executable, "-c", "import time; time.sleep(60)"])
...     child.alive
True
>>> child.alive, child.returncode is not None
(False, True)
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import IO

from services.common.errors import DriftlineError
from services.common.priority import lower_priority

log = logging.getLogger(__name__)

GRACE_S = 10.0
_PR_SET_PDEATHSIG = 1


class ServiceDied(DriftlineError):
    """A supervised service exited while it was meant to run."""


# loaded once here: a child between fork and exec must not dlopen (another thread may
# hold the loader's lock)
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


def _prepare_child(niceness: int) -> None:  # pragma: no cover - runs in the child
    """In the child before exec: die with the parent (Linux), then lower the priority.

    With the kernel's autogroup scheduling on (most desktop and many server kernels), the
    CPU is shared fairly between sessions first, and a process's nice value only orders
    it within its session. The child has a session of its own, so its niceness is given
    to that session's autogroup too; otherwise a "background" job would still take an
    equal share of the CPU from the services.
    """
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if niceness:
        lower_priority(niceness)  # the child leads its session: its autogroup too


@dataclass
class Child:
    """One supervised process and where its output goes."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path | None
    oneshot: bool = False
    started_at: float = field(default_factory=time.monotonic)
    _log: IO[bytes] | None = None

    @property
    def alive(self) -> bool:
        """True while the process runs."""
        return self.process.poll() is None

    @property
    def returncode(self) -> int | None:
        """The exit status once it has exited."""
        return self.process.poll()

    def tail(self, lines: int = 20) -> str:
        """The last lines of the child's log (empty without a log file)."""
        if self.log_path is None or not self.log_path.exists():
            return ""
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])


class Supervisor:
    """Starts children, checks they stay up, and stops them all (reverse start order)."""

    def __init__(
        self,
        log_dir: Path | None,
        env: Mapping[str, str] | None = None,
        *,
        stop_last: Sequence[str] = (),
    ) -> None:
        self.log_dir = log_dir
        self.env = dict(os.environ if env is None else env)
        self.stop_last = tuple(stop_last)
        """Children stopped only once the others are gone (see :meth:`stop_all`)."""
        self.children: list[Child] = []
        if log_dir is not None:
            log_dir.mkdir(parents=True, exist_ok=True)

    def __enter__(self) -> Supervisor:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop_all()

    def start(
        self,
        name: str,
        argv: Sequence[str],
        env: Mapping[str, str] | None = None,
        *,
        oneshot: bool = False,
        niceness: int = 0,
    ) -> Child:
        """Start ``argv`` as ``name`` with the supervisor's environment plus ``env``.

        A ``oneshot`` child is a job: exiting with status 0 is its success, not a death.
        ``niceness`` lowers the child's CPU priority (a background job yields to services).
        """
        log_path = None if self.log_dir is None else self.log_dir / f"{name}.log"
        out: IO[bytes] | int = subprocess.DEVNULL
        handle: IO[bytes] | None = None
        if log_path is not None:
            handle = log_path.open("ab")
            out = handle
        process = subprocess.Popen(  # noqa: S603 - argv is built by us, never a shell
            list(argv),
            env={**self.env, **(env or {})},
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=partial(_prepare_child, niceness),
        )
        child = Child(name, process, log_path, oneshot=oneshot, _log=handle)
        self.children.append(child)
        log.info("started %s (pid %d)", name, process.pid)
        return child

    def check(self) -> None:
        """Raise ServiceDied naming the first child that exited, with its last log lines."""
        for child in self.children:
            if not child.alive and not (child.oneshot and child.returncode == 0):
                raise ServiceDied(
                    f"{child.name} exited with status {child.returncode}; "
                    f"last lines of {child.log_path}:\n{child.tail()}"
                )

    def stop(self, child: Child, grace_s: float = GRACE_S) -> int | None:
        """SIGTERM, wait up to ``grace_s``, then SIGKILL; returns the exit status."""
        if child.alive:
            child.process.send_signal(signal.SIGTERM)
        return self._reap(child, grace_s)

    def _reap(self, child: Child, grace_s: float) -> int | None:
        """Wait up to ``grace_s`` for a signalled child, then SIGKILL it; close its log."""
        if child.alive:
            try:
                child.process.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                log.warning("%s ignored SIGTERM for %.0fs: killing it", child.name, grace_s)
                child.process.kill()
                child.process.wait(timeout=GRACE_S)
        if child._log is not None:
            child._log.close()
            child._log = None
        return child.returncode

    def stop_all(
        self, grace_s: float = GRACE_S, *, last: Sequence[str] | None = None
    ) -> dict[str, int | None]:
        """Stop every child: SIGTERM to all at once (newest first), so they wind down side
        by side, then wait for each within one ``grace_s`` deadline and SIGKILL whoever
        is left. The children named in ``last`` (default :attr:`stop_last`: a server the
        others still write to as they stop, such as the registry) get their SIGTERM only
        once the others are gone, with a deadline of their own. Returns each one's exit
        status."""
        last = self.stop_last if last is None else last
        statuses: dict[str, int | None] = {}
        first = [c for c in reversed(self.children) if c.name not in last]
        final = [c for c in reversed(self.children) if c.name in last]
        for wave in (first, final):
            for child in wave:
                if child.alive:
                    child.process.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + grace_s
            for child in wave:
                statuses[child.name] = self._reap(child, max(0.0, deadline - time.monotonic()))
        return statuses
