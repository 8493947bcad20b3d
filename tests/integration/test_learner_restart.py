"""A learner killed with -9 and started again with the same command processes again at
once (static group membership), not after the group's session timeout; one stopped with
SIGTERM leaves its group, so its partitions do not wait for the session timeout either."""

from __future__ import annotations

import re
import signal
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from schemas import Topics
from services.common.kafka_client import make_admin
from services.common.settings import DriftlineSettings
from services.registry.client import Registry
from tests.integration.learner_support import config as stream_config
from tests.integration.learner_support import examples, learned, learner_env, start_learner
from tests.integration.polling import wait_for
from tests.integration.processes import publish
from tests.keys import private_key_for

# a restart before the session timeout: both Kafka backends (make test)
pytestmark = [pytest.mark.backends, pytest.mark.registry_http]

# Far longer than the deadline below: a restart that waited for the coordinator to expire
# the killed member (a dynamic member) could not pass.
SESSION_TIMEOUT_MS = 60_000
DEADLINE_S = 30.0


def members(settings: DriftlineSettings, group: str) -> list[str]:
    """The group instance ids of the group's members, as the coordinator reports them."""
    admin = make_admin(settings)
    try:
        described = admin.describe_groups([group]).get(group, {})
    finally:
        admin.close()
    return sorted(str(m.get("group_instance_id")) for m in described.get("members", []))


def test_kill_9_then_restart_processes_again_before_the_session_timeout(
    settings_factory: Callable[..., DriftlineSettings], tmp_path: Path
) -> None:
    settings = settings_factory(
        signing_key=private_key_for("learner-test-signing-key"), signing_key_id="k1"
    )
    valid = Topics(settings.topic_prefix).name("examples.valid")
    data = examples("agr", 1500, seed=3)
    publish(settings, "streams", [stream_config("agr", online_every=100_000)])
    publish(settings, "examples.valid", data[:1000])
    group = f"g-{uuid.uuid4().hex[:8]}"
    env = learner_env(settings, group, DRIFTLINE_LEARNER_CHECKPOINT_INTERVAL_S="0.2") | {
        "DRIFTLINE_LEARNER_SESSION_TIMEOUT_MS": str(SESSION_TIMEOUT_MS)
    }
    log = tmp_path / "learner.log"
    registry = Registry.open(settings, relay=False)
    procs = []
    try:
        first = start_learner(env, log)
        procs.append(first)
        wait_for(
            lambda: learned(registry, group, valid, 4).get("agr") == 1000,
            120,
            "the first 1000 examples learned",
            first,
            log,
        )
        (member,) = members(settings, group)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
        publish(settings, "examples.valid", data[1000:])  # only a live learner can learn these

        killed = time.monotonic()
        second = start_learner(env, log)
        procs.append(second)
        wait_for(
            lambda: learned(registry, group, valid, 4).get("agr") == 1500,
            DEADLINE_S,
            "the restarted learner to learn the examples sent after the kill",
            second,
            log,
        )
        assert time.monotonic() - killed < SESSION_TIMEOUT_MS / 1000
        ids = re.findall(r"as static member (\S+)", log.read_text())
        assert len(ids) == 2 and ids[0] == ids[1] == member, ids  # the same id both times

        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=20) == 0, log.read_text()[-3000:]
        # a stop for good: the member left (no wait for the 60 s session timeout)
        wait_for(lambda: members(settings, group) == [], 10, "the stopped learner to leave")
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        registry.close()
