"""What the registry prunes by itself, and for how long relayed events are kept."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from services.common.settings import DriftlineSettings

OUTBOX_TTL = timedelta(days=7)  # relayed events kept this long (gc's default too)


@dataclass(frozen=True)
class Retention:
    """What the registry prunes by itself, so that a long run's storage stays bounded.

    ``keep_checkpoints``: per (owner, key), the newest checkpoints kept; older ones (row
    and bytes) go in the transaction of each save. ``keep_online_versions``: per model,
    the newest online versions whose artifacts are kept; after each online registration
    older ones are marked ``archived`` (the row and its lineage stay) and their bytes are
    deleted, except versions an alias points at or pointed at in its last moves, the
    snapshots a running training run needs, and every batch version. 0 turns either off
    (``driftline gc`` still prunes on demand).

    >>> Retention().keep_checkpoints, Retention(keep_online_versions=0).keep_online_versions
    (3, 0)
    """

    keep_checkpoints: int = 3
    keep_online_versions: int = 10

    @classmethod
    def from_settings(cls, settings: DriftlineSettings) -> Retention:
        """``DRIFTLINE_REGISTRY_KEEP_CHECKPOINTS`` and ``..._KEEP_ONLINE_VERSIONS``."""
        return cls(
            keep_checkpoints=settings.registry_keep_checkpoints,
            keep_online_versions=settings.registry_keep_online_versions,
        )
