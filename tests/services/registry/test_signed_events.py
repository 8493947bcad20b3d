"""The outbox relay signs every models event; a process without a private key relays
nothing; version events name their artifact's URL on the registry's HTTP API."""

from __future__ import annotations

from typing import Any

import pytest

from schemas import AliasMoved, AliasReason, ModelVersionPublished
from services.common.errors import ConfigError
from services.common.settings import DriftlineSettings
from services.common.signing import BadSignature, Keyring
from services.registry.client import ANY, Registry
from tests.services.registry.helpers import predictor


class Sent:
    """A producer that keeps what it is given (the broker acknowledges at once)."""

    def __init__(self) -> None:
        self.records: list[tuple[str, bytes | None, bytes]] = []

    def send(self, topic: str, key: bytes | None, value: bytes) -> Any:
        self.records.append((topic, key, value))
        return self

    def get(self, timeout: float) -> None:
        del timeout

    def flush(self) -> None:
        pass


def _register_and_move(registry: Registry) -> None:
    v = registry.register_version(model="sea", kind="batch", predictor=predictor())
    registry.move_alias(
        model="sea",
        alias="champion",
        to_version=v.version,
        expect=ANY,
        reason=AliasReason.MANUAL,
        actor="test",
    )


def test_relayed_events_are_signed_and_carry_the_artifact_url(
    settings: DriftlineSettings,
) -> None:
    registry = Registry.open(
        settings.model_copy(update={"registry_http_url": "http://registry:8300/"}), relay=False
    )
    try:
        _register_and_move(registry)
        sent = Sent()
        assert registry.publish_outbox(sent) == 2
        verifier = registry.keyring.public_only()
        version, move = (value for _, _, value in sent.records)
        assert verifier.verify_event(version) == verifier.verify_event(move) == "k1"
        event = ModelVersionPublished.model_validate_json(version)
        assert event.signature is not None and event.schema_version == 2
        assert event.artifact.url == f"http://registry:8300/artifacts/{event.artifact.sha256}"
        assert AliasMoved.model_validate_json(move).to_version == event.version
        altered = move.replace(b'"champion"', b'"challenger"')
        with pytest.raises(BadSignature):  # the signature covers the whole event
            verifier.verify_event(altered)
    finally:
        registry.close()


def test_a_process_without_a_private_key_relays_nothing(
    registry: Registry, settings: DriftlineSettings
) -> None:
    _register_and_move(registry)
    verifier = Registry.open(
        settings.model_copy(update={"signing_key": None, "signing_key_id": None}), relay=False
    )
    try:
        verifier.keyring = Keyring(public=registry.keyring.public, state_key=b"x" * 16)
        sent = Sent()
        with pytest.raises(ConfigError, match="DRIFTLINE_SIGNING_KEY"):
            verifier.publish_outbox(sent)
        assert sent.records == [] and verifier.outbox_backlog() == 2
        with pytest.raises(ConfigError, match="DRIFTLINE_SIGNING_KEY"):
            verifier.register_version(model="sea", kind="batch", predictor=predictor())
        assert registry.publish_outbox(sent) == 2  # a signer's relay publishes them
    finally:
        verifier.close()
