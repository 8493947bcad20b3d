"""Topics made to match their specs: created, or their configs altered."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic
from kafka.errors import TopicAlreadyExistsError

from schemas import TopicSpec
from services.common.errors import BrokerError


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
