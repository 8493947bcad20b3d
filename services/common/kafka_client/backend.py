"""The backend seam (:mod:`services.common.kafka_types`), kafka-python side: a
:class:`~services.common.kafka_types.Consumer` over a :class:`KafkaConsumer`, with the
work-arounds it needs, and the backend that hands these clients out."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from kafka import (
    AsyncConsumerRebalanceListener,
    KafkaConsumer,
    KafkaProducer,
    TopicPartition,
)
from kafka.future import Future as KafkaFuture
from kafka.structs import OffsetAndMetadata

from services.common.kafka_client.connect import (
    is_fenced,
    make_consumer,
    make_producer,
)
from services.common.settings import DriftlineSettings


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
