"""Key material from the environment: Ed25519 private and public keys, legacy HMAC keys.

Formats (all of them fit in one environment variable):

* a **private key** (``DRIFTLINE_SIGNING_KEY``): the base64 of its 32 raw bytes, or PKCS#8
  PEM (what ``openssl genpkey -algorithm ed25519`` writes);
* a **public key**: the base64 of its 32 raw bytes;
* ``DRIFTLINE_VERIFY_KEYS``: ``id:<public key>,...``; an entry ``id:hmac:<secret>`` is an
  HMAC key of the past, kept only so that artifacts and checkpoints signed with it stay
  readable.

>>> private, public = generate()
>>> public_text(load_private_key(private).public_key()) == public
True
>>> keys = parse_verify_keys(f"new:{public},old:hmac:an-old-secret-0001")
>>> sorted(keys.public), keys.legacy["old"]
(['new'], b'an-old-secret-0001')
>>> parse_verify_keys("k:not-a-key")
Traceback (most recent call last):
...
ValueError: key 'k' is not the base64 of a 32-byte Ed25519 public key (an old HMAC key ...
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

__all__ = [
    "VerifyKeys",
    "generate",
    "load_private_key",
    "load_public_key",
    "parse_verify_keys",
    "private_text",
    "public_text",
    "state_key_id",
]

MIN_SECRET = 16  # characters of an HMAC secret


@dataclass(frozen=True)
class VerifyKeys:
    """Public keys, and the HMAC keys of the past, by key id."""

    public: dict[str, Ed25519PublicKey] = field(default_factory=dict)
    legacy: dict[str, bytes] = field(default_factory=dict)


def generate() -> tuple[str, str]:
    """A new key pair as ``(private, public)`` text, each the base64 of 32 raw bytes."""
    key = Ed25519PrivateKey.generate()
    return private_text(key), public_text(key.public_key())


def private_text(key: Ed25519PrivateKey) -> str:
    """The base64 of a private key's 32 raw bytes."""
    raw = key.private_bytes(
        serialization.Encoding.Raw,
        serialization.PrivateFormat.Raw,
        serialization.NoEncryption(),
    )
    return base64.b64encode(raw).decode()


def public_text(key: Ed25519PublicKey) -> str:
    """The base64 of a public key's 32 raw bytes."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def _raw32(text: str) -> bytes | None:
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if len(raw) == 32 else None


def load_private_key(text: str) -> Ed25519PrivateKey:
    """An Ed25519 private key from base64 (32 raw bytes) or PKCS#8 PEM text."""
    text = text.strip()
    if text.startswith("-----BEGIN"):
        try:
            key = serialization.load_pem_private_key(text.encode(), password=None)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"is not a readable unencrypted PEM private key ({exc})") from exc
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"is a {type(key).__name__}, not an Ed25519 private key")
        return key
    raw = _raw32(text)
    if raw is None:
        raise ValueError(
            "is not an Ed25519 private key (base64 of 32 bytes, or PEM); generate a pair with "
            "`driftline keys generate` (an HMAC secret of the past goes into "
            "DRIFTLINE_VERIFY_KEYS as 'id:hmac:<secret>', to keep old artifacts readable)"
        )
    return Ed25519PrivateKey.from_private_bytes(raw)


def load_public_key(text: str) -> Ed25519PublicKey:
    """An Ed25519 public key from the base64 of its 32 raw bytes."""
    raw = _raw32(text)
    if raw is None:
        raise ValueError("is not the base64 of a 32-byte Ed25519 public key")
    return Ed25519PublicKey.from_public_bytes(raw)


def parse_verify_keys(text: str) -> VerifyKeys:
    """``id:<public key>,id:hmac:<secret>,...`` (empty items are ignored)."""
    keys = VerifyKeys()
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        key_id, sep, value = item.partition(":")
        if not sep or not key_id or not value:
            raise ValueError("must be 'id:<public key>[,id:<public key>...]'")
        if key_id in keys.public or key_id in keys.legacy:
            raise ValueError(f"key id {key_id!r} appears twice")
        kind, sep, secret = value.partition(":")
        if sep and kind == "hmac":
            if len(secret) < MIN_SECRET:
                raise ValueError(f"HMAC key {key_id!r} is shorter than {MIN_SECRET} characters")
            keys.legacy[key_id] = secret.encode()
            continue
        try:
            keys.public[key_id] = load_public_key(value)
        except ValueError:
            raise ValueError(
                f"key {key_id!r} is not the base64 of a 32-byte Ed25519 public key "
                f"(an old HMAC key is written '{key_id}:hmac:<secret>')"
            ) from None
    return keys


def state_key_id(secret: bytes) -> str:
    """The key id of an HMAC key for private state: a fingerprint, so another key is an
    unknown key id rather than a bad signature.

    >>> state_key_id(b"0123456789abcdef")
    'state-2901d792dcd6'
    """
    return "state-" + hashlib.sha256(b"driftline-state-key\n" + secret).hexdigest()[:12]
