"""The SQL store: the registry's tables through SQLAlchemy, in this process.

Used by the registry service itself, by tests and by single-process tools; every other
service reaches the same tables through :class:`~services.registry.rest_store.RestStore`.
It signs what it stores, relays its outbox after each commit (when given a producer
factory) and turns a database that does not answer into
:class:`~services.registry.errors.RegistryUnavailable`.

>>> import tempfile, pathlib
>>> from services.common.settings import DriftlineSettings
>>> store = SqlStore.open(DriftlineSettings.load(env={}, data_dir=tempfile.mkdtemp()), relay=False)
>>> store.mark_handled(consumer="trainer", event_id="e1"), store.outbox_backlog()
(True, 0)
>>> store.close()
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from schemas import AliasReason, ArtifactRef, StreamConfig, Topics, utcnow
from services.common import artifacts
from services.common.kafka_client import make_producer
from services.common.settings import DriftlineSettings
from services.common.signing import Keyring, artifact_subject, sha256_hex
from services.registry import repository as repo
from services.registry.backend import CheckpointBlob
from services.registry.db import make_engine, migrate
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
from services.registry.errors import NotFound, RegistryError, RegistryUnavailable
from services.registry.retention import OUTBOX_TTL, Retention
from services.registry.store import ArtifactStore, open_store

log = logging.getLogger(__name__)


class SqlStore:
    """Model versions, aliases, checkpoints, runs and idempotency records in SQL tables.

    Every change that must reach Kafka writes an outbox row in the same transaction;
    after commit the store relays pending rows to the ``models`` topic (and again on
    start-up), so the database and the topic agree after any crash.

    Parameters
    ----------
    engine
        SQLAlchemy engine (see :func:`services.registry.db.make_engine`).
    store
        Where artifact bytes go.
    keyring
        Signs new artifacts and checkpoints.
    topics
        Topic names under the configured prefix.
    producer_factory
        Builds the Kafka producer for the outbox relay; None disables relaying
        (the rows wait for a process that relays).
    retention
        What is pruned automatically (default: :class:`Retention`'s defaults).
    http_url
        The registry's HTTP API (``DRIFTLINE_REGISTRY_HTTP_URL``): version events then
        carry ``artifact.url``, fetchable from other hosts.
    """

    def __init__(
        self,
        *,
        engine: Engine,
        store: ArtifactStore,
        keyring: Keyring,
        topics: Topics,
        producer_factory: Any = None,
        retention: Retention | None = None,
        http_url: str | None = None,
    ) -> None:
        self.engine = engine
        self.http_url = http_url.rstrip("/") if http_url else None
        self.retention = retention or Retention()
        self.store = store
        self.keyring = keyring
        self.topics = topics
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self._producer_factory = producer_factory
        self._producer: Any = None
        self._relay_lock = threading.Lock()
        self._unsigned_noted = False

    @classmethod
    def open(cls, settings: DriftlineSettings, *, relay: bool = True) -> SqlStore:
        """The store of ``settings``: migrated, and with pending events relayed."""
        engine = make_engine(settings.registry_dsn)
        migrate(engine)
        registry = cls(
            engine=engine,
            store=open_store(settings.artifacts_location),
            keyring=Keyring.from_settings(settings),
            topics=Topics(settings.topic_prefix),
            producer_factory=(lambda: make_producer(settings)) if relay else None,
            retention=Retention.from_settings(settings),
            http_url=settings.registry_http_url,
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
        try:
            with self._sessions.begin() as session:
                yield session
        except (OperationalError, DBAPIError) as exc:
            if isinstance(exc, OperationalError) or exc.connection_invalidated:
                raise RegistryUnavailable(f"the registry database did not answer: {exc}") from exc
            if isinstance(exc, DataError | IntegrityError):  # a value the tables refuse
                raise RegistryError(f"the registry refused a value: {exc.orig}") from exc
            raise

    @contextmanager
    def _tx_or_preview(self, dry_run: bool) -> Iterator[Session]:
        """A transaction that commits, or (``dry_run``) runs and then rolls back."""
        session = self._sessions()
        try:
            yield session
            if dry_run:
                session.rollback()
            else:
                session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    # -- the outbox relay -----------------------------------------------------------

    def relay(self, limit: int = 500) -> int:
        """Publish pending outbox rows with this registry's own producer; returns how many.

        A process that holds no signing key publishes nothing: its rows wait for a
        signer's relay (the registry service), so every ``models`` event is signed by a
        key consumers trust.
        """
        if self._producer_factory is None:
            return 0
        if not self.keyring.can_sign:
            if not self._unsigned_noted:
                self._unsigned_noted = True
                log.info(
                    "no DRIFTLINE_SIGNING_KEY here: model events wait in the outbox for a "
                    "signer's relay (the registry service)"
                )
            return 0
        with self._relay_lock:
            if self._producer is None:
                self._producer = self._producer_factory()
            return self.publish_outbox(self._producer, limit=limit)

    def publish_outbox(self, producer: Any, limit: int = 500) -> int:
        """Publish pending outbox rows through ``producer``, oldest first; returns how many.

        A row is marked published only after the broker acknowledged it; on any failure
        the rows stay pending and the error propagates. ``models`` events are signed here
        (:meth:`~services.common.signing.Keyring.sign_event`), so a signing key is needed
        for them: without one, nothing is published.
        """
        if not self.keyring.can_sign:
            with self._tx() as session:
                if repo.outbox_backlog(session):
                    self.keyring.sign_event(b"{}")  # raises ConfigError naming the setting
            return 0
        total = 0
        while True:
            with self._tx() as session:
                rows = repo.pending_outbox(session, limit=limit)
                if not rows:
                    return total
                futures = [
                    producer.send(
                        self.topics.name(r.topic),
                        key=r.key.encode() or None,
                        value=self._signed(r.topic, r.payload),
                    )
                    for r in rows
                ]
                producer.flush()
                for future in futures:
                    future.get(timeout=30)  # raises if the broker refused it
                repo.mark_published(session, ids=[r.id for r in rows])
                total += len(rows)

    def _signed(self, topic: str, payload: bytes) -> bytes:
        """The bytes to publish: a ``models`` event signed by this registry's key."""
        return self.keyring.sign_event(payload) if topic == "models" else payload

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

    def record_specs(self, *, configs: Sequence[StreamConfig]) -> list[SpecVersion]:
        """Record many published stream config versions in one transaction (idempotent)."""
        with self._tx() as session:
            return [repo.record_spec(session, config=config) for config in configs]

    def get_spec(self, *, stream: str, version: int | None = None) -> SpecVersion | None:
        """A stream config version (latest when ``version`` is None)."""
        with self._tx() as session:
            return repo.get_spec(session, stream=stream, version=version)

    def spec_by_sha256(self, *, spec_sha256: str) -> SpecVersion | None:
        """The config version whose spec has this sha256."""
        with self._tx() as session:
            return repo.spec_by_sha256(session, spec_sha256=spec_sha256)

    # -- versions ---------------------------------------------------------------------

    def version_by_key(self, *, idempotency_key: str) -> ModelVersion | None:
        """The version registered under an idempotency key, if any."""
        with self._tx() as session:
            return repo.version_by_key(session, idempotency_key=idempotency_key)

    def register_version(self, *, model: str, draft: VersionDraft, data: bytes) -> ModelVersion:
        """Sign and store ``data`` (a packed predictor), register a version, announce it.

        With an idempotency key (say ``learner:sea:2000``), registering again under the
        same key returns the version registered first: a retry after a crash never makes
        a second version. After an online version, the model's online artifacts beyond
        :attr:`Retention.keep_online_versions` are collected (see
        :meth:`collect_artifacts`); a failure there is logged, never raised.
        """
        key = draft.idempotency_key
        if key is not None:
            found = self.version_by_key(idempotency_key=key)
            if found is not None:
                return found
        if not self.keyring.can_sign:  # before anything is stored or numbered
            self.keyring.sign(b"", artifact_subject(model, 1))  # raises, naming the setting
        sha256 = sha256_hex(data)
        uri = self.store.put(data, sha256)
        with self._tx() as session:
            if key is not None:
                found = repo.version_by_key(session, idempotency_key=key)
                if found is not None:  # a racing retry won
                    return found
            version = repo.next_version(session, model=model)
            # Signed as this model and version: the bytes cannot be re-labelled.
            signature = self.keyring.sign(data, artifact_subject(model, version))
            artifact = ArtifactRef(
                uri=uri,
                sha256=sha256,
                signature=signature.signature or "",
                key_id=signature.key_id or "",
                size=len(data),
            )
            created = repo.insert_version(
                session,
                model=model,
                version=version,
                draft=draft,
                artifact=artifact,
                http_url=self.http_url,
            )
        self._after_commit()
        if draft.kind == "online" and self.retention.keep_online_versions > 0:
            self._retain_online(model)
        return created

    def _retain_online(self, model: str) -> None:
        """The automatic pass after an online registration: old online artifacts of
        ``model``, and relayed outbox rows past :data:`OUTBOX_TTL`. Logged, never raised:
        the version is registered, and the next registration tries again."""
        try:
            self.collect_artifacts(
                keep_versions=self.retention.keep_online_versions, kind="online", model=model
            )
            with self._tx() as session:
                repo.prune_outbox(session, before=utcnow() - OUTBOX_TTL)
        except Exception:  # noqa: BLE001 - see the docstring
            log.exception("pruning old online artifacts of %s failed", model)

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
        evidence: dict[str, Any],
        move_id: str | None = None,
    ) -> AliasMove:
        """Compare-and-set ``alias`` to ``to_version`` and announce it.

        ``expect``: the version you saw (None: unset), a collection of acceptable ones,
        or :data:`ANY`. Raises AliasConflict, FrozenModel (automatic moves) or NotFound.
        A ``move_id`` already recorded returns that move (a retried request).
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
                evidence=evidence,
                move_id=move_id,
            )
        self._after_commit()
        return move

    def alias_history(
        self, *, model: str, alias: str | None = None, limit: int = 100
    ) -> list[AliasMove]:
        """Alias moves, newest first."""
        with self._tx() as session:
            return repo.alias_history(session, model=model, alias=alias, limit=limit)

    def freeze(self, *, model: str, frozen: bool, reason: str | None) -> ModelInfo:
        """Stop (or resume) every automatic alias move of a model."""
        with self._tx() as session:
            return repo.set_frozen(session, model=model, frozen=frozen, reason=reason)

    # -- checkpoints ------------------------------------------------------------------

    def save_checkpoints(self, *, owner: str, items: Sequence[CheckpointBlob]) -> list[str]:
        """Sign each blob, store its bytes in the artifact store (content-addressed) and
        record the rows, all in one transaction; returns each one's sha256, in order.

        A blob identical to the newest checkpoint of its key, with the same offsets, is
        not recorded again (a retried request). In the same transaction, all but the
        newest :attr:`Retention.keep_checkpoints` rows of each key are deleted; after
        commit, so are their bytes unless another row still points at the same sha256.
        """
        rows = []
        for item in items:
            signature = artifacts.seal_checkpoint(
                item.blob, self.keyring, owner=owner, key=item.key
            )
            self.store.put(item.blob, signature.sha256)  # before the row: a row never lacks bytes
            rows.append((item, signature))
        keep = self.retention.keep_checkpoints
        orphans: set[str] = set()
        with self._tx() as session:
            for item, signature in rows:
                newest = repo.checkpoints_newest_first(session, owner=owner, key=item.key, limit=1)
                if (
                    newest
                    and newest[0].sha256 == signature.sha256
                    and newest[0].offsets == item.offsets
                ):
                    continue
                repo.insert_checkpoint(
                    session,
                    owner=owner,
                    key=item.key,
                    offsets=item.offsets,
                    blob=None,
                    sha256=signature.sha256,
                    signature=signature.signature or "",
                    key_id=signature.key_id or "",
                    meta=item.meta,
                )
            if keep > 0:
                pruned: list[str] = []
                for item, _ in rows:
                    pruned.extend(
                        repo.prune_checkpoints(session, keep=keep, owner=owner, key=item.key)[1]
                    )
                orphans = set(pruned) - repo.referenced_sha256(session, shas=pruned)
        self._delete_bytes(orphans)
        return [signature.sha256 for _, signature in rows]

    def checkpoints(self, *, owner: str, key: str, limit: int = 10) -> list[StoredCheckpoint]:
        """The newest checkpoints of ``owner``/``key``, newest first."""
        with self._tx() as session:
            return [
                _stored(r)
                for r in repo.checkpoints_newest_first(session, owner=owner, key=key, limit=limit)
            ]

    def latest_checkpoints(self, *, owner: str, prefix: str) -> list[StoredCheckpoint]:
        """The newest checkpoint of every key of ``owner`` starting with ``prefix``
        (literally), by key."""
        with self._tx() as session:
            return [
                _stored(r)
                for r in repo.latest_checkpoints_under(session, owner=owner, prefix=prefix)
            ]

    def checkpoint_blob(self, *, owner: str, checkpoint_id: int) -> bytes:
        """A checkpoint's bytes: from the artifact store, or from the row itself for
        checkpoints written before they moved there (NotFound when gone)."""
        with self._tx() as session:
            row = repo.checkpoint_by_id(session, owner=owner, checkpoint_id=checkpoint_id)
            if row is None:
                raise NotFound(f"no checkpoint {checkpoint_id} of {owner!r}")
            blob, sha = row.blob, row.sha256
        return blob if blob is not None else self.store.get_by_sha256(sha)

    # -- training runs ----------------------------------------------------------------

    def start_run(
        self,
        *,
        model: str,
        trigger_event_id: str,
        trigger: dict[str, Any],
        window: dict[str, Any],
    ) -> tuple[TrainingRun, bool]:
        """The run for a trigger event; the bool is False when it already existed."""
        with self._tx() as session:
            return repo.start_run(
                session,
                model=model,
                trigger_event_id=trigger_event_id,
                trigger=trigger,
                window=window,
            )

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
        """Record a candidate a run tried (once: the same name and version is a no-op)."""
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

    def finish_run(self, *, run_id: str, values: dict[str, Any]) -> TrainingRun:
        """Set a run's outcome fields."""
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

    # -- retention and garbage collection ---------------------------------------------

    def collect_artifacts(
        self,
        *,
        keep_versions: int,
        kind: str | None = None,
        model: str | None = None,
        dry_run: bool = False,
    ) -> int:
        """Archive versions whose artifacts nothing needs and delete their bytes; returns
        how many blobs were (``dry_run``: would be) removed.

        Per model, the newest ``keep_versions`` live versions (of ``kind``; None: of any
        kind) are kept, and so are aliased and recently aliased versions and what running
        training runs need (:func:`services.registry.repository.collect_versions`).
        Version rows stay (``status`` becomes ``archived``), so lineage stays auditable.
        Both ``driftline gc`` and the automatic pruning after each online registration
        (``kind="online"``) call this.
        """
        with self._tx_or_preview(dry_run) as session:
            doomed = repo.collect_versions(
                session, keep_newest=keep_versions, kind=kind, model=model
            )
            shas = {s for _, _, s in doomed}
            orphans = shas - repo.referenced_sha256(session, shas=shas)
        if dry_run:
            return len(orphans & set(self.store.list_sha256()))
        return self._delete_bytes(orphans)

    def _delete_bytes(self, shas: set[str]) -> int:
        """Delete blobs no row points at any more (after the commit that dropped them)."""
        removed = 0
        for sha in sorted(shas):
            try:
                removed += self.store.delete(sha)
            except OSError:  # a later prune or gc finds it again
                log.warning("could not delete blob %s from the artifact store", sha[:12])
        return removed

    def compact(self) -> bool:
        """Give freed database pages back to the file system (SQLite ``VACUUM``).

        Not needed to keep a file from growing (SQLite reuses freed pages), but a file
        that grew while checkpoints were kept in the database shrinks only this way.
        Returns False on other databases (PostgreSQL's autovacuum reuses space itself).
        """
        if self.engine.dialect.name != "sqlite":
            return False
        raw = self.engine.raw_connection()
        try:
            raw.cursor().execute("VACUUM")
        finally:
            raw.close()
        return True

    def gc(
        self,
        *,
        keep_versions: int,
        keep_checkpoints: int,
        handled_ttl: timedelta,
        outbox_ttl: timedelta,
        dry_run: bool,
    ) -> GcReport:
        """Remove artifacts of unaliased versions beyond the newest ``keep_versions`` per
        model (of any kind; see :meth:`collect_artifacts` for what else is kept), all but
        the newest checkpoints (rows and bytes), and handled ids and sent events past
        their TTL; then compact a SQLite file.

        ``dry_run``: count what would go (the same statements, rolled back) and delete
        nothing.
        """
        now = utcnow()
        removed = self.collect_artifacts(keep_versions=keep_versions, dry_run=dry_run)
        with self._tx_or_preview(dry_run) as session:
            checkpoints, pruned = repo.prune_checkpoints(session, keep=keep_checkpoints)
            orphans = set(pruned) - repo.referenced_sha256(session, shas=pruned)
            handled = repo.prune_handled(session, before=now - handled_ttl)
            outbox = repo.prune_outbox(session, before=now - outbox_ttl)
        if not dry_run:
            self._delete_bytes(orphans)
            self.compact()
        return GcReport(
            artifacts=removed, checkpoints=checkpoints, handled_events=handled, outbox=outbox
        )


def _stored(row: Any) -> StoredCheckpoint:
    return StoredCheckpoint(
        id=row.id,
        owner=row.owner,
        key=row.key,
        sha256=row.sha256,
        signature=row.signature,
        key_id=row.key_id,
        offsets=row.offsets,
        meta=row.meta,
        created_at=repo.aware(row.created_at),
    )
