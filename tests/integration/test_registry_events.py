"""Registry changes reach the compacted models topic through the outbox, also after a
process is killed between its database commit and the publish."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

from schemas import CATALOGUE, AliasMoved, AliasReason, Event, ModelVersionPublished, Topics
from services.common.codec import decode
from services.common.kafka_client import end_offsets, read_between
from services.common.settings import DriftlineSettings
from services.registry.client import Registry
from tests.keys import private_key_for
from tests.services.registry.helpers import predictor


def models_events(settings: DriftlineSettings) -> list[tuple[bytes, Event]]:
    topic = Topics(settings.topic_prefix).name("models")
    end = end_offsets(settings, topic)
    return [
        (r.key, decode(r.value, CATALOGUE["models"]))
        for r in read_between(settings, topic, {p: 0 for p in end}, end)
    ]


def test_version_and_alias_events_published(
    settings_factory: Callable[..., DriftlineSettings], registry_url: str
) -> None:
    settings = settings_factory(
        registry_url=registry_url, signing_key=private_key_for("k" * 20), signing_key_id="k1"
    )
    registry = Registry.open(settings)
    try:
        v = registry.register_version(model="sea", kind="online", predictor=predictor())
        registry.move_alias(
            model="sea",
            alias="champion",
            to_version=v.version,
            expect=None,
            reason=AliasReason.COLD_START,
            actor="learner",
        )
        assert registry.outbox_backlog() == 0
    finally:
        registry.close()
    events = models_events(settings)
    assert [(k, type(e)) for k, e in events] == [
        (b"sea:v1", ModelVersionPublished),
        (b"sea@champion", AliasMoved),
    ]
    published, moved = events[0][1], events[1][1]
    assert (
        isinstance(published, ModelVersionPublished)
        and published.artifact.sha256 == v.artifact.sha256
    )
    assert isinstance(moved, AliasMoved) and moved.to_version == 1 and moved.reason == "cold_start"


CRASHER = textwrap.dedent(
    """
    import os, signal, sys
    from schemas import AliasReason
    from services.common.settings import DriftlineSettings
    from services.registry.client import Registry
    from tests.services.registry.helpers import predictor

    # relay=False: the process commits, then dies before anything is published
    registry = Registry.open(DriftlineSettings.load(), relay=False)
    v = registry.register_version(model="sea", kind="batch", predictor=predictor())
    registry.move_alias(model="sea", alias="champion", to_version=v.version, expect=None,
                        reason=AliasReason.PROMOTED, actor="crasher")
    os.kill(os.getpid(), signal.SIGKILL)
    """
)


def test_kill_between_commit_and_publish(
    settings_factory: Callable[..., DriftlineSettings], registry_url: str, tmp_path: Path
) -> None:
    settings = settings_factory(
        registry_url=registry_url, signing_key=private_key_for("k" * 20), signing_key_id="k1"
    )
    env = os.environ | {
        "DRIFTLINE_KAFKA_BOOTSTRAP": settings.bootstrap,
        "DRIFTLINE_TOPIC_PREFIX": settings.topic_prefix,
        "DRIFTLINE_DATA_DIR": str(settings.data_path),
        "DRIFTLINE_REGISTRY_URL": registry_url,
        "DRIFTLINE_SIGNING_KEY": private_key_for("k" * 20),
        "DRIFTLINE_SIGNING_KEY_ID": "k1",
        "PYTHONPATH": str(Path.cwd()),
    }
    done = subprocess.run(
        [sys.executable, "-c", CRASHER], env=env, cwd=Path.cwd(), check=False, capture_output=True
    )
    assert done.returncode == -9, done.stderr.decode()[-2000:]
    assert models_events(settings) == []  # committed, never published

    registry = Registry.open(settings)  # start-up relays what the dead process left
    try:
        assert registry.get_alias(model="sea", alias="champion") == 1
        assert registry.outbox_backlog() == 0
    finally:
        registry.close()
    again = Registry.open(settings)  # a second start-up publishes nothing more
    again.close()
    events = models_events(settings)
    assert [k for k, _ in events] == [b"sea:v1", b"sea@champion"]
