"""Tampered, re-keyed, unknown-key and unsigned artifacts are refused before unpickling."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from services.common import artifacts
from services.common.settings import DriftlineSettings
from services.common.signing import (
    BadSignature,
    DigestMismatch,
    Keyring,
    Signature,
    SignatureError,
    UnknownKeyId,
    Unsigned,
)
from services.registry.client import Registry
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
    reader.keyring = Keyring(signing_key_id="k1", keys={"k1": b"another-key-entirely"})
    with pytest.raises(BadSignature, match="does not match"):
        reader.load_predictor(model="sea", version=v.version)
    reader.keyring = Keyring(signing_key_id="k9", keys={"k9": b"another-key-entirely"})
    with pytest.raises(UnknownKeyId, match="'k1'"):
        reader.load_predictor(model="sea", version=v.version)
    reader.close()


def test_old_key_still_verifies(settings: DriftlineSettings) -> None:
    writer = Registry.open(settings, relay=False)
    v = writer.register_version(model="sea", kind="online", predictor=predictor())
    writer.close()
    rotated = DriftlineSettings.load(
        env={},
        data_dir=settings.data_dir,
        registry_url=settings.registry_url,
        signing_key="a-brand-new-key-0001",
        signing_key_id="k2",
        verify_keys=f"k1:{settings.signing_key.get_secret_value()}",  # type: ignore[union-attr]
    )
    reader = Registry.open(rotated, relay=False)
    assert reader.load_predictor(model="sea", version=v.version).flavor == "river"
    reader.close()


@pytest.mark.parametrize(
    ("expected", "error"),
    [
        (lambda sha: Signature(sha, None, None), Unsigned),
        (lambda sha: Signature(sha, "", "k1"), Unsigned),
        (lambda sha: Signature(sha, "00" * 32, "k1"), BadSignature),
        (lambda sha: Signature(sha, "00" * 32, "nope"), UnknownKeyId),
        (lambda sha: Signature("0" * 64, "00" * 32, "k1"), DigestMismatch),
    ],
)
def test_nothing_unpickled_before_verification(expected: Any, error: type[SignatureError]) -> None:
    ring = Keyring(signing_key_id="k1", keys={"k1": b"0123456789abcdef"})
    refusals: list[str] = []
    ring = Keyring(ring.signing_key_id, ring.keys, on_refusal=lambda e: refusals.append(e.reason))
    blob = pickle.dumps(Trap())
    artifact = artifacts.MAGIC + b"\x00\x00\x00\x02{}" + blob
    UNPICKLED.clear()
    with pytest.raises(error):
        artifacts.load_blob(blob, expected(ring.sign(blob).sha256), ring)
    with pytest.raises(error):
        artifacts.load(artifact, expected(ring.sign(artifact).sha256), ring)
    assert UNPICKLED == []
    assert refusals and refusals[0] == error.reason


def test_signed_trap_is_unpickled_only_when_valid() -> None:
    ring = Keyring(signing_key_id="k1", keys={"k1": b"0123456789abcdef"})
    blob = pickle.dumps(Trap())
    UNPICKLED.clear()
    assert artifacts.load_blob(blob, ring.sign(blob), ring) == "unpickled"
    assert UNPICKLED == ["unpickled"]


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
