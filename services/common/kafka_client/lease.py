"""A consumer group joined only to hold its partitions as a lease (the evaluator's
active instance): sticky, cooperative, and the partitions paused, never read."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kafka import (
    ConsumerRebalanceListener,
    KafkaConsumer,
)
from kafka.coordinator.assignors.cooperative_sticky import CooperativeStickyAssignor

from services.common.kafka_client.connect import control_fetch, make_consumer
from services.common.settings import DriftlineSettings


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
        **control_fetch(settings),
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
