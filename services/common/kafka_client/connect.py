"""Connecting: the producer, consumer and admin factories fed by settings, the readiness
probe, and leaving a consumer group.

Every other module asks these factories for clients, so security settings, timeouts and
the fail-fast behaviour for an unreachable broker are decided in one place.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from kafka import (
    KafkaAdminClient,
    KafkaConsumer,
    KafkaProducer,
)
from kafka import errors as KafkaErrors
from kafka.admin import MemberToRemove, NewTopic
from kafka.errors import KafkaError, KafkaTimeoutError, TopicAlreadyExistsError

from services.common.errors import BrokerError, BrokerUnavailable
from services.common.settings import DriftlineSettings

T = TypeVar("T")
log = logging.getLogger(__name__)

PROBE_TOPIC = "__driftline_probe"


def wait_until_ready(
    bootstrap: str,
    *,
    timeout_s: float,
    probe_topic: str | None = PROBE_TOPIC,
    is_alive: Callable[[], bool] | None = None,
    client_config: dict[str, Any] | None = None,
) -> None:
    """Poll until a real client can fetch metadata (and create ``probe_topic``).

    Raises :class:`BrokerUnavailable` when ``timeout_s`` passes first, or at once when
    ``is_alive`` (for a broker process we started) says the process has died.
    """
    with _quiet("kafka"):
        _poll_ready(bootstrap, timeout_s, probe_topic, is_alive, client_config or {})


@contextmanager
def _quiet(logger_name: str) -> Iterator[None]:
    """Silence a library's logger while we expect (and handle) its connection errors."""
    logger = logging.getLogger(logger_name)
    level = logger.level
    logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        logger.setLevel(level)


def _poll_ready(
    bootstrap: str,
    timeout_s: float,
    probe_topic: str | None,
    is_alive: Callable[[], bool] | None,
    client_config: dict[str, Any],
) -> None:
    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if is_alive is not None and not is_alive():
            raise BrokerUnavailable(f"the broker process for {bootstrap} exited while starting")
        remaining_ms = max(500, int((deadline - time.monotonic()) * 1000))
        try:
            admin = KafkaAdminClient(
                bootstrap_servers=bootstrap,
                request_timeout_ms=min(remaining_ms, 5000),
                bootstrap_timeout_ms=min(remaining_ms, 3000),
                client_id="driftline-probe",
                **client_config,
            )
        except (KafkaError, OSError, ValueError) as exc:
            last_error = exc
            time.sleep(0.2)
            continue
        try:
            admin.list_topics()
            if probe_topic is not None:
                try:
                    admin.create_topics([NewTopic(probe_topic, 1, 1)])
                except TopicAlreadyExistsError:
                    pass
            return
        except (KafkaError, OSError) as exc:
            last_error = exc
            time.sleep(0.2)
        finally:
            admin.close()
    raise BrokerUnavailable(
        f"no Kafka broker answered at {bootstrap} within {timeout_s:.0f}s"
        + (f" (last error: {last_error})" if last_error else "")
    )


def client_config(settings: DriftlineSettings) -> dict[str, Any]:
    """kafka-python keyword arguments for the configured security settings."""
    cfg: dict[str, Any] = {"security_protocol": settings.kafka_security_protocol}
    if settings.kafka_security_protocol.startswith("SASL_"):
        cfg["sasl_mechanism"] = settings.kafka_sasl_mechanism
        cfg["sasl_plain_username"] = settings.kafka_sasl_username
        if settings.kafka_sasl_password is not None:
            cfg["sasl_plain_password"] = settings.kafka_sasl_password.get_secret_value()
    if settings.kafka_security_protocol in ("SSL", "SASL_SSL"):
        cfg["ssl_check_hostname"] = settings.kafka_ssl_check_hostname
        for name in ("cafile", "certfile", "keyfile"):
            path = getattr(settings, f"kafka_ssl_{name}")
            if path is not None:
                cfg[f"ssl_{name}"] = str(path)
        if settings.kafka_ssl_password is not None:
            cfg["ssl_password"] = settings.kafka_ssl_password.get_secret_value()
    return cfg


def _connect(
    factory: Callable[..., T], settings: DriftlineSettings, *args: Any, **kwargs: Any
) -> T:
    """Build a client, turning "no broker" into a BrokerUnavailable naming the setting."""
    timeout_ms = int(settings.kafka_timeout_s * 1000)
    kwargs.setdefault("bootstrap_timeout_ms", timeout_ms)
    kwargs.setdefault("request_timeout_ms", max(timeout_ms, 5_000))
    try:
        return factory(
            *args,
            bootstrap_servers=settings.bootstrap.split(","),
            **client_config(settings),
            **kwargs,
        )
    except KafkaTimeoutError as exc:
        source = "DRIFTLINE_KAFKA_BOOTSTRAP" if settings.kafka_bootstrap else "the local broker"
        hint = "" if settings.kafka_bootstrap else " (start it with `driftline broker start`)"
        raise BrokerUnavailable(
            f"no Kafka broker answered at {settings.bootstrap} ({source}){hint}"
        ) from exc


def make_producer(settings: DriftlineSettings, **overrides: Any) -> KafkaProducer:
    """A producer for data we care about: acks=all, idempotent, batched.

    Keys and values are bytes; encode events with :mod:`services.common.codec`.
    """
    config: dict[str, Any] = {
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": 5,
        "batch_size": 256 * 1024,
        "compression_type": None,
        "retries": 2**31 - 1,
        "max_in_flight_requests_per_connection": 5,
        "client_id": "driftline",
    }
    config.update(overrides)
    return _connect(KafkaProducer, settings, **config)


def make_consumer(
    settings: DriftlineSettings, *topics: str, group_id: str | None, **overrides: Any
) -> KafkaConsumer:
    """A consumer that never auto-commits: callers commit after their output is acked.

    Its fetch settings come from ``settings`` (:func:`fetch_config`); ``overrides`` are for
    what one service sets itself (its own ``max_poll_records``, session timeouts).
    """
    config: dict[str, Any] = {
        "group_id": group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "client_id": "driftline",
        **fetch_config(settings),
    }
    config.update(overrides)
    return _connect(KafkaConsumer, settings, *topics, **config)


CONTROL_FETCH_WAIT_MS = 250
"""``fetch_max_wait_ms`` of the consumers that follow control topics (``streams``,
``models``, a lease): the broker answers a fetch as soon as a record arrives
(``fetch_min_bytes`` 1), so a longer wait costs no latency on a quiet topic. Eight idle
ones (as many as the demo's services hold) cost about 11 % of a core in the clients and
14 % in the broker at the data path's 20 ms, against 5.5 % and 1.5 % at 250 ms."""


def control_fetch(settings: DriftlineSettings) -> dict[str, Any]:
    """Overrides for a consumer of a control topic (see :data:`CONTROL_FETCH_WAIT_MS`).

    >>> control_fetch(DriftlineSettings.load(env={}))
    {'fetch_max_wait_ms': 250}
    """
    return {"fetch_max_wait_ms": max(settings.kafka_fetch_max_wait_ms, CONTROL_FETCH_WAIT_MS)}


def fetch_config(settings: DriftlineSettings) -> dict[str, Any]:
    """kafka-python consumer keyword arguments for the configured fetch settings.

    kafka-python fetches a partition again only once its buffered records are drained and
    keeps one fetch per broker in flight: with data on one partition and none on another,
    the next fetch for the busy one waits behind the broker's ``fetch_max_wait_ms`` on the
    idle one. The default (20 ms, not kafka-python's 500) keeps that wait short.

    >>> cfg = fetch_config(DriftlineSettings.load(env={}))
    >>> cfg["fetch_max_wait_ms"], cfg["fetch_min_bytes"], cfg["max_poll_records"]
    (20, 1, 2000)
    """
    return {
        "fetch_max_wait_ms": settings.kafka_fetch_max_wait_ms,
        "fetch_min_bytes": settings.kafka_fetch_min_bytes,
        "max_poll_records": settings.kafka_max_poll_records,
        "max_partition_fetch_bytes": settings.kafka_max_partition_fetch_bytes,
        "fetch_max_bytes": settings.kafka_fetch_max_bytes,
    }


def leave_group(
    settings: DriftlineSettings, group_id: str, instance_id: str, *, reason: str = "stopped"
) -> bool:
    """Remove the static member ``instance_id`` from ``group_id`` (LeaveGroup v3+).

    A static member (``group_instance_id``) sends no LeaveGroup when it closes: the
    coordinator keeps its partitions for it until the session timeout, which is what
    makes a restart fast. A replica that stops for good calls this after closing its
    consumer, so the group rebalances at once. Best effort: returns whether the broker
    removed the member, logs why not.
    """
    try:
        admin = make_admin(settings, request_timeout_ms=3_000, bootstrap_timeout_ms=3_000)
    except BrokerError as exc:
        log.warning("could not leave group %s as %s: %s", group_id, instance_id, exc)
        return False
    try:
        member = MemberToRemove(group_instance_id=instance_id, reason=reason)
        result = admin.remove_group_members(group_id, [member])
        errors = [err for err in result.values() if err is not KafkaErrors.NoError]
        if errors:
            # UnknownMemberId: not in the group (never joined, or already removed)
            log.info("leaving group %s as %s: %s", group_id, instance_id, errors[0].__name__)
            return False
        log.info("left group %s as %s", group_id, instance_id)
        return True
    except (KafkaError, OSError) as exc:
        log.warning("could not leave group %s as %s: %s", group_id, instance_id, exc)
        return False
    finally:
        admin.close()


def is_fenced(exc: BaseException) -> bool:
    """True when ``exc`` says another consumer took this one's ``group_instance_id``."""
    return isinstance(exc, KafkaErrors.FencedInstanceIdError)


def make_admin(settings: DriftlineSettings, **overrides: Any) -> KafkaAdminClient:
    """An admin client (topics, configs, offsets)."""
    return _connect(KafkaAdminClient, settings, client_id="driftline-admin", **overrides)
