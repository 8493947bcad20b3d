"""The registry's store interface: what :class:`~services.registry.client.Registry`
delegates to, in bytes and rows, never in pickled objects.

Two stores implement it, chosen by ``DRIFTLINE_REGISTRY_URL`` as MLflow chooses its
tracking store: :class:`~services.registry.sql_store.SqlStore` (a SQLAlchemy URL: the
tables, in this process; the registry service, tests and single-process tools) and
:class:`~services.registry.rest_store.RestStore` (``http(s)://``: the registry service's
HTTP API, for every other service). The store signs what it stores (so only the
registry needs the signing key once writers go through HTTP); the client packs before
and verifies after, so nothing is unpickled in the store.

Both give the same guarantees: alias moves are compare-and-set; a registration under an
idempotency key, a move under a ``move_id`` and a checkpoint identical to the newest one
of its key happen once however often they are retried; every change that must reach
Kafka writes an outbox row in its own transaction.

>>> describe_expect(ANY), describe_expect(None), describe_expect([3, None])
(None, [None], [None, 3])
>>> expect_from(describe_expect({3, None})) == {3, None}
True
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

from schemas import AliasReason, StreamConfig, Topics
from services.registry.domain import (
    AliasMove,
    GcReport,
    ModelInfo,
    ModelVersion,
    SpecVersion,
    StoredCheckpoint,
    TrainingRun,
    VersionDraft,
)

__all__ = [
    "ANY",
    "CheckpointBlob",
    "RegistryStore",
    "describe_expect",
    "expect_from",
    "expect_text",
]

ANY: Any = object()  # "expect" sentinel: move whatever the alias points at now


@dataclass(frozen=True)
class CheckpointBlob:
    """One checkpoint's pickled state (unsigned: the store signs it) and what it covers."""

    key: str
    blob: bytes
    offsets: dict[str, Any]
    meta: dict[str, Any]


def describe_expect(expect: Any) -> list[int | None] | None:
    """An ``expect`` as JSON: None for :data:`ANY`, else the accepted versions."""
    if expect is ANY:
        return None
    if isinstance(expect, Collection) and not isinstance(expect, str):
        return sorted(expect, key=lambda v: -1 if v is None else v)
    return [expect]


def expect_from(accepted: list[int | None] | None) -> Any:
    """The inverse of :func:`describe_expect`."""
    return ANY if accepted is None else set(accepted)


def expect_text(expect: Any) -> str:
    """An ``expect`` as a person reads it in a conflict.

    >>> expect_text(ANY), expect_text(None), expect_text({4, None, 3})
    ('anything', 'nothing', 'nothing or v3 or v4')
    """
    accepted = describe_expect(expect)
    if accepted is None:
        return "anything"
    return " or ".join("nothing" if v is None else f"v{v}" for v in accepted)


class RegistryStore(Protocol):
    """Where the registry's rows and bytes live (see the module docstring)."""

    topics: Topics

    def close(self) -> None:
        """Release connections (and flush a relay producer)."""
        ...

    def relay(self) -> int:
        """Publish pending outbox rows now, where this store relays (0 otherwise)."""
        ...

    def publish_outbox(self, producer: Any) -> int:
        """Publish pending outbox rows through ``producer`` (0 where the service relays)."""
        ...

    def outbox_backlog(self) -> int:
        """Events committed but not yet relayed."""
        ...

    # streams
    def record_specs(self, *, configs: Sequence[StreamConfig]) -> list[SpecVersion]:
        """Record published stream config versions, all or none (idempotent)."""
        ...

    def get_spec(self, *, stream: str, version: int | None = None) -> SpecVersion | None:
        """A stream config version (latest when ``version`` is None)."""
        ...

    def spec_by_sha256(self, *, spec_sha256: str) -> SpecVersion | None:
        """The config version whose spec has this sha256."""
        ...

    # versions
    def version_by_key(self, *, idempotency_key: str) -> ModelVersion | None:
        """The version registered under an idempotency key."""
        ...

    def register_version(self, *, model: str, draft: VersionDraft, data: bytes) -> ModelVersion:
        """Sign and store ``data`` (a packed predictor), register the version, announce it."""
        ...

    def get_version(self, *, model: str, version: int) -> ModelVersion | None:
        """One version."""
        ...

    def list_versions(self, *, model: str, limit: int = 100) -> list[ModelVersion]:
        """A model's versions, newest first."""
        ...

    def get_model(self, *, name: str) -> ModelInfo | None:
        """A model with its aliases."""
        ...

    def list_models(self) -> list[ModelInfo]:
        """Every model."""
        ...

    def versions_by_sha256(self, *, sha256: str) -> list[ModelVersion]:
        """Versions whose artifact has this sha256."""
        ...

    def artifact_bytes(self, *, sha256: str) -> bytes:
        """Stored bytes by sha256, unverified (NotFound when gone)."""
        ...

    # aliases
    def get_alias(self, *, model: str, alias: str) -> int | None:
        """Where an alias points (None: unset)."""
        ...

    def move_alias(
        self,
        *,
        model: str,
        alias: str,
        to_version: int | None,
        expect: Any,
        reason: AliasReason,
        actor: str,
        evidence: dict[str, Any],
        move_id: str | None = None,
    ) -> AliasMove:
        """Compare-and-set an alias; a ``move_id`` already applied returns that move."""
        ...

    def alias_history(
        self, *, model: str, alias: str | None = None, limit: int = 100
    ) -> list[AliasMove]:
        """Alias moves, newest first."""
        ...

    def freeze(self, *, model: str, frozen: bool, reason: str | None) -> ModelInfo:
        """Stop (or resume) automatic moves."""
        ...

    # checkpoints
    def save_checkpoints(self, *, owner: str, items: Sequence[CheckpointBlob]) -> list[str]:
        """Sign, store and record checkpoints in one transaction; their sha256, in order."""
        ...

    def checkpoints(self, *, owner: str, key: str, limit: int = 10) -> list[StoredCheckpoint]:
        """The newest checkpoints of ``owner``/``key``, newest first."""
        ...

    def latest_checkpoints(self, *, owner: str, prefix: str) -> list[StoredCheckpoint]:
        """The newest checkpoint of every key of ``owner`` under ``prefix``, by key."""
        ...

    def checkpoint_blob(self, *, owner: str, checkpoint_id: int) -> bytes:
        """A checkpoint's stored bytes, unverified (NotFound when gone)."""
        ...

    # training runs
    def start_run(
        self,
        *,
        model: str,
        trigger_event_id: str,
        trigger: dict[str, Any],
        window: dict[str, Any],
    ) -> tuple[TrainingRun, bool]:
        """The run of a trigger event; False when it already existed."""
        ...

    def add_candidate(
        self,
        *,
        run_id: str,
        name: str,
        params: dict[str, Any],
        metrics: dict[str, Any],
        fit_s: float,
        version: int | None,
        note: str | None,
    ) -> None:
        """Record a candidate (once: the same name and version again is a no-op)."""
        ...

    def finish_run(self, *, run_id: str, values: dict[str, Any]) -> TrainingRun:
        """Set a run's outcome fields."""
        ...

    def get_run(self, *, run_id: str) -> TrainingRun | None:
        """A run with its candidates."""
        ...

    def list_runs(self, *, model: str | None = None, limit: int = 50) -> list[TrainingRun]:
        """Runs, newest first."""
        ...

    # idempotent consumers
    def mark_handled(self, *, consumer: str, event_id: str) -> bool:
        """Record a handled event id; False when it already was."""
        ...

    def was_handled(self, *, consumer: str, event_id: str) -> bool:
        """Whether an event id was handled."""
        ...

    # retention
    def gc(
        self,
        *,
        keep_versions: int,
        keep_checkpoints: int,
        handled_ttl: timedelta,
        outbox_ttl: timedelta,
        dry_run: bool,
    ) -> GcReport:
        """``driftline gc`` (see :meth:`services.registry.sql_store.SqlStore.gc`)."""
        ...
