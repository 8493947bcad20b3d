"""The registry's warden judges the last record under a key of ``models`` and ``streams``
against what it recorded: records are fed as its thread would read them, the outbox is
read back (the relay's input), letters go to a list."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest

from schemas import AliasMoved, AliasReason, ModelVersionPublished, Topics
from services.common.codec import encode
from services.common.dead_letters import DeadLetters
from services.common.metrics import Metrics
from services.registry.client import Registry
from services.registry.warden import Warden
from tests.services.registry.helpers import CONFIG, predictor

P = "driftline."  # the registry fixture's prefix


@dataclass
class Record:
    topic: str
    key: bytes | None
    value: bytes | None
    partition: int = 0
    offset: int = 0


class Sent:
    """A producer keeping what it was given; its futures succeed at once."""

    def __init__(self) -> None:
        self.records: list[tuple[str, bytes | None, bytes]] = []

    def send(self, topic: str, key: bytes | None = None, value: bytes = b"") -> Any:
        self.records.append((topic, key, value))
        return self

    def get(self, timeout: float = 0) -> None:
        return None

    def flush(self) -> None:
        return None


class Fixture:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.warden = Warden(
            registry.backend,
            consumer_factory=lambda: None,
            producer_factory=lambda: None,
            topics=Topics(P),
            metrics=Metrics("test"),
        )
        self.letters_out = Sent()
        self.letters = DeadLetters(
            self.letters_out, P + "events.dead", service="registry", counter=self.warden.dead
        )
        self.relayed = Sent()
        self.offset = 0
        self.relay()

    def relay(self) -> list[tuple[str, bytes | None, bytes]]:
        """What the relay publishes now (and marks published)."""
        self.relayed.records.clear()
        self.registry.publish_outbox(self.relayed)
        return list(self.relayed.records)

    def feed(self, suffix: str, key: str, value: bytes | None) -> list[str]:
        """Read one record and settle; returns the letters' reasons."""
        self.offset += 1
        before = len(self.letters_out.records)
        record = Record(P + suffix, key.encode(), value, offset=self.offset)
        self.warden.read(record, self.letters)
        self.warden.settle(self.letters)
        return [_reason(v) for _, _, v in self.letters_out.records[before:]]


def _reason(value: bytes) -> str:
    return str(json.loads(value)["reason"])


@pytest.fixture
def f(registry: Registry) -> Fixture:
    for _ in range(2):
        registry.register_version(model="sea", kind="batch", predictor=predictor())
    registry.move_alias(
        model="sea",
        alias="champion",
        to_version=1,
        expect=None,
        reason=AliasReason.MANUAL,
        actor="test",
    )
    registry.record_spec(config=CONFIG)
    registry.record_spec(config=CONFIG.model_copy(update={"version": 2}))
    return Fixture(registry)


def test_an_unusable_alias_record_is_lettered_and_the_move_re_asserted(f: Fixture) -> None:
    move = f.registry.alias_history(model="sea", alias="champion", limit=1)[0]
    assert f.feed("models", "sea@champion", b"{not json") == ["unparseable"]
    ((topic, key, value),) = f.relay()
    assert (topic, key) == (P + "models", b"sea@champion")
    event = AliasMoved.model_validate_json(value)
    assert str(event.event_id) == move.event_id and event.to_version == 1
    # the re-assertion read back is the current value: nothing more
    assert f.feed("models", "sea@champion", value) == [] and f.relay() == []


def test_a_tombstone_and_a_foreign_move_are_lettered_and_re_asserted(f: Fixture) -> None:
    assert f.feed("models", "sea@champion", None) == ["contract_violation"]
    assert len(f.relay()) == 1
    forged = AliasMoved(model="sea", alias="champion", to_version=2, reason=AliasReason.MANUAL)
    assert f.feed("models", "sea@champion", encode(forged)) == ["contract_violation"]
    ((_, _, value),) = f.relay()
    assert AliasMoved.model_validate_json(value).to_version == 1


def test_an_older_move_of_the_registry_is_re_asserted_without_a_letter(
    f: Fixture, caplog: pytest.LogCaptureFixture
) -> None:
    f.relayed.records.clear()
    old = f.registry.alias_history(model="sea", alias="champion", limit=1)[0]
    f.registry.move_alias(
        model="sea",
        alias="champion",
        to_version=2,
        expect=1,
        reason=AliasReason.MANUAL,
        actor="test",
    )
    # pending in the outbox: the relay will publish the current value anyway
    stale = AliasMoved(
        event_id=old.event_id, model="sea", alias="champion", to_version=1, reason="manual"
    )
    assert f.feed("models", "sea@champion", f.registry.keyring.sign_event(encode(stale))) == []
    assert "re-asserting" not in caplog.text  # the newer value is on its way
    assert len(f.relay()) == 1  # the move itself
    assert f.feed("models", "sea@champion", f.registry.keyring.sign_event(encode(stale))) == []
    ((_, _, value),) = f.relay()
    assert AliasMoved.model_validate_json(value).to_version == 2


def test_a_version_record_the_registry_did_not_write_is_lettered(f: Fixture) -> None:
    assert f.feed("models", "sea:v1", b"[]") == ["contract_violation"]
    ((_, key, value),) = f.relay()
    assert key == b"sea:v1"
    assert f.feed("models", "sea:v1", value) == [] and f.relay() == []
    event = ModelVersionPublished.model_validate_json(value)
    artifact = event.artifact.model_copy(update={"sha256": "0" * 64})
    forged = encode(event.model_copy(update={"artifact": artifact}))
    assert f.feed("models", "sea:v1", forged) == ["contract_violation"]
    assert [v for _, _, v in f.relay()] == [value]
    assert f.feed("models", "sea:v9", value) == ["contract_violation"]  # not its key
    assert f.relay() == []  # the registry has no v9: nothing to re-assert


def test_streams_keep_the_newest_recorded_config(f: Fixture) -> None:
    assert f.feed("streams", "sea", b'{"event_type": "stream_config"}') == ["contract_violation"]
    ((topic, key, value),) = f.relay()
    assert (topic, key) == (P + "streams", b"sea")
    assert f.feed("streams", "sea", value) == [] and f.relay() == []
    v1 = encode(CONFIG)
    assert f.feed("streams", "sea", v1) == []  # recorded, but older: re-asserted
    assert [v for _, _, v in f.relay()] == [value]  # the same bytes again
    policy = CONFIG.policy.model_copy(update={"rolling_window": 77})
    changed = encode(CONFIG.model_copy(update={"version": 2, "policy": policy}))
    assert f.feed("streams", "sea", changed) == ["contract_violation"]
    assert len(f.relay()) == 1
    newer = encode(CONFIG.model_copy(update={"version": 3}))
    assert f.feed("streams", "sea", newer) == [] and f.relay() == []  # published, not recorded
    assert f.feed("streams", "sea", None) == [] and f.relay() == []  # a deletion
    assert f.feed("streams", "other", b"{") == ["unparseable"] and f.relay() == []
