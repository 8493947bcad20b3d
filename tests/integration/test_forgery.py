"""Model events that consumers cannot forge, on the real broker.

The registry signs with its private key; the subscriber under test holds only the
public key, as serving, the evaluator and SDK users do. Forgeries go straight to the
``models`` topic with a plain producer, as anyone with write access could send them; a
later move the registry makes is the barrier that says they were read.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from schemas import AliasMoved, AliasReason, Topics
from services.common import artifacts
from services.common.codec import encode
from services.common.kafka_client import make_producer
from services.common.settings import DriftlineSettings
from services.common.signing import Keyring, artifact_subject, canonical_json, statement
from services.common.subscriber import LoadFailure, ModelSubscriber
from services.registry.client import Registry
from tests.integration.serving_support import SPEC, move, predictor, register, signed, tamper
from tests.keys import public_key_for

TIMEOUT_S = 60.0
PUBLIC = public_key_for("serving-test-signing-key")  # the key of serving_support.KEY


def consumer_settings(settings: DriftlineSettings) -> DriftlineSettings:
    """The same broker and topics, holding only the registry's public key."""
    return DriftlineSettings.load(
        env={},
        kafka_bootstrap=settings.bootstrap,
        topic_prefix=settings.topic_prefix,
        data_dir=settings.data_path,
        verify_keys=f"k1:{PUBLIC}",
    )


def send(settings: DriftlineSettings, key: str, value: bytes) -> None:
    """Write a record to the models topic as any client with write access could."""
    producer = make_producer(settings)
    try:
        producer.send(Topics(settings.topic_prefix).name("models"), key=key.encode(), value=value)
        producer.flush()
    finally:
        producer.close()


def at(alias: str, version: int) -> Callable[[ModelSubscriber], bool]:
    def check(s: ModelSubscriber) -> bool:
        return s.aliases("sea").get(alias) == version

    return check


def serving(sub: ModelSubscriber, version: int) -> bool:
    found = sub.get("sea")
    return found is not None and found.version == version


def subscriber(settings: DriftlineSettings, failures: list[LoadFailure]) -> ModelSubscriber:
    keyring = Keyring.from_settings(consumer_settings(settings))
    assert not keyring.can_sign  # a consumer holds public keys only
    return ModelSubscriber(
        consumer_settings(settings),
        models=["sea"],
        aliases=("champion",),
        features={"sea": SPEC.features},
        on_failure=failures.append,
    )


class SignedRegistry(NamedTuple):
    """A registry that signs with its private key, its settings, and the load failures a
    subscriber reports into."""

    settings: DriftlineSettings
    registry: Registry
    failures: list[LoadFailure]


@pytest.fixture
def signed_registry(
    settings_factory: Callable[..., DriftlineSettings],
) -> Iterator[SignedRegistry]:
    """The set-up of every test here: a signing registry on the test's own topics."""
    settings = signed(settings_factory)
    registry = Registry.open(settings)
    try:
        yield SignedRegistry(settings, registry, [])
    finally:
        registry.close()


def test_a_forged_alias_move_is_refused_and_counted(
    signed_registry: SignedRegistry,
) -> None:
    settings, registry, failures = signed_registry
    register(registry, "sea", 1)
    register(registry, "sea", 2)
    move(registry, "sea", "champion", 2)
    with subscriber(settings, failures) as sub:
        assert sub.wait_until(lambda s: serving(s, 2), TIMEOUT_S)
        back = AliasMoved(
            model="sea", alias="champion", from_version=2, to_version=1,
            reason=AliasReason.ROLLED_BACK, actor="mallory",
        )  # fmt: skip
        unsigned = encode(back)
        send(settings, back.key, unsigned)  # no signature at all
        # signed with the public key's bytes, as an HMAC key and as a private key
        doc = canonical_json(back.model_dump(mode="json"))
        mac = hmac.new(PUBLIC.encode(), doc, hashlib.sha256).hexdigest()
        send(settings, back.key, _with_signature(unsigned, "k1", mac))
        fake = Ed25519PrivateKey.from_private_bytes(_raw(PUBLIC))
        forged = Keyring(signing_key_id="k1", private_key=fake).sign_event(unsigned)
        send(settings, back.key, forged)
        send(settings, back.key, Keyring.generate("mallory").sign_event(unsigned))
        send(settings, back.key, b"\xff not json")
        move(registry, "sea", "challenger", 1)  # the barrier: read after the forgeries
        assert sub.wait_until(at("challenger", 1), TIMEOUT_S)
        assert sub.aliases("sea")["champion"] == 2 and serving(sub, 2)
        refused = {k: v for k, v in sub.refused.items() if v}
        assert refused == {
            "missing_signature": 1,
            "bad_signature": 2,
            "unknown_key_id": 1,
            "unparseable_event": 1,
        }
        # the registry's own move back is followed
        move(registry, "sea", "champion", 1)
        assert sub.wait_until(lambda s: serving(s, 1), TIMEOUT_S)
    assert failures == []


def test_signed_bytes_cannot_be_relabelled_or_signed_with_public_material(
    signed_registry: SignedRegistry,
) -> None:
    settings, registry, failures = signed_registry
    register(registry, "sea", 1)
    move(registry, "sea", "champion", 1)
    v2 = register(registry, "sea", 2)
    v3 = register(registry, "sea", 3)
    with subscriber(settings, failures) as sub:
        assert sub.wait_until(lambda s: serving(s, 1) and len(s.versions("sea")) == 3, 60)
        events = sub.versions("sea")
        # v2 re-announced with v1's signed artifact (a registry whose version row was
        # altered: its relay signs the event, but the artifact says it is v1)
        relabelled = events[v2].model_copy(
            update={"artifact": events[1].artifact, "event_id": uuid.uuid4()}
        )
        send(settings, relabelled.key, registry.keyring.sign_event(encode(relabelled)))
        # v3's bytes signed with the consumer's public key as an HMAC key
        data = artifacts.pack(predictor(300, 3))
        sha = hashlib.sha256(data).hexdigest()
        mac = hmac.new(
            PUBLIC.encode(), statement(artifact_subject("sea", v3), sha, "k1"), hashlib.sha256
        ).hexdigest()
        path = Path(settings.data_path) / "mallory.bin"
        path.write_bytes(data)
        art = events[v3].artifact.model_copy(
            update={"uri": path.as_uri(), "sha256": sha, "signature": mac, "size": len(data)}
        )
        hmac_signed = events[v3].model_copy(update={"artifact": art, "event_id": uuid.uuid4()})
        send(settings, hmac_signed.key, registry.keyring.sign_event(encode(hmac_signed)))
        move(registry, "sea", "challenger", v3)  # barrier
        assert sub.wait_until(at("challenger", v3), TIMEOUT_S)
        move(registry, "sea", "champion", v2)
        assert sub.wait_until(lambda s: _failed(failures, v2), TIMEOUT_S)
        move(registry, "sea", "champion", v3)
        assert sub.wait_until(lambda s: _failed(failures, v3), TIMEOUT_S)
        assert serving(sub, 1)
        assert [(f.version, f.reason) for f in failures] == [
            (v2, "bad_signature"),
            (v3, "bad_signature"),
        ]


def test_a_repaired_artifact_is_served_once_its_alias_moves_back(
    signed_registry: SignedRegistry,
) -> None:
    settings, registry, failures = signed_registry
    register(registry, "sea", 1)
    bad = register(registry, "sea", 2)
    found = registry.get_version(model="sea", version=bad)
    assert found is not None
    path = Path(found.artifact.uri.removeprefix("file://"))
    good = path.read_bytes()
    move(registry, "sea", "champion", 1)
    with subscriber(settings, failures) as sub:
        assert sub.wait_until(lambda s: serving(s, 1), TIMEOUT_S)
        tamper(registry, "sea", bad)
        move(registry, "sea", "champion", bad)
        assert sub.wait_until(lambda s: _failed(failures, bad), TIMEOUT_S)
        assert serving(sub, 1)  # refused: the last good version stays
        path.write_bytes(good)  # repaired
        move(registry, "sea", "champion", 1)
        move(registry, "sea", "champion", bad)  # the alias moves back to it
        assert sub.wait_until(lambda s: serving(s, bad), TIMEOUT_S)
        assert [(f.version, f.reason) for f in failures] == [(bad, "sha256_mismatch")]


def test_a_repaired_artifact_is_retried_with_backoff(
    signed_registry: SignedRegistry,
) -> None:
    settings, registry, failures = signed_registry
    register(registry, "sea", 1)
    found = registry.get_version(model="sea", version=1)
    assert found is not None
    path = Path(found.artifact.uri.removeprefix("file://"))
    good = path.read_bytes()
    tamper(registry, "sea", 1)
    move(registry, "sea", "champion", 1)
    with ModelSubscriber(
        consumer_settings(settings),
        models=["sea"],
        on_failure=failures.append,
        retry_interval_s=0.2,
        max_retry_interval_s=0.5,
    ) as sub:
        assert sub.wait_until(lambda s: _failed(failures, 1), TIMEOUT_S)
        assert sub.get("sea") is None
        path.write_bytes(good)  # repaired; no alias moves
        assert sub.wait_until(lambda s: serving(s, 1), TIMEOUT_S)


def _failed(failures: list[LoadFailure], version: int) -> bool:
    return any(f.version == version for f in failures)


def _raw(public_text: str) -> bytes:
    import base64

    return base64.b64decode(public_text)


def _with_signature(payload: bytes, key_id: str, value: str) -> bytes:
    import json

    doc: dict[str, Any] = json.loads(payload)
    doc["signature"] = {"key_id": key_id, "value": value}
    return json.dumps(doc).encode()
