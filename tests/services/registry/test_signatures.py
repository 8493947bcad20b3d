"""Tampered, re-keyed, unknown-key and unsigned artifacts are refused before unpickling."""

from __future__ import annotations

import hashlib
import hmac
import pickle
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from services.common import artifacts
from services.common.errors import ConfigError
from services.common.settings import DriftlineSettings
from services.common.signing import (
    BadSignature,
    DigestMismatch,
    Keyring,
    MissingSignature,
    Signature,
    SignatureError,
    UnknownKeyId,
    artifact_subject,
    checkpoint_subject,
)
from services.registry.client import Registry
from tests.keys import private_key_for
from tests.services.registry.helpers import predictor

UNPICKLED: list[str] = []


def _record(tag: str) -> str:
    UNPICKLED.append(tag)
    return tag


class Trap:
    """Unpickling this records that it happened."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (_record, ("unpickled",))


def test_flipped_byte_refused(registry: Registry) -> None:
    v = registry.register_version(model="sea", kind="online", predictor=predictor())
    path = Path(urlparse(v.artifact.uri).path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(DigestMismatch, match="sha256"):
        registry.load_predictor(model="sea", version=v.version)


def test_wrong_key_refused(settings: DriftlineSettings) -> None:
    writer = Registry.open(settings, relay=False)
    v = writer.register_version(model="sea", kind="online", predictor=predictor())
    writer.close()
    rekeyed = settings.model_copy(
        update={"signing_key": None, "signing_key_id": None, "verify_keys": None}
    )
    reader = Registry.open(rekeyed, relay=False)
    reader.keyring = Keyring(public={"k1": Keyring.generate("x").public["x"]})
    with pytest.raises(BadSignature, match="does not match"):
        reader.load_predictor(model="sea", version=v.version)
    reader.keyring = Keyring.generate("k9").public_only()
    with pytest.raises(UnknownKeyId, match="'k1'"):
        reader.load_predictor(model="sea", version=v.version)
    reader.close()


def test_old_key_still_verifies(settings: DriftlineSettings) -> None:
    """Rotation: the old key's public half in DRIFTLINE_VERIFY_KEYS; and an artifact signed
    with an HMAC key of the past stays readable by its key id."""
    writer = Registry.open(settings, relay=False)
    v = writer.register_version(model="sea", kind="online", predictor=predictor())
    data = writer.backend.store.get(v.artifact.uri)
    writer.close()
    old_public = writer.keyring.verify_keys_text()  # "k1:<public>"
    rotated = DriftlineSettings.load(
        env={},
        data_dir=settings.data_dir,
        registry_url=settings.registry_url,
        signing_key=private_key_for("a-brand-new-key-0001"),
        signing_key_id="k2",
        verify_keys=f"{old_public},k0:hmac:an-old-hmac-key-0001",
    )
    reader = Registry.open(rotated, relay=False)
    assert reader.load_predictor(model="sea", version=v.version).flavor == "river"
    mac = hmac.new(b"an-old-hmac-key-0001", data, hashlib.sha256).hexdigest()
    legacy = Signature(v.artifact.sha256, mac, "k0")
    _, loaded = artifacts.load(data, legacy, reader.keyring, artifact_subject("sea", 99))
    assert loaded.flavor == "river"
    reader.close()


@pytest.mark.parametrize(
    ("expected", "error"),
    [
        (lambda sha: Signature(sha, None, None), MissingSignature),
        (lambda sha: Signature(sha, "", "k1"), MissingSignature),
        (lambda sha: Signature(sha, "00" * 64, "k1"), BadSignature),
        (lambda sha: Signature(sha, "zz", "k1"), BadSignature),
        (lambda sha: Signature(sha, "00" * 64, "nope"), UnknownKeyId),
        (lambda sha: Signature("0" * 64, "00" * 64, "k1"), DigestMismatch),
    ],
)
def test_nothing_unpickled_before_verification(expected: Any, error: type[SignatureError]) -> None:
    refusals: list[str] = []
    signer = Keyring.generate("k1")
    ring = Keyring(public=signer.public, on_refusal=lambda e: refusals.append(e.reason))
    blob = pickle.dumps(Trap())
    artifact = artifacts.MAGIC + b"\x00\x00\x00\x02{}" + blob
    UNPICKLED.clear()
    sha = hashlib.sha256(blob).hexdigest()
    with pytest.raises(error):
        artifacts.load_checkpoint_blob(blob, expected(sha), ring, owner="o", key="k")
    with pytest.raises(error):
        artifacts.load(artifact, expected(hashlib.sha256(artifact).hexdigest()), ring, SUBJECT)
    assert UNPICKLED == []
    assert refusals and refusals[0] == error.reason


SUBJECT = artifact_subject("sea", 1)


def test_signed_trap_is_unpickled_only_when_valid() -> None:
    ring = Keyring.generate("k1")
    blob = pickle.dumps(Trap())
    UNPICKLED.clear()
    sig = artifacts.seal_checkpoint(blob, ring, owner="o", key="k")
    with pytest.raises(BadSignature):  # the same bytes as another owner's state
        artifacts.load_checkpoint_blob(blob, sig, ring, owner="o", key="other")
    assert UNPICKLED == []
    assert artifacts.load_checkpoint_blob(blob, sig, ring, owner="o", key="k") == "unpickled"
    assert UNPICKLED == ["unpickled"]


def test_a_checkpoint_key_signs_private_state_and_nothing_else() -> None:
    ring = Keyring(public=Keyring.generate("k1").public, state_key=b"evaluator-state-key-1")
    blob = pickle.dumps({"n": 1})
    sig = artifacts.seal_checkpoint(blob, ring, owner="evaluator", key="g")
    assert artifacts.load_checkpoint_blob(blob, sig, ring, owner="evaluator", key="g") == {"n": 1}
    with pytest.raises(UnknownKeyId):  # not a key that verifies artifacts
        ring.verify(blob, sig, checkpoint_subject("evaluator", "g"))
    with pytest.raises(ConfigError):  # nor one that signs them
        ring.sign(blob, SUBJECT)


def test_tampered_checkpoint_refused(registry: Registry, settings: DriftlineSettings) -> None:
    sha = registry.save_checkpoint(owner="learner", key="sea", state={"n": 1}, offsets={"0": 1})
    stored = settings.data_path / "artifacts" / sha[:2] / sha
    stored.write_bytes(pickle.dumps({"n": 999}))  # the bytes live in the artifact store
    with pytest.raises(DigestMismatch):
        registry.load_checkpoint(owner="learner", key="sea")


def test_tampered_legacy_checkpoint_refused(registry: Registry) -> None:
    """A checkpoint written before the bytes moved to the store (in its row) is verified."""
    registry.save_checkpoint(owner="learner", key="sea", state={"n": 1}, offsets={"0": 1})
    from sqlalchemy import update

    from services.registry.tables import CheckpointRow

    with registry.backend.engine.begin() as conn:
        conn.execute(update(CheckpointRow).values(blob=pickle.dumps({"n": 999})))
    with pytest.raises(DigestMismatch):
        registry.load_checkpoint(owner="learner", key="sea")
