"""Signatures with key ids: Ed25519 for what others verify, HMAC only for the past and for
a process' private state.

Signers (the registry, the learner, the trainer) hold an Ed25519 private key
(``DRIFTLINE_SIGNING_KEY`` + ``_KEY_ID``); verifiers (serving, the evaluator, SDK users)
hold public keys only (``DRIFTLINE_VERIFY_KEYS``, ``id:<public key>,...``), so nobody who
can check a model can forge one. A key id decides the algorithm, never the signature:
a signature made with a verifier's public material (as an HMAC key, or as a private key)
never verifies.

What is signed is a *statement*: the sha256 of the bytes, the key id and a subject saying
what the bytes are (``artifact_subject("sea", 3)``: version 3 of model ``sea``), so signed
bytes cannot be presented as another version, another model or a checkpoint. Model events
(``models`` topic) carry their own signature, over the event's canonical JSON
(:meth:`Keyring.sign_event`, :meth:`Keyring.verify_event`).

Old HMAC-SHA256 signatures (over the bytes alone) stay readable for the key ids listed as
``id:hmac:<secret>`` in ``DRIFTLINE_VERIFY_KEYS``. Checkpoints are private state: signed
with the Ed25519 key when the process holds one, else with ``DRIFTLINE_CHECKPOINT_KEY``
(HMAC over the statement; it verifies nothing else).

Verification checks the sha256 first, then the signature; callers deserialize nothing
before :meth:`Keyring.verify` returns.

>>> signer = Keyring.generate("k1")
>>> verifier = signer.public_only()
>>> sig = signer.sign(b"model bytes", artifact_subject("sea", 3))
>>> verifier.verify(b"model bytes", sig, artifact_subject("sea", 3))
>>> verifier.verify(b"model bytes", sig, artifact_subject("sea", 4))
Traceback (most recent call last):
...
services.common.signing.BadSignature: blob ... signature does not match key 'k1' for model sea v4
>>> verifier.sign(b"model bytes", artifact_subject("sea", 3))
Traceback (most recent call last):
...
services.common.errors.ConfigError: DRIFTLINE_SIGNING_KEY: is not set: ...
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from services.common import keys
from services.common.errors import ConfigError, DriftlineError
from services.common.settings import DriftlineSettings

log = logging.getLogger(__name__)

STATEMENT_PREFIX = b"driftline-signature-v1\n"
EVENT_SIGNATURE_FIELD = "signature"

Subject = Mapping[str, str | int]

__all__ = [
    "BadSignature",
    "DigestMismatch",
    "Keyring",
    "MissingSignature",
    "Signature",
    "SignatureError",
    "UnknownKeyId",
    "artifact_subject",
    "canonical_json",
    "checkpoint_subject",
    "sha256_hex",
]


class SignatureError(DriftlineError):
    """Bytes that must not be trusted: refused before anything is deserialized.

    ``reason`` is a short machine-readable code (for metrics and load-failed events).
    """

    reason = "bad_signature"


class MissingSignature(SignatureError):
    """No signature or no key id came with the bytes or the event."""

    reason = "missing_signature"


Unsigned = MissingSignature  # the name of the past


class UnknownKeyId(SignatureError):
    """The key id is not among the verification keys."""

    reason = "unknown_key_id"


class BadSignature(SignatureError):
    """The signature does not match: wrong key, altered bytes, or another subject."""

    reason = "bad_signature"


class DigestMismatch(SignatureError):
    """The sha256 of the bytes is not the one recorded."""

    reason = "sha256_mismatch"


@dataclass(frozen=True)
class Signature:
    """How to check a blob: its sha256, the signature (hex) and the id of the key."""

    sha256: str
    signature: str | None
    key_id: str | None


def sha256_hex(data: bytes) -> str:
    """The hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def artifact_subject(model: str, version: int) -> dict[str, str | int]:
    """What a model artifact's signature says it is: ``version`` of ``model``."""
    return {"kind": "model_artifact", "model": model, "version": version}


def checkpoint_subject(owner: str, key: str) -> dict[str, str | int]:
    """What a checkpoint's signature says it is: ``owner``'s state under ``key``."""
    return {"kind": "checkpoint", "owner": owner, "key": key}


EVENT_SUBJECT: dict[str, str | int] = {"kind": "model_event"}


def canonical_json(doc: Any) -> bytes:
    """Sorted keys, no whitespace, UTF-8: the bytes an event signature covers.

    >>> canonical_json({"b": 1, "a": [1.5, "é"]})
    b'{"a":[1.5,"\\xc3\\xa9"],"b":1}'
    """
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def statement(subject: Subject, sha256: str, key_id: str) -> bytes:
    """The bytes a signature covers: the subject, the sha256 and the key id."""
    return STATEMENT_PREFIX + canonical_json({**subject, "sha256": sha256, "key_id": key_id})


def _describe(subject: Subject) -> str:
    if subject.get("kind") == "model_artifact":
        return f"model {subject['model']} v{subject['version']}"
    if subject.get("kind") == "checkpoint":
        return f"checkpoint {subject['owner']}/{subject['key']}"
    return str(subject.get("kind", "blob"))


@dataclass(frozen=True)
class Keyring:
    """A signing key (signers only) and the keys that verify, by key id.

    Parameters
    ----------
    signing_key_id, private_key
        The Ed25519 key this process signs with (None: it verifies only).
    public
        Ed25519 public keys by key id (the signing key's own is added).
    legacy
        HMAC keys of the past by key id: they verify old artifacts and checkpoints only.
    state_key
        HMAC key for this process' private state when it holds no private key.
    on_refusal
        Called with every refusal (metrics).

    Examples
    --------
    >>> ring = Keyring.generate("k1")
    >>> ring.can_sign, ring.public_only().can_sign
    (True, False)
    >>> signed = ring.sign_event(b'{"event_type": "alias_moved", "model": "sea"}')
    >>> ring.public_only().verify_event(signed)
    'k1'
    """

    signing_key_id: str | None = None
    private_key: Ed25519PrivateKey | None = field(default=None, repr=False)
    public: Mapping[str, Ed25519PublicKey] = field(default_factory=dict, repr=False)
    legacy: Mapping[str, bytes] = field(default_factory=dict, repr=False)
    state_key: bytes | None = field(default=None, repr=False)
    on_refusal: Callable[[SignatureError], None] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.private_key is not None and self.signing_key_id is not None:
            public = dict(self.public)
            public[self.signing_key_id] = self.private_key.public_key()
            object.__setattr__(self, "public", public)

    @classmethod
    def from_settings(
        cls,
        settings: DriftlineSettings,
        on_refusal: Callable[[SignatureError], None] | None = None,
    ) -> Keyring:
        """The keys of ``DRIFTLINE_SIGNING_KEY(_ID)``, ``DRIFTLINE_VERIFY_KEYS`` and
        ``DRIFTLINE_CHECKPOINT_KEY``."""
        verify = settings.verify_key_set()
        private = settings.private_key()
        state = (
            settings.checkpoint_key.get_secret_value().encode() if settings.checkpoint_key else None
        )
        return cls(
            signing_key_id=settings.signing_key_id if private is not None else None,
            private_key=private,
            public=verify.public,
            legacy=verify.legacy,
            state_key=state,
            on_refusal=on_refusal,
        )

    @classmethod
    def generate(cls, key_id: str) -> Keyring:
        """A signer with a new random key (tests, demos)."""
        return cls(signing_key_id=key_id, private_key=Ed25519PrivateKey.generate())

    def public_only(self) -> Keyring:
        """The same verification keys without anything that signs: what a consumer holds."""
        return Keyring(
            public=dict(self.public), legacy=dict(self.legacy), on_refusal=self.on_refusal
        )

    def verify_keys_text(self) -> str:
        """The public keys as a ``DRIFTLINE_VERIFY_KEYS`` value (legacy keys left out)."""
        return ",".join(f"{k}:{keys.public_text(v)}" for k, v in sorted(self.public.items()))

    @property
    def can_sign(self) -> bool:
        """True when a private signing key is configured."""
        return self.private_key is not None and self.signing_key_id is not None

    @property
    def can_verify(self) -> bool:
        """True when at least one key verifies artifacts."""
        return bool(self.public or self.legacy)

    # -- signing ----------------------------------------------------------------------

    def sign(self, data: bytes, subject: Subject) -> Signature:
        """Sign ``data`` as ``subject`` with the private key."""
        if self.private_key is None or self.signing_key_id is None:
            raise ConfigError(
                "DRIFTLINE_SIGNING_KEY",
                "is not set: this process holds no private key, so it cannot sign "
                "(only the registry, the learner and the trainer sign)",
            )
        sha = sha256_hex(data)
        raw = self.private_key.sign(statement(subject, sha, self.signing_key_id))
        return Signature(sha, raw.hex(), self.signing_key_id)

    def seal(self, data: bytes, subject: Subject) -> Signature:
        """Sign private state (a checkpoint): with the private key when there is one,
        else with the HMAC state key."""
        if self.can_sign:
            return self.sign(data, subject)
        if self.state_key is None:
            raise ConfigError(
                "DRIFTLINE_CHECKPOINT_KEY",
                "is not set (nor DRIFTLINE_SIGNING_KEY): checkpoints cannot be signed",
            )
        sha = sha256_hex(data)
        key_id = keys.state_key_id(self.state_key)
        mac = hmac.new(self.state_key, statement(subject, sha, key_id), hashlib.sha256)
        return Signature(sha, mac.hexdigest(), key_id)

    def sign_event(self, payload: bytes) -> bytes:
        """The JSON event ``payload`` with a ``signature`` over its canonical JSON (any
        signature it had is replaced)."""
        doc = json.loads(payload)
        doc.pop(EVENT_SIGNATURE_FIELD, None)
        sig = self.sign(canonical_json(doc), EVENT_SUBJECT)
        doc[EVENT_SIGNATURE_FIELD] = {"key_id": sig.key_id, "value": sig.signature}
        return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()

    # -- verifying --------------------------------------------------------------------

    def verify(self, data: bytes, expected: Signature, subject: Subject) -> None:
        """Raise a :class:`SignatureError` unless ``data`` is what ``expected`` says and
        its signature says it is ``subject``."""
        self._checked(lambda: self._verify(data, expected, subject, private=False), expected)

    def unseal(self, data: bytes, expected: Signature, subject: Subject) -> None:
        """:meth:`verify` for private state: the HMAC state key is accepted too."""
        self._checked(lambda: self._verify(data, expected, subject, private=True), expected)

    def verify_event(self, payload: bytes) -> str:
        """Check the signature of a JSON model event; returns its key id.

        Raises :class:`MissingSignature`, :class:`UnknownKeyId` or :class:`BadSignature`
        (also for a payload that is not a JSON object). Only Ed25519 keys verify events.
        """
        try:
            doc = json.loads(payload)
        except (ValueError, UnicodeDecodeError) as exc:
            raise BadSignature(f"not a JSON event: {exc}") from exc
        if not isinstance(doc, dict):
            raise BadSignature("not a JSON object")
        sig = doc.pop(EVENT_SIGNATURE_FIELD, None)
        if not isinstance(sig, dict) or not sig.get("key_id") or not sig.get("value"):
            raise MissingSignature("the event carries no signature")
        key_id, value = str(sig["key_id"]), str(sig["value"])
        key = self.public.get(key_id)
        if key is None:
            raise UnknownKeyId(f"the event is signed with unknown key id {key_id!r}{self._known()}")
        sha = sha256_hex(canonical_json(doc))
        if not _ed25519_ok(key, value, statement(EVENT_SUBJECT, sha, key_id)):
            raise BadSignature(f"the event's signature does not match key {key_id!r}")
        return key_id

    def _checked(self, check: Callable[[], None], expected: Signature) -> None:
        try:
            check()
        except SignatureError as exc:
            log.warning(
                "refused unverifiable bytes: %s",
                exc,
                extra={"reason": exc.reason, "sha256": expected.sha256},
            )
            if self.on_refusal is not None:
                self.on_refusal(exc)
            raise

    def _known(self) -> str:
        known = sorted({*self.public, *self.legacy})
        return f" (known: {', '.join(known) or 'none'})"

    def _verify(self, data: bytes, expected: Signature, subject: Subject, *, private: bool) -> None:
        what = _describe(subject)
        actual = sha256_hex(data)
        if not hmac.compare_digest(actual, expected.sha256):
            raise DigestMismatch(
                f"sha256 of the bytes is {actual}, expected {expected.sha256} ({what})"
            )
        if not expected.signature or not expected.key_id:
            raise MissingSignature(f"blob {expected.sha256[:12]} has no signature or key id")
        key_id, short = expected.key_id, expected.sha256[:12]
        public = self.public.get(key_id)
        if public is not None:
            if not _ed25519_ok(public, expected.signature, statement(subject, actual, key_id)):
                raise BadSignature(
                    f"blob {short}: signature does not match key {key_id!r} for {what}"
                )
            return
        legacy = self.legacy.get(key_id)
        if legacy is not None:  # signed before Ed25519: over the bytes alone
            mac = hmac.new(legacy, data, hashlib.sha256).hexdigest()
            if not hmac.compare_digest(mac, expected.signature):
                raise BadSignature(f"blob {short}: signature does not match HMAC key {key_id!r}")
            return
        if private and self.state_key is not None and key_id == keys.state_key_id(self.state_key):
            signed = statement(subject, actual, key_id)
            mac = hmac.new(self.state_key, signed, hashlib.sha256).hexdigest()
            if not hmac.compare_digest(mac, expected.signature):
                raise BadSignature(f"blob {short}: signature does not match {what}")
            return
        raise UnknownKeyId(f"blob {short} is signed with unknown key id {key_id!r}{self._known()}")


def _ed25519_ok(key: Ed25519PublicKey, signature_hex: str, signed: bytes) -> bool:
    try:
        key.verify(bytes.fromhex(signature_hex), signed)
    except (InvalidSignature, ValueError):
        return False
    return True
