"""``python -m services.registry`` (``driftline run registry``): serve the registry's HTTP API.

Wiring only: settings, logging, the registry (migrated at start-up), a thread relaying
the outbox to Kafka every ``DRIFTLINE_REGISTRY_RELAY_INTERVAL_S`` (at once after a move
made through the API, and at start-up, so rows left by a crashed writer are published),
and uvicorn. Kafka being unreachable does not stop the API: events wait in the outbox
and the relay keeps trying. A second thread (:class:`~services.registry.warden.Warden`)
follows ``models`` and ``streams``: an unusable record there, or one the registry did not
write, is a letter on ``events.dead``, and the key's current value is queued in the outbox
again, so consumers that start after compaction still see it. SIGTERM or SIGINT stops it
cleanly within 10 s (exit 0).
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import uvicorn
from sqlalchemy.exc import SQLAlchemyError

from services.common.errors import ConfigError, DriftlineError
from services.common.kafka_client import make_consumer, make_producer
from services.common.listen import listen
from services.common.logs import configure_logging
from services.common.metrics import Metrics
from services.common.settings import DriftlineSettings
from services.common.shutdown import GracefulShutdown
from services.registry.api import create_app
from services.registry.client import Registry, is_remote
from services.registry.settings import RegistrySettings
from services.registry.sql_store import SqlStore
from services.registry.warden import Warden

log = logging.getLogger("services.registry")

GRACE_S = 10.0  # SIGTERM to exit, at most
HTTP_GRACE_S = 5.0  # of which open HTTP requests get this long to finish
RELAY_GRACE_S = 2.0  # and a relay attempt in flight this long


class OutboxRelay:
    """A daemon thread publishing pending outbox rows: every ``interval_s``, and at once
    when :meth:`kick` says a move was committed.

    A failure is logged once per outage (rows stay queued and are retried), and the
    recovery is logged too.
    """

    def __init__(
        self,
        registry: Registry,
        *,
        producer_factory: Callable[[], Any],
        interval_s: float,
        metrics: Metrics,
    ) -> None:
        self.registry = registry
        self._producer_factory = producer_factory
        self._producer: Any = None
        self.interval_s = interval_s
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="outbox-relay", daemon=True)
        self._relayed = metrics.counter(
            "registry_outbox_relayed_total", "Outbox events published to Kafka."
        )
        self._failures = metrics.counter(
            "registry_outbox_relay_failures_total", "Outbox relay attempts that failed."
        )

    def start(self) -> None:
        """Start relaying (the first attempt happens at once)."""
        self._thread.start()

    def kick(self) -> None:
        """Relay now rather than at the next interval."""
        self._wake.set()

    def stop(self, timeout_s: float) -> bool:
        """Stop the thread; False when it is still stuck talking to Kafka after ``timeout_s``."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
        done = not self._thread.is_alive()
        if done and self._producer is not None:
            self._producer.close()  # flushes
        return done

    def _run(self) -> None:
        failing = False
        while not self._stop.is_set():
            try:
                if self._producer is None:
                    self._producer = self._producer_factory()
                sent = self.registry.publish_outbox(self._producer)
            except Exception as exc:  # noqa: BLE001 - rows stay queued; retried next round
                self._failures.inc()
                if not failing:
                    log.warning(
                        "outbox relay failed, events stay queued and are retried every %.1fs: %s",
                        self.interval_s,
                        exc,
                    )
                failing = True
            else:
                if sent:
                    self._relayed.inc(sent)
                    log.info("relayed %d outbox event(s) to Kafka", sent)
                if failing:
                    log.info("outbox relay recovered")
                failing = False
            self._wake.wait(self.interval_s)
            self._wake.clear()


def build_parser() -> argparse.ArgumentParser:
    """Arguments of the service; each overrides its ``DRIFTLINE_REGISTRY_*`` setting."""
    parser = argparse.ArgumentParser(
        prog="driftline run registry", description="Serve the model registry's HTTP API."
    )
    parser.add_argument("--host", help="bind address (DRIFTLINE_REGISTRY_HOST)")
    parser.add_argument("--port", type=int, help="port, 0 for any (DRIFTLINE_REGISTRY_PORT)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Serve the registry until SIGTERM/SIGINT; returns the exit code."""
    args = build_parser().parse_args(argv)
    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    try:
        settings = DriftlineSettings.load()
        service = RegistrySettings.load(**overrides)
        if settings.signing_key is None:
            raise ConfigError(
                "DRIFTLINE_SIGNING_KEY",
                "is required: the registry signs every model event it publishes",
            )
    except ConfigError as exc:
        sys.stderr.write(f"driftline registry: error: {exc}\n")
        return 2
    configure_logging("registry", fmt=settings.log_format, level=settings.log_level)
    for name in ("uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).addFilter(_drop_color)
    if settings.log_level != "DEBUG":
        # Kafka serves only the relay here, which logs each outage once, with the setting.
        logging.getLogger("kafka").setLevel(logging.CRITICAL)
    try:
        return serve(settings, service)
    except ConfigError as exc:  # a bad DRIFTLINE_REGISTRY_URL or DRIFTLINE_ARTIFACTS_URL
        sys.stderr.write(f"driftline registry: error: {exc}\n")
        return 2
    except SQLAlchemyError as exc:
        log.error("the registry database failed: %s", exc)
        return 1
    except DriftlineError as exc:
        log.error("registry failed: %s", exc)
        return 1


def serve(settings: DriftlineSettings, service: RegistrySettings) -> int:
    """Open the registry, start the relay and the HTTP server, stop both on a signal."""
    metrics = Metrics("registry")
    with GracefulShutdown() as stop:
        if is_remote(settings.registry_url):
            raise ConfigError(
                "DRIFTLINE_REGISTRY_URL",
                "the registry service opens its database itself: give it a SQLAlchemy URL "
                "(sqlite:///... or postgresql://...), not the URL of a registry service",
            )
        registry = Registry.open(settings, relay=False)  # migrates; the relay thread relays
        # HTTP requests never wait on Kafka: only the relay thread talks to it.
        relay = OutboxRelay(
            registry,
            producer_factory=partial(make_producer, settings),
            interval_s=service.relay_interval_s,
            metrics=metrics,
        )
        assert isinstance(registry.backend, SqlStore)  # noqa: S101 - opened from a SQL URL
        warden = Warden(
            registry.backend,
            consumer_factory=partial(
                make_consumer,
                settings,
                group_id=None,
                client_id="driftline-registry-warden",
            ),
            producer_factory=partial(make_producer, settings, client_id="driftline-registry"),
            topics=registry.topics,
            metrics=metrics,
            on_reassert=relay.kick,
        )
        token = settings.admin_token.get_secret_value() if settings.admin_token else None
        app = create_app(
            registry,
            admin_token=token,
            metrics=metrics,
            on_change=relay.kick,
            max_body_bytes=service.max_body_bytes,
            service_token=(
                settings.service_token.get_secret_value() if settings.service_token else None
            ),
            max_blob_bytes=service.max_blob_bytes,
        )
        try:
            sock = listen(service.host, service.port)
        except OSError as exc:
            registry.close()
            raise ConfigError(
                "DRIFTLINE_REGISTRY_PORT", f"cannot listen on {service.host}:{service.port}: {exc}"
            ) from exc
        host, port = sock.getsockname()[:2]
        database = registry.backend.engine.url.render_as_string(hide_password=True)
        server = uvicorn.Server(
            uvicorn.Config(
                app,
                log_config=None,
                lifespan="off",
                timeout_graceful_shutdown=int(HTTP_GRACE_S),
            )
        )
        # uvicorn installs no signal handlers off the main thread: ours decide.
        http = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="http", daemon=True
        )
        deadline = 0.0
        code = 0
        try:
            relay.start()
            warden.start()
            http.start()
            log.info(
                "registry API on http://%s:%d (database %s, admin endpoints %s)",
                host,
                port,
                database,
                "enabled" if token else "disabled: DRIFTLINE_ADMIN_TOKEN is not set",
            )
            while not stop.wait(0.2):
                if not http.is_alive():
                    log.error("the HTTP server stopped on its own")
                    code = 1
                    break
            deadline = time.monotonic() + GRACE_S - 1.0
            log.info("stopping: finishing open requests")
        finally:
            if not deadline:
                deadline = time.monotonic() + GRACE_S - 1.0
            server.should_exit = True
            http.join(max(0.1, deadline - time.monotonic() - 1.0))
            warden.stop(min(RELAY_GRACE_S, max(0.1, deadline - time.monotonic())))
            # An attempt stuck on an unreachable broker is not worth waiting for: its rows
            # stay queued for the next start.
            relay_done = relay.stop(min(RELAY_GRACE_S, max(0.1, deadline - time.monotonic())))
            if not relay_done:
                log.warning("the outbox relay is still waiting on Kafka: its events stay queued")
            registry.close()
            sock.close()
        log.info("registry stopped")
        return code


def _drop_color(record: logging.LogRecord) -> bool:
    """uvicorn adds a terminal-coloured copy of some messages; our formatters want one."""
    record.__dict__.pop("color_message", None)
    return True


if __name__ == "__main__":
    sys.exit(main())
