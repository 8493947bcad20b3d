"""Static member ids: stable per replica slot, distinct between live replicas, validated."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.common import membership
from services.common.errors import ConfigError
from services.common.settings import DriftlineSettings
from services.learner.settings import LearnerSettings
from services.validator.settings import ValidatorSettings


@pytest.fixture(autouse=True)
def own_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    membership.release_all()
    yield
    membership.release_all()


def ask(configured: str | None = None, group: str = "g") -> str:
    return membership.instance_id(
        service="learner",
        group=group,
        bootstrap="127.0.0.1:9092",
        configured=configured,
        setting="DRIFTLINE_LEARNER_INSTANCE_ID",
    )


def test_derived_id_is_stable_in_a_process_and_freed_when_released() -> None:
    first = ask()
    assert first == f"learner-{membership.host_name()}-0"
    assert ask() == first  # the same process asks again: the same id
    membership.release_all()  # as when the process dies (the kernel drops its locks)
    assert ask() == first  # a restart gets the same slot back


def test_a_second_live_replica_gets_the_next_slot() -> None:
    mine = ask()
    # another process holding slot 0 of the same group: simulated by a second holder
    other = subprocess.run(
        [
            sys.executable,
            "-c",
            "import tempfile, sys; tempfile.tempdir = sys.argv[1]; "
            "from services.common.membership import instance_id; "
            "print(instance_id(service='learner', group='g', bootstrap='127.0.0.1:9092', "
            "configured=None, setting='X'))",
            tempfile.gettempdir(),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert mine.endswith("-0") and other.endswith("-1")
    # other groups have slots of their own
    membership.release_all()
    assert ask(group="another").endswith("-0")


def test_a_configured_id_held_by_a_live_process_is_refused() -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import tempfile, sys, time; tempfile.tempdir = sys.argv[1]; "
            "from services.common.membership import instance_id; "
            "instance_id(service='learner', group='g', bootstrap='127.0.0.1:9092', "
            "configured='replica-a', setting='X'); print('held', flush=True); time.sleep(60)",
            tempfile.gettempdir(),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(ConfigError, match="DRIFTLINE_LEARNER_INSTANCE_ID.*in use"):
            ask("replica-a")
        assert ask("replica-b") == "replica-b"
    finally:
        holder.kill()
        holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()
    membership.release_all()
    assert ask("replica-a") == "replica-a"  # the holder died: free again


@pytest.mark.parametrize(
    ("cls", "var"),
    [
        (LearnerSettings, "DRIFTLINE_LEARNER_INSTANCE_ID"),
        (ValidatorSettings, "DRIFTLINE_VALIDATOR_INSTANCE_ID"),
    ],
)
def test_malformed_ids_are_refused_naming_the_setting(
    cls: type[LearnerSettings] | type[ValidatorSettings], var: str
) -> None:
    with pytest.raises(ConfigError, match=var):
        cls.load(env={var: "has space"})
    service = cls.load(env={var: "replica-7"})
    assert service.member(DriftlineSettings.load(env={})) == "replica-7"


def test_services_derive_distinct_prefixes() -> None:
    settings = DriftlineSettings.load(env={})
    learner = LearnerSettings.load(env={}).member(settings)
    validator = ValidatorSettings.load(env={}).member(settings)
    assert learner.startswith("learner-") and validator.startswith("validator-")
    with pytest.raises(ValueError, match="not a group instance id"):
        membership.valid_instance_id("..")
