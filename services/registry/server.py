"""The registry service's process: the registry (migrated at start-up), the outbox relay
(:mod:`services.registry.relay`), the warden and the HTTP API under uvicorn.

A second thread (:class:`~services.registry.warden.Warden`) follows ``models`` and
``streams``: an unusable record there, or one the registry did not write, is a letter on
``events.dead``, and the key's current value is queued in the outbox again, so consumers
that start after compaction still see it. SIGTERM or SIGINT stops it cleanly within
10 s (exit 0).
"""

from __future__ import annotations

import logging
import threading
import time
from functools import partial

import uvicorn

from services.common.bootstrap import Startup
from services.common.errors import ConfigError
from services.common.kafka_client import make_consumer, make_producer
from services.common.listen import listen
from services.common.metrics import Metrics
from services.registry.api import create_app
from services.registry.client import Registry, is_remote
from services.registry.relay import OutboxRelay
from services.registry.settings import RegistrySettings
from services.registry.sql_store import SqlStore
from services.registry.warden import Warden

log = logging.getLogger("services.registry")

GRACE_S = 10.0  # SIGTERM to exit, at most
HTTP_GRACE_S = 5.0  # of which open HTTP requests get this long to finish
RELAY_GRACE_S = 2.0  # and a relay attempt in flight this long


def serve(boot: Startup, service: RegistrySettings) -> int:
    """Open the registry, start the relay and the HTTP server, stop both on a signal."""
    settings, stop = boot.settings, boot.stop
    metrics = Metrics("registry")
    if is_remote(settings.registry_url):
        raise ConfigError(
            "DRIFTLINE_REGISTRY_URL",
            "the registry service opens its database itself: give it a SQLAlchemy URL "
            "(sqlite:///... or postgresql://...), not the URL of a registry service",
        )
    with boot.uninterrupted():
        registry = Registry.open(settings, relay=False)  # migrates; the relay thread relays
    try:
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
            raise ConfigError(
                "DRIFTLINE_REGISTRY_PORT", f"cannot listen on {service.host}:{service.port}: {exc}"
            ) from exc
        try:
            boot.running()  # from here a signal stops the threads below in order
        except BaseException:
            sock.close()
            raise
    except BaseException:
        registry.close()
        raise
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
    http = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="http", daemon=True)
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
