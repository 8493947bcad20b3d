"""Graceful shutdown on SIGTERM and SIGINT, shared by every service.

A service polls ``stop.requested`` (or waits on it) in its loop, then finishes the
current work, flushes, commits and exits 0 within its grace period.

Handlers nest: a :class:`GracefulShutdown` entered while another one's handlers are
installed shares that one's request, so a signal caught by the outer one (the
:mod:`~services.common.bootstrap`'s, installed first at start-up) is seen by the inner
one, and the other way round.

>>> with GracefulShutdown() as stop:
...     stop.requested
False
>>> with GracefulShutdown() as outer, GracefulShutdown() as inner:
...     outer.request()
...     inner.requested
True
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType, TracebackType
from typing import Any

log = logging.getLogger(__name__)


class _Request:
    """One process's shutdown request, shared by nested handlers."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.signal_name: str | None = None


class GracefulShutdown:
    """Turns SIGTERM/SIGINT into a flag; a second signal exits at once (status 1).

    With ``interrupt``, the first signal also raises that exception where the main
    thread is: for a start-up with nothing to finish yet, which should end at once rather
    than at its next check (serving's, whose imports alone take seconds).
    """

    def __init__(
        self,
        signals: tuple[int, ...] = (signal.SIGTERM, signal.SIGINT),
        *,
        interrupt: type[BaseException] | None = None,
    ) -> None:
        self.signals = signals
        self.interrupt = interrupt
        self._request = _Request()
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> GracefulShutdown:
        if threading.current_thread() is threading.main_thread():
            for sig in self.signals:
                # share the request of handlers already installed before replacing them,
                # so that no signal between the two steps is lost
                outer = getattr(signal.getsignal(sig), "__self__", None)
                if isinstance(outer, GracefulShutdown):
                    self._request = outer._request
            for sig in self.signals:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self._request.event.is_set():
            log.warning("second %s: exiting now", signal.Signals(signum).name)
            raise SystemExit(1)
        self._request.signal_name = signal.Signals(signum).name
        self._request.event.set()
        if self.interrupt is not None:
            raise self.interrupt(self._request.signal_name)
        log.info("%s received: finishing current work", self._request.signal_name)

    @property
    def signal_name(self) -> str | None:
        """The signal that asked for shutdown (None: none yet, or :meth:`request`)."""
        return self._request.signal_name

    def request(self) -> None:
        """Ask for shutdown from code (tests, supervisors)."""
        self._request.event.set()

    @property
    def requested(self) -> bool:
        """True once a shutdown signal arrived or :meth:`request` was called."""
        return self._request.event.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until shutdown is requested or ``timeout`` passes; True if requested."""
        return self._request.event.wait(timeout)
