"""Model artifacts: a small JSON header and a pickled :class:`Predictor`, signed as a whole.

Layout: ``MAGIC``, a 4-byte big-endian header length, the header (JSON: format, flavor,
algorithm, spec sha256), then the pickle. The header holds no timestamp, so packing the
same model twice gives the same bytes and the same sha256.

Nothing is unpickled before the bytes' sha256 and HMAC signature are verified.
"""

from __future__ import annotations

import json
import pickle
import struct
from dataclasses import dataclass
from typing import Any

from services.common.errors import DriftlineError
from services.common.predictor import Predictor
from services.common.signing import Keyring, Signature

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


def load(data: bytes, expected: Signature, keyring: Keyring) -> tuple[ArtifactHeader, Predictor]:
    """Verify ``data`` against ``expected``, then read the header and unpickle.

    Raises :class:`~services.common.signing.SignatureError` for a tampered, unsigned or
    unknown-key artifact (before any deserialization), :class:`ArtifactError` otherwise.
    """
    keyring.verify(data, expected)
    header, body = _split(data)
    predictor = pickle.loads(body)  # noqa: S301 - sha256 and HMAC verified just above
    if not isinstance(predictor, Predictor):
        raise ArtifactError(f"artifact holds a {type(predictor).__name__}, not a Predictor")
    if predictor.spec_sha256 != header.spec_sha256:
        raise ArtifactError("artifact header and predictor disagree on the spec sha256")
    return header, predictor


def sign_blob(data: bytes, keyring: Keyring) -> Signature:
    """Sign any blob (artifact or checkpoint) with the configured signing key."""
    return keyring.sign(data)


def load_blob(data: bytes, expected: Signature, keyring: Keyring) -> Any:
    """Verify a signed pickled blob (a checkpoint), then unpickle it."""
    keyring.verify(data, expected)
    return pickle.loads(data)  # noqa: S301 - sha256 and HMAC verified just above


def dump_blob(state: Any) -> bytes:
    """Pickle a state object for a checkpoint (sign it with :func:`sign_blob`)."""
    return pickle.dumps(state, protocol=5)
