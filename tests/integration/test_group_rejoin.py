"""kafka-python's group member on the real broker: a rejoin that ends between two polls is
applied, so the member goes on consuming (the validator's batch loop once consumed nothing
for 300 s in a demo run; see :class:`services.common.kafka_client.KafkaPythonConsumer`)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

from kafka.admin import NewPartitions, NewTopic

from services.common.kafka_client import (
    KafkaPythonConsumer,
    make_admin,
    make_consumer,
    make_producer,
)
from services.common.kafka_types import TopicPartition
from services.common.settings import DriftlineSettings


def test_a_member_keeps_consuming_after_a_rejoin_that_ends_between_polls(
    settings_factory: Callable[..., DriftlineSettings],
) -> None:
    settings = settings_factory(create_topics=False)
    topic = f"{settings.topic_prefix}rejoin"
    admin = make_admin(settings)
    try:
        admin.create_topics([NewTopic(topic, 1, 1)])
        admin.wait_for_topics([topic], timeout_ms=30_000)
        consumer = KafkaPythonConsumer(
            make_consumer(
                settings,
                group_id=f"rejoin-{uuid.uuid4().hex[:8]}",
                group_instance_id="rejoin-0",  # static, as the validator and the learner
                session_timeout_ms=6_000,
                heartbeat_interval_ms=1_000,
                metadata_max_age_ms=500,  # the added partitions are seen at once
            )
        )
        assigned: list[list[int]] = []

        class Listener:
            def on_partitions_assigned(self, partitions: list[TopicPartition]) -> None:
                assigned.append(sorted(tp.partition for tp in partitions))

            def on_partitions_revoked(self, partitions: list[TopicPartition]) -> None:
                pass

        try:
            consumer.subscribe([topic], listener=Listener())
            deadline = time.monotonic() + 60
            while not assigned:
                assert time.monotonic() < deadline, "never assigned the topic's partition"
                consumer.poll(timeout_ms=500)
            assert assigned == [[0]]

            # Added partitions change the metadata the leader assigned from: it rejoins.
            # Polls that return at once make that join end between two polls, as a
            # 100 ms poll on a loaded machine does.
            admin.create_partitions({topic: NewPartitions(3)})
            sender = make_producer(settings)
            try:
                for partition in range(3):
                    sender.send(topic, value=b"after", partition=partition)
                sender.flush()
            finally:
                sender.close()

            seen: set[int] = set()
            deadline = time.monotonic() + 60
            while seen != {0, 1, 2}:
                assert time.monotonic() < deadline, (
                    f"consumed partitions {sorted(seen)} of [0, 1, 2]; assignments {assigned}"
                )
                for tp, records in consumer.poll(timeout_ms=0).items():
                    if records:
                        seen.add(tp.partition)
                time.sleep(0.02)
            assert assigned[-1] == [0, 1, 2]
        finally:
            consumer.close()
    finally:
        admin.close()
