"""kafka-python, and only here: producer, consumer and admin factories fed by settings.

Every other module asks this one for clients, so security settings, timeouts and the
fail-fast behaviour for an unreachable broker are decided in one place.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Final, Literal, TypeVar

from kafka import (
    AsyncConsumerRebalanceListener,
    ConsumerRebalanceListener,
    KafkaAdminClient,
    KafkaConsumer,
    KafkaProducer,
    TopicPartition,
)
from kafka import errors as KafkaErrors
from kafka.admin import ConfigResource, ConfigResourceType, MemberToRemove, NewTopic
from kafka.coordinator.assignors.cooperative_sticky import CooperativeStickyAssignor
from kafka.errors import KafkaError, KafkaTimeoutError, TopicAlreadyExistsError
from kafka.future import Future as KafkaFuture
from kafka.partitioner.default import murmur2
from kafka.structs import OffsetAndMetadata

from schemas import TopicSpec
from services.common.errors import BrokerError, BrokerUnavailable, DataExpired
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


@dataclass(frozen=True)
class TopicChange:
    """What :func:`ensure_topics` did to one topic."""

    topic: str
    action: Literal["created", "altered", "unchanged", "warning"]
    detail: str = ""


def ensure_topics(
    admin: KafkaAdminClient, specs: Mapping[str, TopicSpec], *, replication: int = 1
) -> list[TopicChange]:
    """Create missing topics and bring existing ones to the catalogue (idempotent).

    Partitions are only ever added; a topic with more partitions than the catalogue
    is reported, not shrunk.
    """
    changes: list[TopicChange] = []
    existing = set(admin.list_topics())
    created: list[str] = []
    for name in (n for n in specs if n not in existing):
        spec = specs[name]
        try:
            admin.create_topics(
                [NewTopic(name, spec.partitions, replication, topic_configs=spec.all_configs())]
            )
            created.append(name)
        except TopicAlreadyExistsError:
            existing.add(name)  # made by someone else meanwhile: checked like the others
    if created:
        admin.wait_for_topics(created, timeout_ms=30_000)  # leaders elected, ready to use
        changes += [TopicChange(n, "created", _describe(specs[n])) for n in created]
    present = [name for name in specs if name in existing]
    if not present:
        return changes
    described = {t["name"]: t for t in admin.describe_topics(present)}
    configs = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, n) for n in present])
    current = configs.get("topic", {})
    for name in present:
        spec, notes, warn = specs[name], [], False
        count = len(described[name]["partitions"])
        if count < spec.partitions:
            admin.create_partitions({name: spec.partitions})
            notes.append(f"partitions {count} -> {spec.partitions}")
        elif count > spec.partitions:
            warn = True
            notes.append(f"has {count} partitions, the catalogue says {spec.partitions}")
        have = {k: v.get("value") for k, v in current.get(name, {}).items()}
        wanted = {k: v for k, v in spec.all_configs().items() if have.get(k) != v}
        if wanted:
            admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, name, configs=wanted)])
            _wait_for_configs(admin, name, wanted)
            notes += [f"{k}={v}" for k, v in sorted(wanted.items())]
        action: Literal["altered", "unchanged", "warning"] = (
            "warning" if warn else "altered" if notes else "unchanged"
        )
        changes.append(TopicChange(name, action, ", ".join(notes)))
    return changes


def _wait_for_configs(
    admin: KafkaAdminClient, topic: str, wanted: Mapping[str, str], timeout_s: float = 30.0
) -> None:
    """Poll until the broker reports ``wanted`` for ``topic``: an accepted alter reaches the
    broker's metadata a moment later, and callers rely on the new configs at once."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
        have = {k: v.get("value") for k, v in found.get("topic", {}).get(topic, {}).items()}
        if all(have.get(k) == v for k, v in wanted.items()):
            return
        if time.monotonic() > deadline:
            raise BrokerError(f"{topic}: configs {dict(wanted)} not in effect after {timeout_s}s")
        time.sleep(0.1)


def _describe(spec: TopicSpec) -> str:
    return f"{spec.partitions} partition(s), cleanup.policy={spec.cleanup}"


def offset_bounds(settings: DriftlineSettings, topic: str) -> tuple[dict[int, int], dict[int, int]]:
    """The first and the next offset of every partition of ``topic``.

    A broker that fails the request raises :class:`BrokerError` (a missing topic:
    :class:`BrokerUnavailable`), so callers can tell a broker problem from their own.
    """
    consumer = make_consumer(settings, group_id=None)
    try:
        parts = consumer.partitions_for_topic(topic)
        if not parts:
            raise BrokerUnavailable(f"topic {topic!r} does not exist on {settings.bootstrap}")
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        begin = consumer.beginning_offsets(tps)
        end = consumer.end_offsets(tps)
        return (
            {tp.partition: int(begin[tp]) for tp in tps},
            {tp.partition: int(end[tp]) for tp in tps},
        )
    except KafkaError as exc:
        raise BrokerError(f"offsets of {topic}: {exc}") from exc
    finally:
        consumer.close()


def end_offsets(settings: DriftlineSettings, topic: str) -> dict[int, int]:
    """The next offset to be written, per partition of ``topic``."""
    return offset_bounds(settings, topic)[1]


def read_between(
    settings: DriftlineSettings,
    topic: str,
    start: Mapping[int, int],
    end: Mapping[int, int],
    *,
    timeout_s: float = 60.0,
) -> Iterator[Any]:
    """Every record of ``topic`` with ``start[p] <= offset < end[p]``, partition by partition
    interleaved as fetched. Raises BrokerError if the range is not read within ``timeout_s``
    (for example because it has left the topic's retention)."""
    wanted = {p: (start.get(p, 0), e) for p, e in end.items() if e > start.get(p, 0)}
    if not wanted:
        return
    consumer = make_consumer(settings, group_id=None, enable_auto_commit=False)
    try:
        tps = {p: TopicPartition(topic, p) for p in wanted}
        earliest = consumer.beginning_offsets(list(tps.values()))
        gone = {p: earliest[tps[p]] for p, (a, _) in wanted.items() if earliest[tps[p]] > a}
        if gone:
            detail = ", ".join(
                f"partition {p} starts at {first}, wanted {wanted[p][0]}"
                for p, first in gone.items()
            )
            raise DataExpired(f"{topic}: the data has left the topic's retention ({detail})")
        consumer.assign(list(tps.values()))
        for p, (first, _) in wanted.items():
            consumer.seek(tps[p], first)
        remaining = dict(wanted)
        deadline = time.monotonic() + timeout_s
        while remaining:
            if time.monotonic() > deadline:
                left = {p: f"[{a}, {b})" for p, (a, b) in remaining.items()}
                raise BrokerError(f"timed out reading {topic} ranges {left}")
            for tp, records in consumer.poll(timeout_ms=500).items():
                if tp.partition not in remaining:
                    continue
                stop = remaining[tp.partition][1]
                for record in records:
                    if record.offset >= stop:
                        break
                    yield record
                last = records[-1].offset + 1 if records else 0
                if last >= stop:
                    del remaining[tp.partition]
                    consumer.pause(tp)
    finally:
        consumer.close()


def assign_all(
    consumer: KafkaConsumer, topic: str | Sequence[str], *, from_beginning: bool = True
) -> list[Any]:
    """Assign every partition of ``topic`` (or of several topics) to a group-less consumer."""
    tps: list[Any] = []
    for name in [topic] if isinstance(topic, str) else topic:
        partitions = consumer.partitions_for_topic(name)
        if not partitions:
            raise BrokerError(f"topic {name!r} does not exist; run `driftline topics create`")
        tps.extend(TopicPartition(name, p) for p in sorted(partitions))
    consumer.assign(tps)
    if from_beginning:
        consumer.seek_to_beginning(*tps)
    return tps


def assign_at(consumer: KafkaConsumer, topic: str, partition: int, offset: int) -> Any:
    """Assign one partition to a group-less consumer at ``offset``; returns the partition
    (for ``end_offsets``, ``highwater``). Online followers read their stream this way."""
    tp = TopicPartition(topic, partition)
    consumer.assign([tp])
    consumer.seek(tp, offset)
    return tp


def caught_up(consumer: KafkaConsumer, tps: list[Any]) -> bool:
    """True when the consumer's position is at the end of every partition."""
    end = consumer.end_offsets(tps)
    return all(consumer.position(tp) >= end[tp] for tp in tps)


def canonical_partition(key: bytes, count: int) -> int:
    """The partition Kafka's Java client (and kafka-python) give ``key`` among ``count``:
    murmur2 of the key, made positive, modulo the count.

    Whatever partitioner a producer used, a service that routes by this function puts
    every record of one key on one partition (the validator does so for streams).

    >>> canonical_partition(b"phishing", 4), canonical_partition(b"phishing", 1)
    (1, 0)
    """
    if count < 1:
        raise ValueError("a topic has at least one partition")
    hashed: int = murmur2(key)
    return (hashed & 0x7FFFFFFF) % count


def subscribe_from_beginning(consumer: KafkaConsumer, topic: str) -> dict[int, int]:
    """Join the consumer's group on ``topic`` but read every partition it is given from
    the beginning; returns the offsets the group had committed (by partition, 0 for none).

    For a group that remembers how far it handled a topic while still reading what came
    before (``driftline dlq replay``); the caller commits as usual.
    """
    partitions = sorted(consumer.partitions_for_topic(topic) or ())
    committed = {p: consumer.committed(TopicPartition(topic, p)) or 0 for p in partitions}

    class FromBeginning(ConsumerRebalanceListener):  # type: ignore[misc]
        def on_partitions_revoked(self, revoked: Any) -> None:
            pass

        def on_partitions_assigned(self, assigned: Any) -> None:
            if assigned:
                consumer.seek_to_beginning(*assigned)

    consumer.subscribe([topic], listener=FromBeginning())
    return committed


def make_lease_consumer(
    settings: DriftlineSettings, *, group_id: str, client_id: str, session_timeout_ms: int
) -> KafkaConsumer:
    """A consumer that only holds a lease (see :func:`subscribe_as_lease`): sticky and
    cooperative, so a member joining never takes the lease from the one that holds it,
    and the holder is not even paused by the rebalance."""
    return make_consumer(
        settings,
        group_id=group_id,
        client_id=client_id,
        partition_assignment_strategy=(CooperativeStickyAssignor,),
        session_timeout_ms=session_timeout_ms,
        heartbeat_interval_ms=max(500, session_timeout_ms // 10),
        max_poll_records=1,
    )


def subscribe_as_lease(
    consumer: KafkaConsumer,
    topic: str,
    *,
    gained: Callable[[], None],
    revoked: Callable[[], None],
    lost: Callable[[], None],
) -> None:
    """Join the consumer's group on ``topic`` to hold its partitions as a lease, never to
    read them: they are paused as soon as they are assigned. ``gained``, ``revoked`` and
    ``lost`` (evicted) run on the polling thread, when partitions were assigned, revoked
    or lost."""

    class Lease(ConsumerRebalanceListener):  # type: ignore[misc]
        def on_partitions_revoked(self, partitions: Any) -> None:
            if partitions:
                revoked()

        def on_partitions_lost(self, partitions: Any) -> None:
            if partitions:
                lost()

        def on_partitions_assigned(self, partitions: Any) -> None:
            if partitions:
                consumer.pause(*partitions)  # a lease, not data: never fetched
                gained()

    consumer.subscribe([topic], listener=Lease())


# -- the backend seam (services.common.kafka_types), kafka-python side --------------------


def _kp(tp: Any) -> TopicPartition:
    return tp if isinstance(tp, TopicPartition) else TopicPartition(tp.topic, tp.partition)


class _OffThreadListener(AsyncConsumerRebalanceListener):  # type: ignore[misc]
    """Runs a listener's methods in a worker thread while the IO loop awaits them.

    kafka-python 3 calls a rebalance listener on its IO thread, the one that also sends
    heartbeats and fetches: a plain listener that blocks (a commit, a database write, a
    flush) stops heartbeats while it runs, and a blocking consumer call from it raises
    ``RuntimeError`` ("Cannot block on net.run() from the IO thread itself"). Awaited
    from a worker thread, the listener may block and call the consumer, as with the Java
    client and librdkafka, while the loop keeps heartbeating.
    """

    def __init__(self, net: Any, listener: Any) -> None:
        self._net = net
        self._listener = listener

    async def on_partitions_revoked(self, revoked: Any) -> None:
        await self._off_thread(self._listener.on_partitions_revoked, revoked)

    async def on_partitions_assigned(self, assigned: Any) -> None:
        await self._off_thread(self._listener.on_partitions_assigned, assigned)

    async def on_partitions_lost(self, lost: Any) -> None:
        method = getattr(self._listener, "on_partitions_lost", None)
        await self._off_thread(method or self._listener.on_partitions_revoked, lost)

    async def _off_thread(self, method: Callable[[list[Any]], None], partitions: Any) -> None:
        if not partitions:  # an eager join revokes nothing first: not worth a call
            return
        done = KafkaFuture()
        arg = sorted(partitions)

        def work() -> None:
            try:
                method(arg)
            except BaseException as exc:  # noqa: BLE001 - handed to the awaiting loop
                failed = exc
                self._net.call_soon_threadsafe(lambda: done.failure(failed))
            else:
                self._net.call_soon_threadsafe(lambda: done.success(None))

        threading.Thread(target=work, name="kafka-rebalance-listener", daemon=True).start()
        await done


# While its group is (re)joining, a poll waits at least this long: long enough for the
# JoinGroup and SyncGroup round trips to end inside the poll that awaits them.
JOIN_WAIT_MS: Final = 2_000


class KafkaPythonConsumer:
    """:class:`~services.common.kafka_types.Consumer` over a :class:`KafkaConsumer`.

    :meth:`poll` works around a kafka-python 3 (3.0.12, still on its main branch) group
    bug that left the validator's batch loop consuming nothing, for good, with a healthy
    broker. A group member applies the result of a (re)join only in a poll that finds
    ``need_rejoin()`` true. When the leader rejoins because the partition metadata changed
    since its last assignment (at start-up: its first assignment was made before the
    topic's metadata arrived, and the broker logs "Leader ... re-joining group during
    Stable"), the leader's own assignment step, run on the IO thread inside the join,
    makes ``need_rejoin()`` false. If that join ends between two polls (the validator
    polls for 100 ms; a loaded machine takes longer for the round trips), no later poll
    applies it: the member stays REBALANCING with heartbeats off and its partitions
    revoked or never assigned, fetches nothing and logs nothing, and the broker drops it
    after the session timeout without the client learning of it. So while the group
    (re)joins, a poll waits at least :data:`JOIN_WAIT_MS` for the join to finish inside
    it; and a join left unapplied (the member is rejoining but no longer thinks it needs
    to) is asked for again, so that the next poll applies it or joins once more.
    """

    def __init__(self, consumer: KafkaConsumer) -> None:
        self.raw = consumer
        grouped = consumer.config["group_id"] is not None
        self._coordinator = consumer._coordinator if grouped else None

    def subscribe(self, topics: Sequence[str], listener: Any = None) -> None:
        if listener is None:
            self.raw.subscribe(list(topics))
        else:
            self.raw.subscribe(list(topics), listener=_OffThreadListener(self.raw._net, listener))

    def poll(self, timeout_ms: int = 0, max_records: int | None = None) -> Any:
        coordinator = self._coordinator
        if coordinator is not None:
            if coordinator.rejoining and not coordinator.need_rejoin():
                coordinator.request_rejoin()  # a join ended between polls, unapplied
            if coordinator.need_rejoin():
                timeout_ms = max(timeout_ms, JOIN_WAIT_MS)
        return self.raw.poll(timeout_ms=timeout_ms, max_records=max_records)

    def seek(self, tp: Any, offset: int) -> None:
        self.raw.seek(_kp(tp), offset)

    def seek_to_beginning(self, tp: Any) -> None:
        self.raw.seek_to_beginning(_kp(tp))

    def seek_to_end(self, tp: Any) -> None:
        self.raw.seek_to_end(_kp(tp))

    def commit(self, offsets: Mapping[Any, int], timeout_ms: int | None = None) -> None:
        self.raw.commit(
            {_kp(tp): OffsetAndMetadata(o, "", -1) for tp, o in offsets.items()},
            timeout_ms=timeout_ms,
        )

    def assign(self, partitions: Sequence[Any]) -> None:
        self.raw.assign([_kp(tp) for tp in partitions])

    def position(self, tp: Any) -> int:
        return int(self.raw.position(_kp(tp)))

    def end_offsets(self, partitions: Sequence[Any]) -> dict[Any, int]:
        return {tp: int(o) for tp, o in self.raw.end_offsets([_kp(p) for p in partitions]).items()}

    def partitions_for_topic(self, topic: str) -> set[int] | None:
        found = self.raw.partitions_for_topic(topic)
        return set(found) if found else None

    def close(self) -> None:
        self.raw.close(autocommit=False)


class KafkaPythonBackend:
    """The kafka-python backend: :func:`make_consumer` and :func:`make_producer` behind
    the seam (:class:`KafkaProducer` is a :class:`~services.common.kafka_types.Producer`
    as it is)."""

    name: Final = "kafka-python"

    def consumer(
        self, settings: DriftlineSettings, *topics: str, group_id: str | None, **options: Any
    ) -> KafkaPythonConsumer:
        return KafkaPythonConsumer(make_consumer(settings, *topics, group_id=group_id, **options))

    def producer(self, settings: DriftlineSettings, **options: Any) -> KafkaProducer:
        return make_producer(settings, **options)

    def is_fenced(self, exc: BaseException) -> bool:
        return is_fenced(exc)
