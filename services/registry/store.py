"""Where artifact bytes live: a small interface, a local directory by default.

>>> import tempfile, pathlib
>>> store = LocalArtifactStore(pathlib.Path(tempfile.mkdtemp()))
>>> uri = store.put(b"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
>>> store.get(uri)
b'abc'
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlparse

from services.common.errors import ConfigError
from services.registry.errors import NotFound


class ArtifactStore(Protocol):
    """Content-addressed blob storage for artifacts."""

    def put(self, data: bytes, sha256: str) -> str:
        """Store ``data`` under its sha256; returns its URI. Idempotent."""
        ...

    def get(self, uri: str) -> bytes:
        """The bytes at ``uri`` (NotFound when gone)."""
        ...

    def get_by_sha256(self, sha256: str) -> bytes:
        """The bytes with this sha256 (NotFound when gone)."""
        ...

    def delete(self, sha256: str) -> bool:
        """Remove the blob; True when something was removed."""
        ...

    def list_sha256(self) -> list[str]:
        """Every stored blob's sha256."""
        ...


class LocalArtifactStore:
    """Files under a directory, ``<root>/<sha[:2]>/<sha>``, written atomically."""

    def __init__(self, root: Path) -> None:
        self.root = root.expanduser().resolve()

    def _path(self, sha256: str) -> Path:
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise NotFound(f"not a sha256: {sha256!r}")
        return self.root / sha256[:2] / sha256

    def put(self, data: bytes, sha256: str) -> str:
        path = self._path(sha256)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, path)
        return path.as_uri()

    def get(self, uri: str) -> bytes:
        parsed = urlparse(uri)
        if parsed.scheme != "file":
            raise NotFound(f"this store reads file:// URIs, not {uri!r}")
        path = Path(unquote(parsed.path))
        try:
            return path.read_bytes()
        except FileNotFoundError as exc:
            raise NotFound(f"artifact {uri} is gone") from exc

    def get_by_sha256(self, sha256: str) -> bytes:
        try:
            return self._path(sha256).read_bytes()
        except FileNotFoundError as exc:
            raise NotFound(f"no artifact with sha256 {sha256}") from exc

    def delete(self, sha256: str) -> bool:
        try:
            self._path(sha256).unlink()
        except FileNotFoundError:
            return False
        return True

    def list_sha256(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.glob("??/*") if not p.name.startswith("."))


def open_store(url: str) -> ArtifactStore:
    """The store for ``DRIFTLINE_ARTIFACTS_URL`` (``file://`` for now)."""
    parsed = urlparse(url)
    if parsed.scheme != "file":
        raise ConfigError(
            "DRIFTLINE_ARTIFACTS_URL", f"unsupported scheme {parsed.scheme!r} (use file://...)"
        )
    return LocalArtifactStore(Path(unquote(parsed.path)))
