"""The Kafka backend seam: what the hot paths ask of a consumer and a producer.

Two implementations sit beside it, one module per vendor client:
:mod:`services.common.kafka_client` (kafka-python, the default) and
:mod:`services.common.kafka_confluent` (confluent-kafka, the ``driftline[confluent]``
extra); :mod:`services.common.kafka_backend` picks one by ``DRIFTLINE_KAFKA_CLIENT``.
Nothing here imports a Kafka client.

Options are named as kafka-python names them (``session_timeout_ms``,
``group_instance_id``, ``max_poll_records``, ``linger_ms``, ...); each backend maps
them to its own names and refuses one it does not know, at construction.

>>> tp = TopicPartition("driftline.examples.raw", 3)
>>> tp.topic, tp.partition, tp == ("driftline.examples.raw", 3)
('driftline.examples.raw', 3, True)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal, NamedTuple, Protocol, runtime_checkable

KafkaClientName = Literal["kafka-python", "confluent"]
KAFKA_CLIENTS: tuple[KafkaClientName, ...] = ("kafka-python", "confluent")


class TopicPartition(NamedTuple):
    """A topic and one of its partitions (equal to kafka-python's of the same values)."""

    topic: str
    partition: int


class Record(Protocol):
    """One consumed record."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def headers(self) -> Sequence[tuple[str, bytes | None]]: ...
    @property
    def timestamp(self) -> int: ...


class Delivery(Protocol):
    """The broker's answer to one send: :meth:`get` waits for it (a flush first makes
    that immediate) and raises what the producer gave up with."""

    def get(self, timeout: float | None = None) -> Any: ...
    def add_callback(self, fn: Any, *args: Any, **kwargs: Any) -> Any: ...
    def add_errback(self, fn: Any, *args: Any, **kwargs: Any) -> Any: ...


class Producer(Protocol):
    """A producer for data we care about (acks=all, idempotent, batched)."""

    def send(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        headers: Sequence[tuple[str, bytes]] | None = None,
        partition: int | None = None,
    ) -> Delivery: ...

    def flush(self, timeout: float | None = None) -> None:
        """Send what is buffered and wait until the broker answered for all of it."""

    def close(self, timeout: float | None = None) -> None: ...


@runtime_checkable
class RebalanceListener(Protocol):
    """Called inside :meth:`Consumer.poll` when the group's assignment changes.

    ``on_partitions_assigned`` may :meth:`Consumer.seek` the partitions it is given;
    ``on_partitions_revoked`` runs before they go (a commit there still counts).
    """

    def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None: ...
    def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None: ...


@runtime_checkable
class LossListener(Protocol):
    """Optional: partitions taken away without a rebalance (the member was evicted);
    nothing can be committed for them any more."""

    def on_partitions_lost(self, lost: list[TopicPartition]) -> None: ...


class Consumer(Protocol):
    """A consumer that never auto-commits: callers commit after their output is acked."""

    def subscribe(
        self, topics: Sequence[str], listener: RebalanceListener | None = None
    ) -> None: ...

    def poll(
        self, timeout_ms: int = 0, max_records: int | None = None
    ) -> Mapping[TopicPartition, Sequence[Record]]:
        """Records by partition, in offset order (empty when none came in time)."""

    def seek(self, tp: TopicPartition, offset: int) -> None: ...
    def seek_to_beginning(self, tp: TopicPartition) -> None: ...
    def seek_to_end(self, tp: TopicPartition) -> None: ...

    def commit(self, offsets: Mapping[TopicPartition, int], timeout_ms: int | None = None) -> None:
        """Commit, synchronously, the next offset to read of each partition."""

    def assign(self, partitions: Sequence[TopicPartition]) -> None: ...
    def position(self, tp: TopicPartition) -> int: ...
    def end_offsets(self, partitions: Sequence[TopicPartition]) -> dict[TopicPartition, int]: ...
    def partitions_for_topic(self, topic: str) -> set[int] | None: ...
    def close(self) -> None: ...


class Backend(Protocol):
    """One vendor client's factories and error tests."""

    @property
    def name(self) -> KafkaClientName: ...

    def consumer(
        self, settings: Any, *topics: str, group_id: str | None, **options: Any
    ) -> Consumer: ...
    def producer(self, settings: Any, **options: Any) -> Producer: ...

    def is_fenced(self, exc: BaseException) -> bool:
        """True when ``exc`` says another consumer took this one's ``group_instance_id``."""
