"""Model artifacts: a small JSON header and a pickled :class:`Predictor`, signed as a whole.

Layout: ``MAGIC``, a 4-byte big-endian header length, the header (JSON: format, flavor,
algorithm, spec sha256), then the pickle. The header holds no timestamp, so packing the
same model twice gives the same bytes and the same sha256.

Nothing is unpickled before the bytes' sha256 and signature are verified, and the
signature says which model and version the bytes are (:func:`load_version`, the one call
a follower of the ``models`` topic needs).
"""

from __future__ import annotations

import io
import json
import pickle
import struct
from dataclasses import dataclass
from typing import Any

from schemas import ModelVersionPublished
from services.common.errors import DriftlineError
from services.common.predictor import Predictor
from services.common.signing import (
    Keyring,
    Signature,
    Subject,
    artifact_subject,
    checkpoint_subject,
)

MAGIC = b"DRIFTLINE-ARTIFACT\n"
FORMAT = 1


class ArtifactError(DriftlineError):
    """Verified bytes that are still not a usable artifact (bad layout, wrong content)."""


@dataclass(frozen=True)
class ArtifactHeader:
    """What an artifact says about itself before it is unpickled."""

    format: int
    flavor: str
    algorithm: str
    spec_sha256: str


def pack(predictor: Predictor) -> bytes:
    """The artifact bytes of a predictor (deterministic for the same model)."""
    header = {
        "format": FORMAT,
        "flavor": predictor.flavor,
        "algorithm": predictor.algorithm,
        "spec_sha256": predictor.spec_sha256,
    }
    head = json.dumps(header, sort_keys=True).encode()
    body = pickle.dumps(predictor, protocol=5)
    return MAGIC + struct.pack(">I", len(head)) + head + body


def _split(data: bytes) -> tuple[ArtifactHeader, bytes]:
    if not data.startswith(MAGIC) or len(data) < len(MAGIC) + 4:
        raise ArtifactError("not a driftline artifact (bad magic)")
    (size,) = struct.unpack_from(">I", data, len(MAGIC))
    start = len(MAGIC) + 4
    try:
        doc: dict[str, Any] = json.loads(data[start : start + size])
        header = ArtifactHeader(
            format=int(doc["format"]),
            flavor=str(doc["flavor"]),
            algorithm=str(doc["algorithm"]),
            spec_sha256=str(doc["spec_sha256"]),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise ArtifactError(f"unreadable artifact header: {exc}") from exc
    if header.format != FORMAT:
        raise ArtifactError(f"artifact format {header.format} is not {FORMAT}")
    return header, data[start + size :]


def load(
    data: bytes, expected: Signature, keyring: Keyring, subject: Subject
) -> tuple[ArtifactHeader, Predictor]:
    """Verify ``data`` against ``expected`` as ``subject``, then read the header and unpickle.

    Raises :class:`~services.common.signing.SignatureError` for a tampered, unsigned,
    re-labelled or unknown-key artifact (before any deserialization), :class:`ArtifactError`
    otherwise.
    """
    keyring.verify(data, expected, subject)
    header, body = _split(data)
    predictor = pickle.loads(body)  # noqa: S301 - sha256 and signature verified just above
    if not isinstance(predictor, Predictor):
        raise ArtifactError(f"artifact holds a {type(predictor).__name__}, not a Predictor")
    if predictor.spec_sha256 != header.spec_sha256:
        raise ArtifactError("artifact header and predictor disagree on the spec sha256")
    return header, predictor


def expected_of(event: ModelVersionPublished) -> Signature:
    """The sha256, signature and key id a version event records for its artifact."""
    ref = event.artifact
    return Signature(ref.sha256, ref.signature, ref.key_id)


def load_version(
    data: bytes, event: ModelVersionPublished, keyring: Keyring
) -> tuple[ArtifactHeader, Predictor]:
    """Verify and load the artifact bytes of the version ``event`` announces: they must be
    signed as that model and version (bytes of another version are refused)."""
    return load(data, expected_of(event), keyring, artifact_subject(event.model, event.version))


def sign_blob(data: bytes, keyring: Keyring, subject: Subject) -> Signature:
    """Sign any blob as ``subject`` with the configured signing key."""
    return keyring.sign(data, subject)


def seal_checkpoint(data: bytes, keyring: Keyring, *, owner: str, key: str) -> Signature:
    """Sign a checkpoint (private state: the signing key, else ``DRIFTLINE_CHECKPOINT_KEY``)."""
    return keyring.seal(data, checkpoint_subject(owner, key))


# Modules renamed since checkpoints were first written: a pickle names the class by its
# module at the time, so the state of an install that upgrades in place names the old one.
MOVED_MODULES = {
    "services.learner.runtime": "services.learner.state",
    "services.evaluator.runtime": "services.evaluator.state",
}


class _StateUnpickler(pickle.Unpickler):
    """Unpickles (verified) state, finding classes of renamed modules in their new ones."""

    def find_class(self, module: str, name: str) -> Any:
        return super().find_class(MOVED_MODULES.get(module, module), name)


def load_checkpoint_blob(
    data: bytes, expected: Signature, keyring: Keyring, *, owner: str, key: str
) -> Any:
    """Verify a checkpoint's bytes as ``owner``'s state under ``key``, then unpickle them
    (a checkpoint written before a module of :data:`MOVED_MODULES` moved restores too)."""
    keyring.unseal(data, expected, checkpoint_subject(owner, key))
    return _StateUnpickler(io.BytesIO(data)).load()  # sha256 and signature verified above


def dump_blob(state: Any) -> bytes:
    """Pickle a state object for a checkpoint (sign it with :func:`seal_checkpoint`)."""
    return pickle.dumps(state, protocol=5)
