"""HMAC-SHA256 signatures with key ids, for artifacts and checkpoints.

Keys come only from the environment (``DRIFTLINE_SIGNING_KEY`` + ``_KEY_ID`` sign;
``DRIFTLINE_VERIFY_KEYS`` holds older keys that still verify). Verification checks the
sha256 first, then the signature, in constant time; callers deserialize nothing before
:meth:`Keyring.verify` returns.

>>> ring = Keyring(signing_key_id="k1", keys={"k1": b"0123456789abcdef"})
>>> sig = ring.sign(b"model bytes")
>>> ring.verify(b"model bytes", sig)
>>> ring.verify(b"model bytez", sig)
Traceback (most recent call last):
...
services.common.signing.DigestMismatch: sha256 of the bytes is ... expected ...
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from services.common.errors import ConfigError, DriftlineError
from services.common.settings import DriftlineSettings

log = logging.getLogger(__name__)


class SignatureError(DriftlineError):
    """Bytes that must not be trusted: refused before anything is deserialized.

    ``reason`` is a short machine-readable code (for metrics and load-failed events).
    """

    reason = "bad_signature"


class Unsigned(SignatureError):
    """No signature or no key id came with the bytes."""

    reason = "unsigned"


class UnknownKeyId(SignatureError):
    """The key id is not among the verification keys."""

    reason = "unknown_key_id"


class BadSignature(SignatureError):
    """The HMAC does not match: wrong key or altered bytes."""

    reason = "bad_signature"


class DigestMismatch(SignatureError):
    """The sha256 of the bytes is not the one recorded."""

    reason = "sha256_mismatch"


@dataclass(frozen=True)
class Signature:
    """How to check a blob: its sha256, HMAC-SHA256 (hex) and the id of the key."""

    sha256: str
    signature: str | None
    key_id: str | None


def sha256_hex(data: bytes) -> str:
    """The hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Keyring:
    """Signing key and verification keys, by key id."""

    signing_key_id: str | None
    keys: Mapping[str, bytes]
    on_refusal: Callable[[SignatureError], None] | None = field(default=None, compare=False)

    @classmethod
    def from_settings(
        cls,
        settings: DriftlineSettings,
        on_refusal: Callable[[SignatureError], None] | None = None,
    ) -> Keyring:
        """The keys of ``DRIFTLINE_SIGNING_KEY(_ID)`` and ``DRIFTLINE_VERIFY_KEYS``."""
        return cls(settings.signing_key_id, settings.verification_keys(), on_refusal)

    @property
    def can_sign(self) -> bool:
        """True when a signing key is configured."""
        return self.signing_key_id is not None and self.signing_key_id in self.keys

    def sign(self, data: bytes) -> Signature:
        """Sign ``data`` with the signing key."""
        if not self.can_sign or self.signing_key_id is None:
            raise ConfigError(
                "DRIFTLINE_SIGNING_KEY", "is not set: artifacts and checkpoints cannot be signed"
            )
        mac = hmac.new(self.keys[self.signing_key_id], data, hashlib.sha256).hexdigest()
        return Signature(sha256_hex(data), mac, self.signing_key_id)

    def verify(self, data: bytes, expected: Signature) -> None:
        """Raise a :class:`SignatureError` unless ``data`` matches ``expected`` exactly."""
        try:
            self._verify(data, expected)
        except SignatureError as exc:
            log.warning(
                "refused unverifiable bytes: %s",
                exc,
                extra={"reason": exc.reason, "sha256": expected.sha256},
            )
            if self.on_refusal is not None:
                self.on_refusal(exc)
            raise

    def _verify(self, data: bytes, expected: Signature) -> None:
        actual = sha256_hex(data)
        if not hmac.compare_digest(actual, expected.sha256):
            raise DigestMismatch(f"sha256 of the bytes is {actual}, expected {expected.sha256}")
        if not expected.signature or not expected.key_id:
            raise Unsigned(f"blob {expected.sha256[:12]} has no signature or key id")
        key = self.keys.get(expected.key_id)
        if key is None:
            known = ", ".join(sorted(self.keys)) or "none"
            raise UnknownKeyId(
                f"blob {expected.sha256[:12]} is signed with unknown key id "
                f"{expected.key_id!r} (known: {known})"
            )
        mac = hmac.new(key, data, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(mac, expected.signature):
            raise BadSignature(
                f"blob {expected.sha256[:12]}: signature does not match key {expected.key_id!r}"
            )
