"""The registry's public face: every other service uses this, never the tables.

:class:`Registry` packs predictors and pickles state before, and verifies signatures
after; it delegates the rest to a store (:mod:`services.registry.backend`) chosen by
``DRIFTLINE_REGISTRY_URL``: ``http(s)://...`` reaches the registry service over its HTTP
API (:class:`~services.registry.rest_store.RestStore`), a SQLAlchemy URL opens the tables
in this process (:class:`~services.registry.sql_store.SqlStore`; tests and
single-process tools).

>>> import tempfile, pathlib
>>> from services.common.settings import DriftlineSettings
>>> tmp = pathlib.Path(tempfile.mkdtemp())
>>> reg = Registry.open(DriftlineSettings.load(env={}, data_dir=tmp), relay=False)
>>> reg.mark_handled(consumer="trainer", event_id="e1")
True
>>> reg.mark_handled(consumer="trainer", event_id="e1")
False
>>> reg.close()
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from schemas import AliasReason, Lineage, StreamConfig, Topics, utcnow
from services.common import artifacts
from services.common.predictor import Predictor
from services.common.settings import DriftlineSettings
from services.common.signing import Keyring, Signature, artifact_subject
from services.registry.backend import ANY, CheckpointBlob, RegistryStore
from services.registry.domain import (
    AliasMove,
    Checkpoint,
    GcReport,
    ModelInfo,
    ModelVersion,
    SpecVersion,
    StoredCheckpoint,
    TrainingRun,
    VersionDraft,
)
from services.registry.errors import (
    AliasConflict,
    FrozenModel,
    NotFound,
    RegistryError,
    RegistryUnavailable,
)
from services.registry.retention import OUTBOX_TTL, Retention

log = logging.getLogger(__name__)

__all__ = [
    "ANY",
    "AliasConflict",
    "AliasMove",
    "Checkpoint",
    "CheckpointItem",
    "FrozenModel",
    "GcReport",
    "ModelInfo",
    "ModelVersion",
    "NotFound",
    "Registry",
    "RegistryError",
    "RegistryUnavailable",
    "Retention",
    "SpecVersion",
    "TrainingRun",
    "is_remote",
]


def is_remote(url: str | None) -> bool:
    """Whether a ``DRIFTLINE_REGISTRY_URL`` names the registry service (``http(s)://``).

    >>> is_remote("http://registry:8300"), is_remote("sqlite:///r.db"), is_remote(None)
    (True, False, False)
    """
    return url is not None and url.lower().startswith(("http://", "https://"))


@dataclass(frozen=True)
class CheckpointItem:
    """One checkpoint to save with :meth:`Registry.save_checkpoints`."""

    key: str
    state: Any
    offsets: dict[str, Any]
    meta: dict[str, Any] | None = None


class Registry:
    """Model versions, aliases, checkpoints, runs and idempotency records.

    Every change that must reach Kafka writes an outbox row in the same transaction;
    the registry relays pending rows to the ``models`` topic after commit (and again on
    start-up), so the database and the topic agree after any crash.

    Parameters
    ----------
    backend
        The store (:class:`~services.registry.backend.RegistryStore`) behind this client.
    keyring
        Verifies artifacts and checkpoints before anything is unpickled.
    """

    def __init__(self, *, backend: RegistryStore, keyring: Keyring) -> None:
        self.backend = backend
        self.keyring = keyring

    @classmethod
    def open(cls, settings: DriftlineSettings, *, relay: bool = True) -> Registry:
        """The registry ``DRIFTLINE_REGISTRY_URL`` names.

        ``http(s)://``: the registry service, through its API (writes carry
        ``DRIFTLINE_SERVICE_TOKEN``; the service relays the outbox, ``relay`` is moot).
        Otherwise the tables in this process: migrated, and, with ``relay``, pending
        events relayed now and after each commit.
        """
        keyring = Keyring.from_settings(settings)
        if is_remote(settings.registry_url):
            from services.registry.rest_store import RestStore

            return cls(backend=RestStore.from_settings(settings), keyring=keyring)
        from services.registry.sql_store import SqlStore

        return cls(backend=SqlStore.open(settings, relay=relay), keyring=keyring)

    @property
    def topics(self) -> Topics:
        """Topic names under the configured prefix."""
        return self.backend.topics

    def close(self) -> None:
        """Release the store's connections (and flush an in-process relay)."""
        self.backend.close()

    # -- the outbox relay -----------------------------------------------------------

    def relay(self) -> int:
        """Publish pending outbox rows now, where this process relays; returns how many."""
        return self.backend.relay()

    def publish_outbox(self, producer: Any) -> int:
        """Publish pending outbox rows through ``producer`` (in-process stores only; the
        registry service relays its own); returns how many.

        A row is marked published only after the broker acknowledged it; on any failure
        the rows stay pending and the error propagates.
        """
        return self.backend.publish_outbox(producer)

    def outbox_backlog(self) -> int:
        """Events waiting in the outbox."""
        return self.backend.outbox_backlog()

    # -- streams ----------------------------------------------------------------------

    def record_spec(self, *, config: StreamConfig) -> SpecVersion:
        """Record a published stream config version (idempotent)."""
        (recorded,) = self.backend.record_specs(configs=[config])
        return recorded

    def record_specs(self, *, configs: Sequence[StreamConfig]) -> list[SpecVersion]:
        """Record many published stream config versions in one transaction (idempotent)."""
        return self.backend.record_specs(configs=configs)

    def get_spec(self, *, stream: str, version: int | None = None) -> SpecVersion | None:
        """A stream config version (latest when ``version`` is None)."""
        return self.backend.get_spec(stream=stream, version=version)

    def spec_by_sha256(self, *, spec_sha256: str) -> SpecVersion | None:
        """The config version whose spec has this sha256."""
        return self.backend.spec_by_sha256(spec_sha256=spec_sha256)

    # -- versions ---------------------------------------------------------------------

    def register_version(
        self,
        *,
        model: str,
        kind: str,
        predictor: Predictor,
        params: dict[str, Any] | None = None,
        metrics: dict[str, float] | None = None,
        evaluation: dict[str, Any] | None = None,
        lineage: Lineage | None = None,
        parent_version: int | None = None,
        run_id: str | None = None,
        training_duration_s: float | None = None,
        idempotency_key: str | None = None,
    ) -> ModelVersion:
        """Pack the predictor; the store signs and stores it, registers a version and
        announces it.

        With an ``idempotency_key`` (say ``learner:sea:2000``), registering again under
        the same key returns the version registered first: a retry after a crash never
        makes a second version. After an online version, the model's online artifacts
        beyond :attr:`Retention.keep_online_versions` are collected; a failure there is
        logged, never raised.
        """
        if idempotency_key is not None:
            found = self.backend.version_by_key(idempotency_key=idempotency_key)
            if found is not None:
                return found
        draft = VersionDraft.model_validate(
            {
                "kind": kind,
                "flavor": predictor.flavor,
                "algorithm": predictor.algorithm,
                "spec_sha256": predictor.spec_sha256,
                "params": params or {},
                "metrics": metrics or {},
                "evaluation": evaluation or {},
                "lineage": lineage or Lineage(),
                "parent_version": parent_version,
                "run_id": run_id,
                "training_duration_s": training_duration_s,
                "idempotency_key": idempotency_key,
            }
        )
        return self.backend.register_version(
            model=model, draft=draft, data=artifacts.pack(predictor)
        )

    def get_version(self, *, model: str, version: int) -> ModelVersion | None:
        """One version, or None."""
        return self.backend.get_version(model=model, version=version)

    def list_versions(self, *, model: str, limit: int = 100) -> list[ModelVersion]:
        """A model's versions, newest first."""
        return self.backend.list_versions(model=model, limit=limit)

    def get_model(self, *, name: str) -> ModelInfo | None:
        """A model with its aliases."""
        return self.backend.get_model(name=name)

    def list_models(self) -> list[ModelInfo]:
        """Every model."""
        return self.backend.list_models()

    def versions_by_sha256(self, *, sha256: str) -> list[ModelVersion]:
        """Versions whose artifact has this sha256."""
        return self.backend.versions_by_sha256(sha256=sha256)

    def artifact_bytes(self, *, sha256: str) -> bytes:
        """The stored bytes of an artifact, unverified (for the HTTP download)."""
        return self.backend.artifact_bytes(sha256=sha256)

    def load_predictor(self, *, model: str, version: int) -> Predictor:
        """The version's predictor: sha256 and signature verified before unpickling."""
        found = self.get_version(model=model, version=version)
        if found is None:
            raise NotFound(f"no version {model} v{version}")
        data = self.backend.artifact_bytes(sha256=found.artifact.sha256)
        expected = Signature(found.artifact.sha256, found.artifact.signature, found.artifact.key_id)
        subject = artifact_subject(model, version)
        _header, predictor = artifacts.load(data, expected, self.keyring, subject)
        return predictor

    # -- aliases ----------------------------------------------------------------------

    def get_alias(self, *, model: str, alias: str) -> int | None:
        """The version an alias points at (None: unset)."""
        return self.backend.get_alias(model=model, alias=alias)

    def move_alias(
        self,
        *,
        model: str,
        alias: str,
        to_version: int | None,
        expect: Any,
        reason: AliasReason,
        actor: str,
        evidence: dict[str, Any] | None = None,
    ) -> AliasMove:
        """Compare-and-set ``alias`` to ``to_version`` and announce it.

        ``expect``: the version you saw (None: unset), a collection of acceptable ones,
        or :data:`ANY`. Raises AliasConflict, FrozenModel (automatic moves) or NotFound.
        The move carries a fresh id, so a store that retries the request after a lost
        answer finds it instead of moving twice.
        """
        return self.backend.move_alias(
            model=model,
            alias=alias,
            to_version=to_version,
            expect=expect,
            reason=reason,
            actor=actor,
            evidence=evidence or {},
            move_id=str(uuid.uuid4()),
        )

    def rollback(
        self,
        *,
        model: str,
        alias: str = "champion",
        expect: Any,
        actor: str,
        evidence: dict[str, Any] | None = None,
        reason: AliasReason = AliasReason.ROLLED_BACK,
    ) -> AliasMove:
        """Move ``alias`` back to the version it pointed at before its last move.

        The evaluator's automatic rollback is ``rolled_back`` (refused on a frozen model);
        a person's is ``manual`` (accepted: freezing stops automation, not people).
        """
        if self.get_model(name=model) is None:
            raise NotFound(f"no model {model!r}")
        history = self.alias_history(model=model, alias=alias, limit=1)
        if not history or history[0].from_version is None:
            raise NotFound(f"{model}@{alias} has no earlier version to roll back to")
        return self.move_alias(
            model=model,
            alias=alias,
            to_version=history[0].from_version,
            expect=expect,
            reason=reason,
            actor=actor,
            evidence={**(evidence or {}), "rolled_back_from": history[0].to_version},
        )

    def alias_history(
        self, *, model: str, alias: str | None = None, limit: int = 100
    ) -> list[AliasMove]:
        """Alias moves, newest first."""
        return self.backend.alias_history(model=model, alias=alias, limit=limit)

    def freeze(self, *, model: str, frozen: bool = True, reason: str | None = None) -> ModelInfo:
        """Stop (or resume) every automatic alias move of a model."""
        return self.backend.freeze(model=model, frozen=frozen, reason=reason)

    # -- checkpoints ------------------------------------------------------------------

    def save_checkpoint(
        self,
        *,
        owner: str,
        key: str,
        state: Any,
        offsets: dict[str, Any],
        meta: dict[str, Any] | None = None,
    ) -> str:
        """Pickle ``state``; the store signs it, keeps its bytes in the artifact store
        (content-addressed) and records the row with the offsets it covers; returns the
        bytes' sha256.

        In the same transaction, all but the newest :attr:`Retention.keep_checkpoints`
        rows of ``owner``/``key`` are deleted; after commit, so are their bytes unless
        another row still points at the same sha256.
        """
        (sha256,) = self.save_checkpoints(
            owner=owner, items=[CheckpointItem(key=key, state=state, offsets=offsets, meta=meta)]
        )
        return sha256

    def save_checkpoints(self, *, owner: str, items: Sequence[CheckpointItem]) -> list[str]:
        """:meth:`save_checkpoint` for several keys at once, their rows (and retention)
        in one transaction (over HTTP, one per request of at most 256 KiB of rows: each
        key's checkpoint stands alone); returns each one's sha256, in order."""
        blobs = [
            CheckpointBlob(
                key=item.key,
                blob=artifacts.dump_blob(item.state),
                offsets=item.offsets,
                meta=item.meta or {},
            )
            for item in items
        ]
        return self.backend.save_checkpoints(owner=owner, items=blobs)

    def load_checkpoint(self, *, owner: str, key: str) -> Checkpoint | None:
        """The newest checkpoint, verified before it is unpickled (None: none yet).

        When the newest one's bytes are missing from the store, the next older checkpoint
        is used (and a warning logged); a signature or digest that does not match is
        raised, never skipped.
        """
        return self._first_loadable(owner, self.backend.checkpoints(owner=owner, key=key))

    def load_checkpoints(self, *, owner: str, prefix: str) -> list[Checkpoint]:
        """The newest checkpoint of every key of ``owner`` starting with ``prefix``
        (literally), by key, each verified as :meth:`load_checkpoint` does (with the same
        fall-back to an older one when its bytes are missing)."""
        out = []
        for row in self.backend.latest_checkpoints(owner=owner, prefix=prefix):
            cp = self._first_loadable(owner, [row])
            if cp is None:
                cp = self.load_checkpoint(owner=owner, key=row.key)
            if cp is not None:
                out.append(cp)
        return out

    def _first_loadable(self, owner: str, rows: list[StoredCheckpoint]) -> Checkpoint | None:
        for row in rows:
            expected = Signature(row.sha256, row.signature, row.key_id)
            try:
                blob = self.backend.checkpoint_blob(owner=owner, checkpoint_id=row.id)
            except NotFound:
                log.warning(
                    "checkpoint %s of %s/%s: bytes missing from the artifact store; "
                    "trying an older one",
                    row.sha256[:12],
                    owner,
                    row.key,
                )
                continue
            state = artifacts.load_checkpoint_blob(
                blob, expected, self.keyring, owner=owner, key=row.key
            )
            return Checkpoint(
                owner=owner,
                key=row.key,
                offsets=row.offsets,
                state=state,
                meta=row.meta,
                sha256=row.sha256,
                created_at=row.created_at,
            )
        return None

    # -- training runs ----------------------------------------------------------------

    def start_run(
        self,
        *,
        model: str,
        trigger_event_id: str,
        trigger: dict[str, Any] | None = None,
        window: dict[str, Any] | None = None,
    ) -> tuple[TrainingRun, bool]:
        """The run for a trigger event; the bool is False when it already existed."""
        return self.backend.start_run(
            model=model,
            trigger_event_id=trigger_event_id,
            trigger=trigger or {},
            window=window or {},
        )

    def add_candidate(
        self,
        *,
        run_id: str,
        name: str,
        params: dict[str, Any],
        metrics: dict[str, Any],
        fit_s: float,
        version: int | None = None,
        note: str | None = None,
    ) -> None:
        """Record a candidate a run tried."""
        self.backend.add_candidate(
            run_id=run_id,
            name=name,
            params=params,
            metrics=metrics,
            fit_s=fit_s,
            version=version,
            note=note,
        )

    def finish_run(
        self,
        *,
        run_id: str,
        status: str,
        decision: str,
        winner_version: int | None = None,
        champion: dict[str, Any] | None = None,
        window: dict[str, Any] | None = None,
    ) -> TrainingRun:
        """Record a run's outcome."""
        values: dict[str, Any] = {
            "status": status,
            "decision": decision,
            "winner_version": winner_version,
            "finished_at": utcnow(),
        }
        if champion is not None:
            values["champion"] = champion
        if window is not None:
            values["window"] = window
        return self.backend.finish_run(run_id=run_id, values=values)

    def get_run(self, *, run_id: str) -> TrainingRun | None:
        """A run with its candidates."""
        return self.backend.get_run(run_id=run_id)

    def list_runs(self, *, model: str | None = None, limit: int = 50) -> list[TrainingRun]:
        """Runs, newest first."""
        return self.backend.list_runs(model=model, limit=limit)

    # -- idempotent consumers ---------------------------------------------------------

    def mark_handled(self, *, consumer: str, event_id: str) -> bool:
        """Record that ``consumer`` handled ``event_id``; False when it already had."""
        return self.backend.mark_handled(consumer=consumer, event_id=event_id)

    def was_handled(self, *, consumer: str, event_id: str) -> bool:
        """Whether ``consumer`` already handled ``event_id``."""
        return self.backend.was_handled(consumer=consumer, event_id=event_id)

    # -- retention and garbage collection ---------------------------------------------

    def gc(
        self,
        *,
        keep_versions: int = 10,
        keep_checkpoints: int = 3,
        handled_ttl: timedelta = timedelta(days=30),
        outbox_ttl: timedelta = OUTBOX_TTL,
        dry_run: bool = False,
    ) -> GcReport:
        """Remove artifacts of unaliased versions beyond the newest ``keep_versions`` per
        model (aliased, recently aliased and running runs' versions are kept), all but the
        newest checkpoints (rows and bytes), and handled ids and sent events past their
        TTL; then compact a SQLite file. ``dry_run``: count what would go, delete nothing.
        """
        return self.backend.gc(
            keep_versions=keep_versions,
            keep_checkpoints=keep_checkpoints,
            handled_ttl=handled_ttl,
            outbox_ttl=outbox_ttl,
            dry_run=dry_run,
        )
