"""The registry's public face: every other service uses this, never the tables.

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
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from schemas import AliasReason, ArtifactRef, Lineage, StreamConfig, Topics, utcnow
from services.common import artifacts
from services.common.kafka_client import make_producer
from services.common.predictor import Predictor
from services.common.settings import DriftlineSettings
from services.common.signing import Keyring, Signature
from services.registry import repository as repo
from services.registry.db import make_engine, migrate
from services.registry.domain import (
    AliasMove,
    Checkpoint,
    GcReport,
    ModelInfo,
    ModelVersion,
    SpecVersion,
    TrainingRun,
)
from services.registry.errors import AliasConflict, FrozenModel, NotFound, RegistryError
from services.registry.store import ArtifactStore, open_store

log = logging.getLogger(__name__)
ANY = repo.ANY

__all__ = [
    "ANY",
    "AliasConflict",
    "AliasMove",
    "Checkpoint",
    "FrozenModel",
    "GcReport",
    "ModelInfo",
    "ModelVersion",
    "NotFound",
    "Registry",
    "RegistryError",
    "SpecVersion",
    "TrainingRun",
]


class Registry:
    """Model versions, aliases, checkpoints, runs and idempotency records.

    Every change that must reach Kafka writes an outbox row in the same transaction;
    after commit the registry relays pending rows to the ``models`` topic (and again on
    start-up), so the database and the topic agree after any crash.

    Parameters
    ----------
    engine
        SQLAlchemy engine (see :func:`services.registry.db.make_engine`).
    store
        Where artifact bytes go.
    keyring
        Signs new artifacts and checkpoints; verifies before anything is unpickled.
    topics
        Topic names under the configured prefix.
    producer_factory
        Builds the Kafka producer for the outbox relay; None disables relaying
        (the rows wait for a process that relays).
    """

    def __init__(
        self,
        *,
        engine: Engine,
        store: ArtifactStore,
        keyring: Keyring,
        topics: Topics,
        producer_factory: Any = None,
    ) -> None:
        self.engine = engine
        self.store = store
        self.keyring = keyring
        self.topics = topics
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self._producer_factory = producer_factory
        self._producer: Any = None
        self._relay_lock = threading.Lock()

    @classmethod
    def open(cls, settings: DriftlineSettings, *, relay: bool = True) -> Registry:
        """The registry of ``settings``: migrated, and with pending events relayed."""
        engine = make_engine(settings.registry_dsn)
        migrate(engine)
        registry = cls(
            engine=engine,
            store=open_store(settings.artifacts_location),
            keyring=Keyring.from_settings(settings),
            topics=Topics(settings.topic_prefix),
            producer_factory=(lambda: make_producer(settings)) if relay else None,
        )
        if relay:
            registry._after_commit()  # what a crashed writer left; failures stay queued
        return registry

    def close(self) -> None:
        """Flush and close the relay producer and the engine's connections."""
        if self._producer is not None:
            self._producer.flush()
            self._producer.close()
            self._producer = None
        self.engine.dispose()

    @contextmanager
    def _tx(self) -> Iterator[Session]:
        with self._sessions.begin() as session:
            yield session

    # -- the outbox relay -----------------------------------------------------------

    def relay(self, *, limit: int = 500) -> int:
        """Publish pending outbox rows with this registry's own producer; returns how many."""
        if self._producer_factory is None:
            return 0
        with self._relay_lock:
            if self._producer is None:
                self._producer = self._producer_factory()
            return self.publish_outbox(self._producer, limit=limit)

    def publish_outbox(self, producer: Any, *, limit: int = 500) -> int:
        """Publish pending outbox rows through ``producer``, oldest first; returns how many.

        A row is marked published only after the broker acknowledged it; on any failure
        the rows stay pending and the error propagates.
        """
        total = 0
        while True:
            with self._tx() as session:
                rows = repo.pending_outbox(session, limit=limit)
                if not rows:
                    return total
                futures = [
                    producer.send(
                        self.topics.name(r.topic), key=r.key.encode() or None, value=r.payload
                    )
                    for r in rows
                ]
                producer.flush()
                for future in futures:
                    future.get(timeout=30)  # raises if the broker refused it
                repo.mark_published(session, ids=[r.id for r in rows])
                total += len(rows)

    def _after_commit(self) -> None:
        try:
            self.relay()
        except Exception:  # noqa: BLE001 - the rows stay pending and are relayed later
            log.exception("outbox relay failed; events stay queued and are retried")

    def outbox_backlog(self) -> int:
        """Events waiting in the outbox."""
        with self._tx() as session:
            return repo.outbox_backlog(session)

    # -- streams ----------------------------------------------------------------------

    def record_spec(self, *, config: StreamConfig) -> SpecVersion:
        """Record a published stream config version (idempotent)."""
        with self._tx() as session:
            return repo.record_spec(session, config=config)

    def get_spec(self, *, stream: str, version: int | None = None) -> SpecVersion | None:
        """A stream config version (latest when ``version`` is None)."""
        with self._tx() as session:
            return repo.get_spec(session, stream=stream, version=version)

    def spec_by_sha256(self, *, spec_sha256: str) -> SpecVersion | None:
        """The config version whose spec has this sha256."""
        with self._tx() as session:
            return repo.spec_by_sha256(session, spec_sha256=spec_sha256)

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
        """Sign and store the predictor's artifact, register a version, announce it.

        With an ``idempotency_key`` (say ``learner:sea:2000``), registering again under
        the same key returns the version registered first: a retry after a crash never
        makes a second version.
        """
        if idempotency_key is not None:
            with self._tx() as session:
                found = repo.version_by_key(session, idempotency_key=idempotency_key)
            if found is not None:
                return found
        data = artifacts.pack(predictor)
        signature = self.keyring.sign(data)
        uri = self.store.put(data, signature.sha256)
        artifact = ArtifactRef(
            uri=uri,
            sha256=signature.sha256,
            signature=signature.signature or "",
            key_id=signature.key_id or "",
            size=len(data),
        )
        with self._tx() as session:
            if idempotency_key is not None:
                found = repo.version_by_key(session, idempotency_key=idempotency_key)
                if found is not None:  # a racing retry won
                    return found
            version = repo.next_version(session, model=model)
            created = repo.insert_version(
                session,
                model=model,
                version=version,
                kind=kind,
                flavor=predictor.flavor,
                algorithm=predictor.algorithm,
                params=params or {},
                metrics=metrics or {},
                evaluation=evaluation or {},
                spec_sha256=predictor.spec_sha256,
                artifact=artifact,
                lineage=lineage or Lineage(),
                parent_version=parent_version,
                run_id=run_id,
                training_duration_s=training_duration_s,
                idempotency_key=idempotency_key,
            )
        self._after_commit()
        return created

    def get_version(self, *, model: str, version: int) -> ModelVersion | None:
        """One version, or None."""
        with self._tx() as session:
            return repo.get_version(session, model=model, version=version)

    def list_versions(self, *, model: str, limit: int = 100) -> list[ModelVersion]:
        """A model's versions, newest first."""
        with self._tx() as session:
            return repo.list_versions(session, model=model, limit=limit)

    def get_model(self, *, name: str) -> ModelInfo | None:
        """A model with its aliases."""
        with self._tx() as session:
            return repo.get_model(session, name=name)

    def list_models(self) -> list[ModelInfo]:
        """Every model."""
        with self._tx() as session:
            return repo.list_models(session)

    def versions_by_sha256(self, *, sha256: str) -> list[ModelVersion]:
        """Versions whose artifact has this sha256."""
        with self._tx() as session:
            return repo.versions_by_sha256(session, sha256=sha256)

    def artifact_bytes(self, *, sha256: str) -> bytes:
        """The stored bytes of an artifact, unverified (for the HTTP download)."""
        return self.store.get_by_sha256(sha256)

    def load_predictor(self, *, model: str, version: int) -> Predictor:
        """The version's predictor: sha256 and signature verified before unpickling."""
        found = self.get_version(model=model, version=version)
        if found is None:
            raise NotFound(f"no version {model} v{version}")
        data = self.store.get(found.artifact.uri)
        expected = Signature(found.artifact.sha256, found.artifact.signature, found.artifact.key_id)
        _header, predictor = artifacts.load(data, expected, self.keyring)
        return predictor

    # -- aliases ----------------------------------------------------------------------

    def get_alias(self, *, model: str, alias: str) -> int | None:
        """The version an alias points at (None: unset)."""
        with self._tx() as session:
            return repo.get_alias(session, model=model, alias=alias)

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
        """
        with self._tx() as session:
            move = repo.move_alias(
                session,
                model=model,
                alias=alias,
                to_version=to_version,
                expect=expect,
                reason=reason,
                actor=actor,
                evidence=evidence or {},
            )
        self._after_commit()
        return move

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
        with self._tx() as session:
            return repo.alias_history(session, model=model, alias=alias, limit=limit)

    def freeze(self, *, model: str, frozen: bool = True, reason: str | None = None) -> ModelInfo:
        """Stop (or resume) every automatic alias move of a model."""
        with self._tx() as session:
            return repo.set_frozen(session, model=model, frozen=frozen, reason=reason)

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
        """Sign and store ``state`` with the offsets it covers, in one transaction."""
        blob = artifacts.dump_blob(state)
        signature = self.keyring.sign(blob)
        with self._tx() as session:
            repo.insert_checkpoint(
                session,
                owner=owner,
                key=key,
                offsets=offsets,
                blob=blob,
                sha256=signature.sha256,
                signature=signature.signature or "",
                key_id=signature.key_id or "",
                meta=meta or {},
            )
        return signature.sha256

    def load_checkpoint(self, *, owner: str, key: str) -> Checkpoint | None:
        """The newest checkpoint, verified before it is unpickled (None: none yet)."""
        with self._tx() as session:
            row = repo.latest_checkpoint(session, owner=owner, key=key)
            if row is None:
                return None
            blob, expected = row.blob, Signature(row.sha256, row.signature, row.key_id)
            offsets, meta, created = row.offsets, row.meta, repo.aware(row.created_at)
        state = artifacts.load_blob(blob, expected, self.keyring)
        return Checkpoint(
            owner=owner,
            key=key,
            offsets=offsets,
            state=state,
            meta=meta,
            sha256=expected.sha256,
            created_at=created,
        )

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
        with self._tx() as session:
            return repo.start_run(
                session,
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
        with self._tx() as session:
            repo.add_candidate(
                session,
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
        with self._tx() as session:
            return repo.finish_run(session, run_id=run_id, **values)

    def get_run(self, *, run_id: str) -> TrainingRun | None:
        """A run with its candidates."""
        with self._tx() as session:
            return repo.get_run(session, run_id=run_id)

    def list_runs(self, *, model: str | None = None, limit: int = 50) -> list[TrainingRun]:
        """Runs, newest first."""
        with self._tx() as session:
            return repo.list_runs(session, model=model, limit=limit)

    # -- idempotent consumers ---------------------------------------------------------

    def mark_handled(self, *, consumer: str, event_id: str) -> bool:
        """Record that ``consumer`` handled ``event_id``; False when it already had."""
        with self._tx() as session:
            return repo.mark_handled(session, consumer=consumer, event_id=event_id)

    def was_handled(self, *, consumer: str, event_id: str) -> bool:
        """Whether ``consumer`` already handled ``event_id``."""
        with self._tx() as session:
            return repo.was_handled(session, consumer=consumer, event_id=event_id)

    # -- garbage collection -----------------------------------------------------------

    def gc(
        self,
        *,
        keep_versions: int = 10,
        keep_checkpoints: int = 3,
        handled_ttl: timedelta = timedelta(days=30),
        outbox_ttl: timedelta = timedelta(days=7),
        dry_run: bool = False,
    ) -> GcReport:
        """Remove artifacts of unaliased versions beyond the newest ``keep_versions`` per
        model, all but the newest checkpoints, and handled ids and sent events past their TTL.

        ``dry_run``: count what would go (the same statements, rolled back) and delete
        nothing.
        """
        now = utcnow()
        session = self._sessions()
        try:
            keep = repo.aliased_versions(session)
            versions = repo.all_version_keys(session)
            newest: dict[str, list[int]] = {}
            for model, version, _ in versions:
                newest.setdefault(model, []).append(version)
            for model, numbers in newest.items():
                keep |= {(model, v) for v in sorted(numbers)[-keep_versions:]}
            doomed = [(m, v, s) for m, v, s in versions if (m, v) not in keep]
            live = {s for m, v, s in versions if (m, v) in keep}
            for model, version, _ in doomed:
                repo.mark_archived(session, model=model, version=version)
            checkpoints = repo.prune_checkpoints(session, keep=keep_checkpoints)
            handled = repo.prune_handled(session, before=now - handled_ttl)
            outbox = repo.prune_outbox(session, before=now - outbox_ttl)
            if dry_run:
                session.rollback()
            else:
                session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()
        blobs = {s for _, _, s in doomed} - live
        if dry_run:
            stored = set(self.store.list_sha256())
            removed = len(blobs & stored)
        else:
            removed = sum(self.store.delete(s) for s in blobs)
        return GcReport(
            artifacts=removed, checkpoints=checkpoints, handled_events=handled, outbox=outbox
        )
