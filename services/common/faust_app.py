"""faust, and only here: the app factory and raw-bytes topics, fed by the same settings.

Topics are created by ``driftline topics create`` (never auto-declared by faust) and
every faust topic pins the catalogue's partition count: faust defaults to 8 and raises
PartitionsMismatch against a topic with another count.
"""

from __future__ import annotations

import os
import signal
import ssl
from typing import Any

import faust

from schemas import Topics
from schemas.topics import STREAM_PARTITIONS
from services.common.settings import DriftlineSettings
from services.common.shutdown import GracefulShutdown


def broker_credentials(settings: DriftlineSettings) -> Any:
    """faust credentials for the configured Kafka security settings (None: plaintext)."""
    protocol = settings.kafka_security_protocol
    context: ssl.SSLContext | None = None
    if protocol in ("SSL", "SASL_SSL"):
        context = ssl.create_default_context(
            cafile=str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None
        )
        context.check_hostname = settings.kafka_ssl_check_hostname
        if settings.kafka_ssl_certfile is not None:
            password = settings.kafka_ssl_password
            context.load_cert_chain(
                str(settings.kafka_ssl_certfile),
                str(settings.kafka_ssl_keyfile) if settings.kafka_ssl_keyfile else None,
                password.get_secret_value() if password else None,
            )
    if protocol.startswith("SASL_"):
        password = settings.kafka_sasl_password
        return faust.SASLCredentials(
            username=settings.kafka_sasl_username,
            password=password.get_secret_value() if password else None,
            mechanism=settings.kafka_sasl_mechanism,
            ssl_context=context,
        )
    if context is not None:
        return faust.SSLCredentials(context)
    return None


def make_app(settings: DriftlineSettings, app_id: str, **overrides: Any) -> faust.App:
    """A faust app on the configured broker with driftline's defaults.

    In-memory tables, no web server (services serve Prometheus themselves), topics never
    auto-declared, ``topic_partitions`` pinned to the catalogue.
    """
    datadir = settings.data_path / "faust" / app_id
    datadir.parent.mkdir(parents=True, exist_ok=True)
    config: dict[str, Any] = {
        "broker": [f"kafka://{host}" for host in settings.bootstrap.split(",")],
        "broker_credentials": broker_credentials(settings),
        "topic_partitions": STREAM_PARTITIONS,
        "topic_allow_declare": False,
        "topic_disable_leader": True,
        "store": "memory://",
        "web_enabled": False,
        "datadir": str(datadir),
        "consumer_auto_offset_reset": "earliest",
        "producer_acks": -1,
        "broker_request_timeout": max(90.0, settings.kafka_timeout_s),
    }
    config.update(overrides)
    return faust.App(app_id, **config)


def raw_topic(app: faust.App, topics: Topics, suffix: str) -> Any:
    """A faust topic of raw bytes for a catalogue topic, with its partition count pinned."""
    spec = topics.all()[topics.name(suffix)]
    return app.topic(
        topics.name(suffix),
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=spec.partitions,
    )


def run_worker(app: faust.App, stop: GracefulShutdown, *, loglevel: str) -> int:
    """Run ``app`` in a faust worker until SIGTERM/SIGINT; returns the exit code.

    The worker installs its own signal handlers once its event loop runs; a signal caught
    by ``stop`` (the bootstrap's handlers) before then is sent again to the process as
    soon as the worker's are in place, so a stop asked for during start-up is not lost.
    """
    if stop.requested:
        return 0
    worker = faust.Worker(
        app, quiet=True, loglevel=loglevel, override_logging=False, redirect_stdouts=False
    )
    worker.spinner = None  # no terminal spinner: stdout/stderr are logs
    install = worker.install_signal_handlers

    def install_then_forward() -> None:
        install()
        if stop.requested:
            os.kill(os.getpid(), signal.SIGTERM)

    worker.install_signal_handlers = install_then_forward  # type: ignore[method-assign]
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    return 0
