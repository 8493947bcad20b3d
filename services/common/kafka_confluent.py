"""confluent-kafka (librdkafka), and only here: the optional backend of the hot paths.

Installed by the ``driftline[confluent]`` extra and chosen by
``DRIFTLINE_KAFKA_CLIENT=confluent``; it implements the seam in
:mod:`services.common.kafka_types` with kafka-python's option names mapped to
librdkafka's, so a service is written once for both backends.

- :meth:`ConfluentConsumer.poll` returns as soon as records are ready (up to
  ``max_records``), not after librdkafka's batch timeout, and groups them by partition.
- A rebalance listener runs inside ``poll`` on the caller's thread (librdkafka heartbeats
  from its own threads meanwhile); seeks made while partitions are being assigned become
  their starting offsets.
- :meth:`ConfluentProducer.send` returns a delivery handle with kafka-python's
  ``get`` / ``add_callback`` / ``add_errback``; callbacks run in ``flush`` and ``get``.

>>> cfg = security_config(DriftlineSettings.load(env={}))
>>> cfg["security.protocol"]
'PLAINTEXT'
>>> consumer_config({"session_timeout_ms": 6000, "group_instance_id": "v-1"})
{'session.timeout.ms': 6000, 'group.instance.id': 'v-1'}
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, NamedTuple

from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_END,
    OFFSET_INVALID,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
)
from confluent_kafka import TopicPartition as CTP

from services.common.errors import BrokerError, BrokerUnavailable
from services.common.kafka_types import LossListener, RebalanceListener, TopicPartition
from services.common.settings import DriftlineSettings

log = logging.getLogger(__name__)
_client_log = logging.getLogger("confluent_kafka")  # throttled with the other libraries'

# kafka-python option -> librdkafka property (values pass as they are).
_COMMON: Final = {
    "client_id": "client.id",
    "request_timeout_ms": "socket.timeout.ms",
}
_CONSUMER: Final = {
    **_COMMON,
    "group_instance_id": "group.instance.id",
    "session_timeout_ms": "session.timeout.ms",
    "heartbeat_interval_ms": "heartbeat.interval.ms",
    "max_poll_interval_ms": "max.poll.interval.ms",
    "fetch_max_wait_ms": "fetch.wait.max.ms",
    "fetch_min_bytes": "fetch.min.bytes",
    "max_partition_fetch_bytes": "max.partition.fetch.bytes",
    "fetch_max_bytes": "fetch.max.bytes",
    "auto_offset_reset": "auto.offset.reset",
    "enable_auto_commit": "enable.auto.commit",
}
_PRODUCER: Final = {
    **_COMMON,
    "acks": "acks",
    "enable_idempotence": "enable.idempotence",
    "linger_ms": "linger.ms",
    "batch_size": "batch.size",
    "max_in_flight_requests_per_connection": "max.in.flight.requests.per.connection",
    "max_request_size": "message.max.bytes",
    "delivery_timeout_ms": "delivery.timeout.ms",
}
# kafka-python options librdkafka has no counterpart for (it retries on its own).
_IGNORED: Final = {"retries", "bootstrap_timeout_ms"}
_SEND_POLL_EVERY: Final = 1024  # serve delivery callbacks this often while sending


def _mapped(options: Mapping[str, Any], names: Mapping[str, str], kind: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in options.items():
        if name in _IGNORED or value is None:
            continue
        if name == "compression_type":
            out["compression.type"] = value or "none"
        elif name == "partition_assignment_strategy":
            out["partition.assignment.strategy"] = _strategy(value)
        elif name in names:
            out[names[name]] = value
        else:
            raise ValueError(f"the confluent backend has no {kind} option {name!r}")
    return out


def consumer_config(options: Mapping[str, Any]) -> dict[str, Any]:
    """librdkafka consumer properties for kafka-python-named ``options``."""
    return _mapped(options, _CONSUMER, "consumer")


def producer_config(options: Mapping[str, Any]) -> dict[str, Any]:
    """librdkafka producer properties for kafka-python-named ``options``."""
    return _mapped(options, _PRODUCER, "producer")


def _strategy(value: Any) -> str:
    values = value if isinstance(value, list | tuple) else [value]
    names = [getattr(v, "name", str(v)) for v in values]
    return ",".join("cooperative-sticky" if "cooperative" in n.lower() else n for n in names)


def security_config(settings: DriftlineSettings) -> dict[str, Any]:
    """librdkafka properties for the configured security settings (the same settings
    kafka-python and faust get)."""
    cfg: dict[str, Any] = {"security.protocol": settings.kafka_security_protocol}
    if settings.kafka_security_protocol.startswith("SASL_"):
        cfg["sasl.mechanism"] = settings.kafka_sasl_mechanism
        cfg["sasl.username"] = settings.kafka_sasl_username
        if settings.kafka_sasl_password is not None:
            cfg["sasl.password"] = settings.kafka_sasl_password.get_secret_value()
    if settings.kafka_security_protocol in ("SSL", "SASL_SSL"):
        cfg["ssl.endpoint.identification.algorithm"] = (
            "https" if settings.kafka_ssl_check_hostname else "none"
        )
        for ours, theirs in (
            ("cafile", "ssl.ca.location"),
            ("certfile", "ssl.certificate.location"),
            ("keyfile", "ssl.key.location"),
        ):
            path = getattr(settings, f"kafka_ssl_{ours}")
            if path is not None:
                cfg[theirs] = str(path)
        if settings.kafka_ssl_password is not None:
            cfg["ssl.key.password"] = settings.kafka_ssl_password.get_secret_value()
    return cfg


def _base(settings: DriftlineSettings) -> dict[str, Any]:
    return {
        "bootstrap.servers": settings.bootstrap,
        **security_config(settings),
        "logger": _client_log,
        "error_cb": _on_error,
    }


def _on_error(err: KafkaError) -> None:
    """Client-level errors (a broker down, a failed authentication): librdkafka retries
    them by itself; they are logged (and throttled with the other libraries' lines)."""
    _client_log.warning("kafka client error: %s", err.str())


def _probe(client: Any, settings: DriftlineSettings) -> None:
    """Fail fast, naming the setting, when no broker answers (librdkafka connects lazily)."""
    try:
        client.list_topics(timeout=settings.kafka_timeout_s)
    except KafkaException as exc:
        source = "DRIFTLINE_KAFKA_BOOTSTRAP" if settings.kafka_bootstrap else "the local broker"
        raise BrokerUnavailable(
            f"no Kafka broker answered at {settings.bootstrap} ({source}): {exc}"
        ) from exc


class ConfluentRecord:
    """A consumed record with kafka-python's attribute names."""

    __slots__ = ("_message", "key", "offset", "partition", "topic", "value")

    def __init__(self, message: Any, topic: str, partition: int) -> None:
        self._message = message
        self.topic = topic
        self.partition = partition
        self.offset: int = message.offset()
        self.key: bytes | None = message.key()
        self.value: bytes | None = message.value()

    @property
    def headers(self) -> list[tuple[str, bytes | None]]:
        return list(self._message.headers() or ())

    @property
    def timestamp(self) -> int:
        return int(self._message.timestamp()[1])


class ConfluentConsumer:
    """:class:`~services.common.kafka_types.Consumer` over a librdkafka consumer."""

    def __init__(self, settings: DriftlineSettings, config: dict[str, Any], batch: int) -> None:
        self._settings = settings
        self._batch = batch
        self._cooperative = "cooperative" in str(config.get("partition.assignment.strategy"))
        self._consumer = Consumer(config)
        self._listener: RebalanceListener | None = None
        self._assigning: dict[TopicPartition, int] | None = None
        self._manual: dict[TopicPartition, int] = {}  # assign()'s partitions and starts
        self._starting = False  # assigned, not polled yet: a seek sets the start
        self._tps: dict[tuple[str, int], TopicPartition] = {}
        try:
            _probe(self._consumer, settings)
        except BrokerUnavailable:
            self._consumer.close()
            raise

    def subscribe(self, topics: Sequence[str], listener: RebalanceListener | None = None) -> None:
        self._listener = listener
        self._consumer.subscribe(
            list(topics),
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )

    def _on_assign(self, consumer: Consumer, partitions: list[CTP]) -> None:
        tps = [TopicPartition(p.topic, p.partition) for p in partitions]
        self._assigning = {}
        try:
            if self._listener is not None and tps:
                self._listener.on_partitions_assigned(tps)
            wanted = self._assigning
            starts = [CTP(tp.topic, tp.partition, wanted.get(tp, OFFSET_INVALID)) for tp in tps]
        finally:
            self._assigning = None
        if self._cooperative:
            consumer.incremental_assign(starts)
        else:
            consumer.assign(starts)

    def _on_revoke(self, consumer: Consumer, partitions: list[CTP]) -> None:
        tps = [TopicPartition(p.topic, p.partition) for p in partitions]
        if self._listener is not None and tps:
            self._listener.on_partitions_revoked(tps)

    def _on_lost(self, consumer: Consumer, partitions: list[CTP]) -> None:
        tps = [TopicPartition(p.topic, p.partition) for p in partitions]
        if self._listener is None or not tps:
            return
        if isinstance(self._listener, LossListener):
            self._listener.on_partitions_lost(tps)
        else:
            self._listener.on_partitions_revoked(tps)

    def poll(
        self, timeout_ms: int = 0, max_records: int | None = None
    ) -> dict[TopicPartition, list[ConfluentRecord]]:
        """What is ready now, up to ``max_records``; else wait up to ``timeout_ms`` for the
        first record and take what came with it."""
        limit = max_records or self._batch
        self._starting = False
        messages: list[Any] = self._consumer.consume(limit, 0)
        if not messages and timeout_ms > 0:
            messages = self._consumer.consume(1, timeout_ms / 1000)
            if messages and limit > 1:
                messages += self._consumer.consume(limit - 1, 0)
        out: dict[TopicPartition, list[ConfluentRecord]] = {}
        tps = self._tps
        for message in messages:
            error = message.error()
            if error is not None:
                self._on_message_error(error)
                continue
            topic, partition = message.topic(), message.partition()
            tp = tps.get((topic, partition))
            if tp is None:
                tp = tps[topic, partition] = TopicPartition(topic, partition)
            batch = out.get(tp)
            if batch is None:
                batch = out[tp] = []
            batch.append(ConfluentRecord(message, topic, partition))
        return out

    @staticmethod
    def _on_message_error(error: KafkaError) -> None:
        if error.code() == KafkaError._PARTITION_EOF:
            return
        if error.fatal():
            raise KafkaException(error)
        _client_log.warning("consumer error: %s", error.str())

    def seek(self, tp: TopicPartition, offset: int) -> None:
        tp = TopicPartition(tp.topic, tp.partition)
        if self._assigning is not None:  # inside on_assign: the partition's start
            self._assigning[tp] = offset
            return
        if tp in self._manual:
            self._manual[tp] = offset
            if self._starting:  # librdkafka refuses to seek a partition not fetching yet
                parts = [CTP(t.topic, t.partition, o) for t, o in self._manual.items()]
                self._consumer.assign(parts)
                return
        self._consumer.seek(CTP(tp.topic, tp.partition, offset))

    def seek_to_beginning(self, tp: TopicPartition) -> None:
        self.seek(tp, OFFSET_BEGINNING)

    def seek_to_end(self, tp: TopicPartition) -> None:
        self.seek(tp, OFFSET_END)

    def commit(self, offsets: Mapping[TopicPartition, int], timeout_ms: int | None = None) -> None:
        """Commit synchronously (librdkafka bounds the wait itself; ``timeout_ms`` is not
        used); a partition the broker refused raises."""
        if not offsets:
            return
        result = self._consumer.commit(
            offsets=[CTP(tp.topic, tp.partition, o) for tp, o in offsets.items()],
            asynchronous=False,
        )
        for tp in result or ():
            if tp.error is not None:
                raise KafkaException(tp.error)

    def assign(self, partitions: Sequence[TopicPartition]) -> None:
        self._manual = {TopicPartition(tp.topic, tp.partition): OFFSET_INVALID for tp in partitions}
        self._starting = True
        self._consumer.assign([CTP(tp.topic, tp.partition) for tp in partitions])

    def position(self, tp: TopicPartition) -> int:
        found = self._consumer.position([CTP(tp.topic, tp.partition)])
        offset = int(found[0].offset) if found else OFFSET_INVALID
        if offset < 0:  # nothing consumed yet: where the next fetch starts
            wanted = self._manual.get(TopicPartition(tp.topic, tp.partition), OFFSET_INVALID)
            offset = wanted if wanted >= 0 else self._watermarks(tp)[0]
        return offset

    def _watermarks(self, tp: TopicPartition) -> tuple[int, int]:
        low, high = self._consumer.get_watermark_offsets(
            CTP(tp.topic, tp.partition), timeout=self._settings.kafka_timeout_s, cached=False
        )
        return int(low), int(high)

    def end_offsets(self, partitions: Sequence[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: self._watermarks(tp)[1] for tp in partitions}

    def partitions_for_topic(self, topic: str) -> set[int] | None:
        meta = self._consumer.list_topics(topic, timeout=self._settings.kafka_timeout_s)
        found = meta.topics.get(topic)
        if found is None or found.error is not None or not found.partitions:
            return None
        return set(found.partitions)

    def close(self) -> None:
        self._consumer.close()


class RecordMetadata(NamedTuple):
    """Where the broker stored a sent record."""

    topic: str
    partition: int
    offset: int


class ConfluentDelivery:
    """The broker's answer to one send (kafka-python's future, in the parts we use)."""

    __slots__ = ("_callbacks", "_errbacks", "_message", "_producer", "done", "error", "metadata")

    def __init__(self, producer: ConfluentProducer) -> None:
        self._producer = producer
        self.done = False
        self.error: BrokerError | None = None
        self.metadata: RecordMetadata | None = None
        self._message: Any = None
        self._callbacks: list[Callable[[Any], Any]] = []
        self._errbacks: list[Callable[[Any], Any]] = []

    def _settle(self, err: KafkaError | None, message: Any) -> None:
        self.done = True
        if err is not None:
            self.error = BrokerError(f"not delivered to {message.topic()}: {err.str()}")
            for errback in self._errbacks:
                errback(self.error)
        elif self._callbacks:
            self.metadata = RecordMetadata(message.topic(), message.partition(), message.offset())
            for callback in self._callbacks:
                callback(self.metadata)
        else:
            self._message = message  # metadata made if asked for

    def add_callback(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> ConfluentDelivery:
        self._callbacks.append(lambda value: fn(*args, value, **kwargs))
        return self

    def add_errback(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> ConfluentDelivery:
        self._errbacks.append(lambda exc: fn(*args, exc, **kwargs))
        return self

    def get(self, timeout: float | None = None) -> Any:
        if not self.done:
            self._producer.flush(timeout)
        if self.error is not None:
            raise self.error
        if self.metadata is None and self._message is not None:
            m = self._message
            self.metadata = RecordMetadata(m.topic(), m.partition(), m.offset())
        return self.metadata


class ConfluentProducer:
    """:class:`~services.common.kafka_types.Producer` over a librdkafka producer."""

    def __init__(self, settings: DriftlineSettings, config: dict[str, Any]) -> None:
        self._producer = Producer(config)
        self._sent = 0
        _probe(self._producer, settings)

    def send(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        headers: Sequence[tuple[str, bytes]] | None = None,
        partition: int | None = None,
    ) -> ConfluentDelivery:
        delivery = ConfluentDelivery(self)
        while True:
            try:
                self._producer.produce(
                    topic,
                    value,
                    key,
                    -1 if partition is None else partition,
                    on_delivery=delivery._settle,
                    headers=headers,  # type: ignore[arg-type]
                )
                break
            except BufferError:  # the local queue is full: let deliveries drain it
                self._producer.poll(0.05)
        self._sent += 1
        if self._sent % _SEND_POLL_EVERY == 0:
            self._producer.poll(0)
        return delivery

    def flush(self, timeout: float | None = None) -> None:
        """Wait until every sent record is answered; raises if some are not by ``timeout``."""
        left = self._producer.flush(-1 if timeout is None else timeout)
        if left:
            raise BrokerError(f"{left} record(s) not acknowledged within {timeout}s")

    def close(self, timeout: float | None = None) -> None:
        try:
            self.flush(timeout)
        except BrokerError as exc:
            log.warning("closing the producer: %s", exc)


class ConfluentBackend:
    """The confluent-kafka backend."""

    name: Final = "confluent"

    def consumer(
        self, settings: DriftlineSettings, *topics: str, group_id: str | None, **options: Any
    ) -> ConfluentConsumer:
        batch = int(options.pop("max_poll_records", settings.kafka_max_poll_records))
        fetch = {
            "fetch_max_wait_ms": settings.kafka_fetch_max_wait_ms,
            "fetch_min_bytes": settings.kafka_fetch_min_bytes,
            "max_partition_fetch_bytes": settings.kafka_max_partition_fetch_bytes,
            "fetch_max_bytes": settings.kafka_fetch_max_bytes,
            "client_id": "driftline",
            "auto_offset_reset": "earliest",
        }
        config = {
            **_base(settings),
            "group.id": group_id or "driftline-unused",  # librdkafka wants one; never committed
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            **consumer_config({**fetch, **options}),
        }
        consumer = ConfluentConsumer(settings, config, batch)
        if topics:
            consumer.subscribe(topics)
        return consumer

    def producer(self, settings: DriftlineSettings, **options: Any) -> ConfluentProducer:
        defaults = {
            "acks": "all",
            "enable_idempotence": True,
            "linger_ms": 5,
            "batch_size": 256 * 1024,
            "client_id": "driftline",
        }
        config = {**_base(settings), **producer_config({**defaults, **options})}
        return ConfluentProducer(settings, config)

    def is_fenced(self, exc: BaseException) -> bool:
        if not isinstance(exc, KafkaException) or not exc.args:
            return False
        err = exc.args[0]
        if not isinstance(err, KafkaError):
            return False
        if err.code() in (KafkaError.FENCED_INSTANCE_ID, KafkaError._FENCED):
            return True
        # librdkafka raises a fenced static member as a fatal error naming the cause
        return err.code() == KafkaError._FATAL and "fenced" in err.str().lower()
