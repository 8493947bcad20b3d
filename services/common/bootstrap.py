"""One way to start a service, as faust's ``Worker`` is for every faust app.

Every ``services/<name>/__main__.py`` (and so ``driftline run NAME``) hands its start
function to :func:`run`, which, in this order:

1. installs the SIGTERM/SIGINT handlers (:class:`~services.common.shutdown.GracefulShutdown`)
   before anything else, so a signal at any moment of start-up (settings, the registry's
   migrations, Kafka connections) ends the process with 0 instead of killing it;
2. parses the arguments and loads :class:`~services.common.settings.DriftlineSettings`;
3. configures logging, once;
4. calls the start function with a :class:`Startup` (the stop flag, the settings, the
   arguments, the metrics endpoint), which runs until the stop flag is set;
5. stops the metrics endpoint and turns the outcome into the exit code.

Until the service says it runs (:meth:`Startup.running`), there is nothing to finish: a
signal ends the start-up where it is (:class:`StopRequested` is raised in the main
thread), except inside :meth:`Startup.uninterrupted` (the registry's migrations), which
ends first. From :meth:`Startup.running` on, a signal only sets the flag, which the
service's loop polls (its own handlers, if it installs any, share the request).

Exit codes, with every error on stderr as ``driftline <name>: error: ...``:

=====  ===============================================================================
0      stopped by SIGTERM/SIGINT (at any moment, start-up included), or done
1      a runtime error (:class:`~services.common.errors.DriftlineError` or unexpected)
2      a bad setting or argument (:class:`~services.common.errors.ConfigError` names it)
3      fenced: another replica took this one's static group membership
=====  ===============================================================================

The module imports only the standard library and the shutdown flag at import time, so a
``__main__`` that imports it first has its handlers in place a few milliseconds after
the interpreter starts.

>>> def start(boot: Startup) -> int:
...     boot.check()
...     return 0
>>> run("doc", start, argv=[], env={"DRIFTLINE_LOG_LEVEL": "LOUD"})  # stderr names it
2
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Final, NoReturn

from services.common.shutdown import GracefulShutdown

if TYPE_CHECKING:
    from services.common.metrics import Metrics
    from services.common.settings import DriftlineSettings

log = logging.getLogger(__name__)

OK, FAILED, BAD_CONFIG, FENCED = 0, 1, 2, 3


class StopRequested(BaseException):  # noqa: N818 - a request, not an error
    """Raised by :meth:`Startup.check` when a signal arrived during start-up.

    A :class:`BaseException`, as :class:`KeyboardInterrupt` is: code that catches
    ``Exception`` to carry on must not swallow a stop.
    """


class Startup:
    """What a service's start function gets from :func:`run`."""

    def __init__(
        self,
        name: str,
        stop: GracefulShutdown,
        settings: DriftlineSettings,
        args: argparse.Namespace,
    ) -> None:
        self.name = name
        self.stop = stop
        self.settings = settings
        self.args = args
        self._served: list[Metrics] = []

    def check(self) -> None:
        """Raise :class:`StopRequested` when SIGTERM/SIGINT arrived (exit 0)."""
        if self.stop.requested:
            raise StopRequested

    def running(self) -> None:
        """The start-up is over: from now on a signal only sets the flag, which the
        service polls to finish its work in order. Raises :class:`StopRequested` if one
        came before."""
        self.stop.interrupt = None
        self.check()

    @contextmanager
    def uninterrupted(self) -> Iterator[None]:
        """A step of the start-up that a signal must not cut short (a migration): the
        signal waits for its end, then ends the start-up."""
        interrupt, self.stop.interrupt = self.stop.interrupt, None
        try:
            yield
        finally:
            self.stop.interrupt = interrupt
        if interrupt is not None:
            self.check()

    def serve_metrics(self, metrics: Metrics, port: int, host: str = "127.0.0.1") -> int | None:
        """Serve ``metrics`` on ``host:port`` until the service ends (0: no endpoint);
        returns the bound port."""
        if not port:
            return None
        bound = metrics.serve(port, host)
        self._served.append(metrics)
        log.info("metrics on http://%s:%d/metrics", host, bound)
        return bound

    def close(self) -> None:
        """Stop the metrics endpoints started by :meth:`serve_metrics`."""
        while self._served:
            self._served.pop().close()


def parser(name: str, description: str) -> argparse.ArgumentParser:
    """The argument parser of ``driftline run <name>`` (services add their options)."""
    return argparse.ArgumentParser(prog=f"driftline run {name}", description=description)


def error(name: str, message: object) -> None:
    """Write ``driftline <name>: error: <message>`` to stderr (logging may not be ready)."""
    sys.stderr.write(f"driftline {name}: error: {message}\n")
    sys.stderr.flush()


def run(
    name: str,
    start: Callable[[Startup], int],
    *,
    argv: Sequence[str] | None = None,
    arguments: argparse.ArgumentParser | None = None,
    env: Mapping[str, str] | None = None,
    exit_now: bool = False,
) -> int:
    """Start the service ``name`` with ``start`` and return its exit code (see the module).

    ``arguments`` is its argument parser (default: ``--help`` only); ``env`` replaces
    ``os.environ`` for the shared settings (tests). With ``exit_now`` an orderly stop
    ends the process at once with ``os._exit``, skipping the interpreter's teardown
    (serving: the teardown of numpy, River and scikit-learn takes most of its 1 s).
    """
    # first: nothing before it may take long
    with GracefulShutdown(interrupt=StopRequested) as stop, _logging_restored():
        try:
            code, orderly = _run(name, start, stop, argv, arguments, env)
        except StopRequested:  # a signal landing in the bootstrap's own last steps
            code, orderly = OK, True
    if exit_now and orderly:
        _exit_now(code)
    return code


def _run(
    name: str,
    start: Callable[[Startup], int],
    stop: GracefulShutdown,
    argv: Sequence[str] | None,
    arguments: argparse.ArgumentParser | None,
    env: Mapping[str, str] | None,
) -> tuple[int, bool]:
    """The exit code, and whether the service stopped in order (``start`` returned)."""
    args = (arguments or parser(name, f"Run the {name} service.")).parse_args(argv)
    from services.common.errors import ConfigError, DriftlineError, Fenced
    from services.common.settings import DriftlineSettings

    try:
        settings = DriftlineSettings.load(env)
    except ConfigError as exc:
        error(name, exc)
        return BAD_CONFIG, False
    from services.common.logs import configure_logging

    configure_logging(name, fmt=settings.log_format, level=settings.log_level)
    log.info("starting %s (pid %d)", name, os.getpid())
    boot = Startup(name, stop, settings, args)
    try:
        boot.check()
        code = start(boot)
    except StopRequested:
        log.info("%s received while starting: stopped", stop.signal_name or "stop")
        return OK, True
    except ConfigError as exc:
        error(name, exc)
        return BAD_CONFIG, False
    except Fenced as exc:
        error(name, exc)
        return FENCED, False
    except DriftlineError as exc:
        error(name, exc)
        return FAILED, False
    except Exception as exc:
        if _is_fenced(exc):
            error(name, f"fenced: another replica joined its group under this one's id ({exc})")
            return FENCED, False
        log.exception("%s failed", name)
        error(name, f"{type(exc).__name__}: {exc}")
        return FAILED, False
    finally:
        boot.close()
    return code, True


@contextmanager
def _logging_restored() -> Iterator[None]:
    """The root logger as it was, once the service is over (for callers in-process: tests,
    the CLI; a service's process ends there)."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        yield
    finally:
        from services.common import log_throttle

        for handler in list(root.handlers):
            if handler not in handlers:
                root.removeHandler(handler)
                log_throttle.uninstall(handler)
        for handler in handlers:
            if handler not in root.handlers:
                root.addHandler(handler)
        root.setLevel(level)


def _is_fenced(exc: BaseException) -> bool:
    if "kafka" not in sys.modules and "confluent_kafka" not in sys.modules:
        return False  # no Kafka client was loaded, none can have fenced this process
    from services.common.kafka_backend import is_fenced

    return is_fenced(exc)


def _exit_now(code: int) -> NoReturn:
    """End the process without the interpreter's teardown (everything is flushed)."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def quiet_uvicorn() -> None:
    """uvicorn adds a terminal-coloured copy of some messages; our formatters want one."""
    for logger in ("uvicorn.error", "uvicorn.access"):
        logging.getLogger(logger).addFilter(_drop_color)


def _drop_color(record: logging.LogRecord) -> bool:
    record.__dict__.pop("color_message", None)
    return True


# Allocations between collections of the youngest generation (the default is 700).
GC_GEN0_THRESHOLD: Final = 20_000


def quiet_collector() -> None:
    """Fewer cyclic garbage collections on a hot path, once start-up is over.

    Every record a hot loop (the validator's batch loop, the learner) handles allocates
    dozens of short-lived objects, so the default threshold (700) collects every few
    records, and each older-generation collection walks everything start-up built (River,
    scipy, SQLAlchemy, the clients). What exists now is frozen out of the collector's view
    and the youngest generation collects every :data:`GC_GEN0_THRESHOLD` allocations. It
    changes when memory of cyclic garbage is reclaimed, never what is computed.
    """
    gc.freeze()
    gc.set_threshold(GC_GEN0_THRESHOLD, 20, 100)
