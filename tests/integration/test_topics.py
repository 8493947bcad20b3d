"""Topic catalogue on the real broker: created, configs read back, idempotent."""

from __future__ import annotations

from collections.abc import Callable

from kafka.admin import ConfigResource, ConfigResourceType

from schemas import CATALOGUE, Topics
from services.common.kafka_client import ensure_topics, make_admin
from services.common.settings import DriftlineSettings


def test_create_read_back_and_idempotent(
    settings_factory: Callable[..., DriftlineSettings],
) -> None:
    settings = settings_factory(create_topics=False)
    topics = Topics(settings.topic_prefix)
    admin = make_admin(settings)
    try:
        first = ensure_topics(admin, topics.all())
        assert {c.action for c in first} == {"created"}
        assert {c.topic for c in first} == set(topics.all())

        described = {t["name"]: t for t in admin.describe_topics(list(topics.all()))}
        for name, spec in topics.all().items():
            assert len(described[name]["partitions"]) == spec.partitions, name
        configs = admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, n) for n in topics.all()]
        )["topic"]
        assert configs[topics.name("models")]["cleanup.policy"]["value"] == "compact"
        assert configs[topics.name("streams")]["cleanup.policy"]["value"] == "compact"
        assert configs[topics.name("examples.raw")]["cleanup.policy"]["value"] == "delete"
        assert (
            configs[topics.name("examples.valid")]["retention.ms"]["value"]
            == CATALOGUE["examples.valid"].configs["retention.ms"]
        )

        again = ensure_topics(admin, topics.all())
        assert {c.action for c in again} == {"unchanged"}
    finally:
        admin.close()


def test_drifted_topic_is_repaired(settings_factory: Callable[..., DriftlineSettings]) -> None:
    settings = settings_factory(create_topics=False)
    topics = Topics(settings.topic_prefix)
    admin = make_admin(settings)
    try:
        from kafka.admin import NewTopic

        name = topics.name("examples.valid")
        admin.create_topics([NewTopic(name, 1, 1, topic_configs={"cleanup.policy": "compact"})])
        admin.wait_for_topics([name])
        changes = {c.topic: c for c in ensure_topics(admin, {name: topics.all()[name]})}
        assert changes[name].action == "altered"
        assert "partitions 1 -> 4" in changes[name].detail
        assert "cleanup.policy=delete" in changes[name].detail
        configs = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, name)])["topic"]
        assert configs[name]["cleanup.policy"]["value"] == "delete"
    finally:
        admin.close()
