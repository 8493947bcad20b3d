"""Graceful shutdown on SIGTERM and SIGINT, shared by every service.

A service polls ``stop.requested`` (or waits on it) in its loop, then finishes the
current work, flushes, commits and exits 0 within its grace period.

>>> with GracefulShutdown() as stop:
...     stop.requested
False
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType, TracebackType
from typing import Any

log = logging.getLogger(__name__)


class GracefulShutdown:
    """Turns SIGTERM/SIGINT into a flag; a second signal exits at once (status 1)."""

    def __init__(self, signals: tuple[int, ...] = (signal.SIGTERM, signal.SIGINT)) -> None:
        self.signals = signals
        self._event = threading.Event()
        self._previous: dict[int, Any] = {}
        self.signal_name: str | None = None

    def __enter__(self) -> GracefulShutdown:
        if threading.current_thread() is threading.main_thread():
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
        if self._event.is_set():
            log.warning("second %s: exiting now", signal.Signals(signum).name)
            raise SystemExit(1)
        self.signal_name = signal.Signals(signum).name
        log.info("%s received: finishing current work", self.signal_name)
        self._event.set()

    def request(self) -> None:
        """Ask for shutdown from code (tests, supervisors)."""
        self._event.set()

    @property
    def requested(self) -> bool:
        """True once a shutdown signal arrived or :meth:`request` was called."""
        return self._event.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until shutdown is requested or ``timeout`` passes; True if requested."""
        return self._event.wait(timeout)
