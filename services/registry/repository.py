"""Data access: keyword-only functions on a Session, returning domain models.

Rows never leave this module; callers (the client) own the transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from schemas import (
    AliasMoved,
    AliasReason,
    ArtifactRef,
    Event,
    Lineage,
    ModelVersionPublished,
    StreamConfig,
    utcnow,
)
from services.common.codec import encode, event_key
from services.registry.backend import describe_expect, expect_text
from services.registry.domain import (
    AliasMove,
    Candidate,
    ModelInfo,
    ModelVersion,
    SpecVersion,
    TrainingRun,
    VersionDraft,
)
from services.registry.errors import AliasConflict, FrozenModel, NotFound, SpecConflict
from services.registry.tables import (
    AliasMoveRow,
    AliasRow,
    CandidateRow,
    CheckpointRow,
    HandledEventRow,
    ModelRow,
    ModelVersionRow,
    OutboxRow,
    SpecVersionRow,
    StreamRow,
    TrainingRunRow,
)


def aware(value: datetime) -> datetime:
    """SQLite returns naive datetimes: they are UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _insert_ignore(session: Session, table: Any, values: dict[str, Any]) -> bool:
    """INSERT ... ON CONFLICT DO NOTHING; True when the row was inserted."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    result = session.execute(insert(table).values(**values).on_conflict_do_nothing())
    return bool(result.rowcount)  # type: ignore[attr-defined]


def add_outbox(session: Session, *, topic: str, event: Event) -> None:
    """Queue ``event`` for ``topic`` (a catalogue suffix) in the caller's transaction."""
    key = event_key(event)
    session.add(
        OutboxRow(
            topic=topic,
            key=key.decode() if key else "",
            event_id=str(event.event_id),
            payload=encode(event),
        )
    )


# -- streams and specs ---------------------------------------------------------------


def record_spec(session: Session, *, config: StreamConfig) -> SpecVersion:
    """Record a published stream config version (idempotent for identical content)."""
    if config.version is None:
        raise SpecConflict(f"stream {config.stream!r}: only published configs have a version")
    _insert_ignore(session, StreamRow, {"name": config.stream, "created_at": utcnow()})
    existing = session.get(SpecVersionRow, (config.stream, config.version))
    sha = config.config_sha256()
    if existing is not None:
        if existing.sha256 != sha:
            raise SpecConflict(
                f"{config.stream} v{config.version} is already recorded with sha256 "
                f"{existing.sha256[:12]}, not {sha[:12]}"
            )
        return _spec(existing)
    row = SpecVersionRow(
        stream=config.stream,
        version=config.version,
        sha256=sha,
        spec_sha256=config.spec_sha256(),
        config=config.model_dump(
            mode="json", include={"stream", "version", "spec", "model", "policy"}
        ),
        recorded_at=utcnow(),
    )
    session.add(row)
    session.flush()
    return _spec(row)


def get_spec(session: Session, *, stream: str, version: int | None = None) -> SpecVersion | None:
    """A stream's config version (the latest when ``version`` is None)."""
    query = select(SpecVersionRow).where(SpecVersionRow.stream == stream)
    if version is not None:
        query = query.where(SpecVersionRow.version == version)
    row = session.scalars(query.order_by(SpecVersionRow.version.desc()).limit(1)).first()
    return _spec(row) if row else None


def spec_by_sha256(session: Session, *, spec_sha256: str) -> SpecVersion | None:
    """The newest config version whose spec has this sha256."""
    row = session.scalars(
        select(SpecVersionRow)
        .where(SpecVersionRow.spec_sha256 == spec_sha256)
        .order_by(SpecVersionRow.recorded_at.desc())
        .limit(1)
    ).first()
    return _spec(row) if row else None


def _spec(row: SpecVersionRow) -> SpecVersion:
    return SpecVersion(
        stream=row.stream,
        version=row.version,
        sha256=row.sha256,
        spec_sha256=row.spec_sha256,
        config=row.config,
        recorded_at=aware(row.recorded_at),
    )


# -- models and versions -------------------------------------------------------------


def ensure_model(session: Session, *, name: str) -> None:
    """Create the model row if missing (race-safe)."""
    _insert_ignore(
        session,
        ModelRow,
        {"name": name, "latest_version": 0, "frozen": False, "created_at": utcnow()},
    )


def next_version(session: Session, *, model: str) -> int:
    """Reserve the model's next version number (atomic, monotonic)."""
    ensure_model(session, name=model)
    number = session.execute(
        update(ModelRow)
        .where(ModelRow.name == model)
        .values(latest_version=ModelRow.latest_version + 1)
        .returning(ModelRow.latest_version)
    ).scalar_one()
    return int(number)


def insert_version(
    session: Session,
    *,
    model: str,
    version: int,
    draft: VersionDraft,
    artifact: ArtifactRef,
    http_url: str | None = None,
) -> ModelVersion:
    """Insert a version row (``draft`` numbered ``version``, its bytes stored as
    ``artifact``) and queue its ModelVersionPublished event."""
    row = ModelVersionRow(
        model=model,
        version=version,
        kind=draft.kind,
        flavor=draft.flavor,
        algorithm=draft.algorithm,
        params=draft.params,
        metrics=draft.metrics,
        evaluation=draft.evaluation,
        spec_sha256=draft.spec_sha256,
        sha256=artifact.sha256,
        signature=artifact.signature,
        key_id=artifact.key_id,
        artifact_uri=artifact.uri,
        size=artifact.size,
        lineage=draft.lineage.model_dump(mode="json"),
        parent_version=draft.parent_version,
        run_id=draft.run_id,
        idempotency_key=draft.idempotency_key,
        training_duration_s=draft.training_duration_s,
        status="registered",
        created_at=utcnow(),
    )
    session.add(row)
    session.flush()
    domain = _version(row)
    add_outbox(session, topic="models", event=version_event(domain, http_url=http_url))
    return domain


def version_event(v: ModelVersion, *, http_url: str | None = None) -> ModelVersionPublished:
    """The models-topic event announcing a version (id derived from model and version);
    with the registry's ``http_url``, its artifact's ``url`` on the registry's HTTP API."""
    artifact = v.artifact
    if http_url:
        url = f"{http_url.rstrip('/')}/artifacts/{artifact.sha256}"
        artifact = artifact.model_copy(update={"url": url})
    return ModelVersionPublished(
        event_id=uuid.uuid5(uuid.NAMESPACE_URL, f"driftline:model:{v.model}:v{v.version}"),
        model=v.model,
        version=v.version,
        kind=v.kind,
        flavor=v.flavor,
        algorithm=v.algorithm,
        params=v.params,
        metrics=v.metrics,
        artifact=artifact,
        spec_sha256=v.spec_sha256,
        lineage=v.lineage,
        parent_version=v.parent_version,
        status="archived" if v.status == "archived" else "registered",
    )


def version_by_key(session: Session, *, idempotency_key: str) -> ModelVersion | None:
    """The version registered under an idempotency key, if any."""
    row = session.scalars(
        select(ModelVersionRow).where(ModelVersionRow.idempotency_key == idempotency_key)
    ).first()
    return _version(row) if row else None


def get_version(session: Session, *, model: str, version: int) -> ModelVersion | None:
    """One version, or None."""
    row = session.get(ModelVersionRow, (model, version))
    return _version(row) if row else None


def list_versions(session: Session, *, model: str, limit: int = 100) -> list[ModelVersion]:
    """A model's versions, newest first."""
    rows = session.scalars(
        select(ModelVersionRow)
        .where(ModelVersionRow.model == model)
        .order_by(ModelVersionRow.version.desc())
        .limit(limit)
    )
    return [_version(r) for r in rows]


def versions_by_sha256(session: Session, *, sha256: str) -> list[ModelVersion]:
    """Versions whose artifact has this sha256."""
    rows = session.scalars(select(ModelVersionRow).where(ModelVersionRow.sha256 == sha256))
    return [_version(r) for r in rows]


def get_model(session: Session, *, name: str) -> ModelInfo | None:
    """A model with its aliases, or None."""
    row = session.get(ModelRow, name)
    if row is None:
        return None
    return ModelInfo(
        name=row.name,
        latest_version=row.latest_version,
        frozen=row.frozen,
        frozen_reason=row.frozen_reason,
        aliases=aliases(session, model=name),
    )


def list_models(session: Session) -> list[ModelInfo]:
    """Every model, by name."""
    names = session.scalars(select(ModelRow.name).order_by(ModelRow.name)).all()
    return [m for n in names if (m := get_model(session, name=n)) is not None]


def _version(row: ModelVersionRow) -> ModelVersion:
    return ModelVersion(
        model=row.model,
        version=row.version,
        kind=row.kind,
        flavor=row.flavor,
        algorithm=row.algorithm,
        params=row.params,
        metrics=row.metrics,
        evaluation=row.evaluation,
        spec_sha256=row.spec_sha256,
        artifact=ArtifactRef(
            uri=row.artifact_uri,
            sha256=row.sha256,
            signature=row.signature,
            key_id=row.key_id,
            size=row.size,
        ),
        lineage=Lineage.model_validate(row.lineage),
        parent_version=row.parent_version,
        run_id=row.run_id,
        training_duration_s=row.training_duration_s,
        status=row.status,
        created_at=aware(row.created_at),
    )


def set_frozen(session: Session, *, model: str, frozen: bool, reason: str | None) -> ModelInfo:
    """Freeze or unfreeze a model."""
    if session.get(ModelRow, model) is None:
        raise NotFound(f"no model {model!r}")
    session.execute(
        update(ModelRow).where(ModelRow.name == model).values(frozen=frozen, frozen_reason=reason)
    )
    info = get_model(session, name=model)
    assert info is not None  # noqa: S101 - checked above, same transaction
    return info


# -- aliases -------------------------------------------------------------------------


def aliases(session: Session, *, model: str) -> dict[str, int | None]:
    """Where each alias of ``model`` points."""
    rows = session.scalars(select(AliasRow).where(AliasRow.model == model).order_by(AliasRow.alias))
    return {r.alias: r.version for r in rows}


def get_alias(session: Session, *, model: str, alias: str) -> int | None:
    """The version an alias points at (None: unset)."""
    row = session.get(AliasRow, (model, alias))
    return row.version if row else None


def move_alias(
    session: Session,
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
    """Compare-and-set an alias and queue its AliasMoved event.

    ``expect`` is the version the caller saw (None: unset), a collection of acceptable
    versions, or :data:`~services.registry.backend.ANY`. ``move_id`` (a UUID) becomes the
    event id; a move already recorded under it is returned as it was, so a retried
    request moves nothing twice.
    """
    if move_id is not None:
        recorded = move_by_event_id(session, event_id=move_id)
        if recorded is not None:
            return recorded
    info = session.get(ModelRow, model)
    if info is None:
        raise NotFound(f"no model {model!r}")
    if info.frozen and reason != AliasReason.MANUAL:
        raise FrozenModel(f"{model} is frozen: no automatic alias moves ({info.frozen_reason})")
    if to_version is not None and session.get(ModelVersionRow, (model, to_version)) is None:
        raise NotFound(f"no version {model} v{to_version}")
    row = session.get(AliasRow, (model, alias), with_for_update=True)
    current = row.version if row else None
    accepted = _accepted(expect)
    if accepted is not None and current not in accepted:
        raise AliasConflict(model, alias, expect_text(expect), current)
    now = utcnow()
    if row is None:
        session.add(AliasRow(model=model, alias=alias, version=to_version, updated_at=now))
        session.flush()  # a racing insert fails here on the primary key
    else:
        done = session.execute(
            update(AliasRow)
            .where(AliasRow.model == model, AliasRow.alias == alias)
            .where(AliasRow.version.is_(None) if current is None else AliasRow.version == current)
            .values(version=to_version, updated_at=now)
        )
        if done.rowcount != 1:  # type: ignore[attr-defined]
            raise AliasConflict(
                model, alias, expect_text(expect), get_alias(session, model=model, alias=alias)
            )
    event = AliasMoved(
        model=model,
        alias=alias,
        from_version=current,
        to_version=to_version,
        reason=reason,
        actor=actor,
        evidence=evidence,
        occurred_at=now,
        **({"event_id": uuid.UUID(move_id)} if move_id is not None else {}),
    )
    move = AliasMoveRow(
        model=model,
        alias=alias,
        from_version=current,
        to_version=to_version,
        reason=reason.value,
        actor=actor,
        evidence=evidence,
        event_id=str(event.event_id),
        moved_at=now,
    )
    session.add(move)
    add_outbox(session, topic="models", event=event)
    session.flush()
    return _move(move)


def move_by_event_id(session: Session, *, event_id: str) -> AliasMove | None:
    """The alias move recorded with this event id, if any."""
    row = session.scalars(select(AliasMoveRow).where(AliasMoveRow.event_id == event_id)).first()
    return _move(row) if row else None


def _accepted(expect: Any) -> set[int | None] | None:
    accepted = describe_expect(expect)
    return None if accepted is None else set(accepted)


def alias_history(
    session: Session, *, model: str, alias: str | None = None, limit: int = 100
) -> list[AliasMove]:
    """Alias moves of a model, newest first."""
    query = select(AliasMoveRow).where(AliasMoveRow.model == model)
    if alias is not None:
        query = query.where(AliasMoveRow.alias == alias)
    rows = session.scalars(query.order_by(AliasMoveRow.id.desc()).limit(limit))
    return [_move(r) for r in rows]


def _move(row: AliasMoveRow) -> AliasMove:
    return AliasMove(
        model=row.model,
        alias=row.alias,
        from_version=row.from_version,
        to_version=row.to_version,
        reason=row.reason,
        actor=row.actor,
        evidence=row.evidence,
        event_id=row.event_id,
        moved_at=aware(row.moved_at),
    )


# -- checkpoints ---------------------------------------------------------------------


def insert_checkpoint(session: Session, **values: Any) -> CheckpointRow:
    """Insert a checkpoint row (signed blob + offsets) in the caller's transaction."""
    row = CheckpointRow(created_at=utcnow(), **values)
    session.add(row)
    session.flush()
    return row


def checkpoints_newest_first(
    session: Session, *, owner: str, key: str, limit: int = 10
) -> Sequence[CheckpointRow]:
    """The newest checkpoints of ``owner``/``key``, newest first (the client verifies them)."""
    return session.scalars(
        select(CheckpointRow)
        .where(CheckpointRow.owner == owner, CheckpointRow.key == key)
        .order_by(CheckpointRow.id.desc())
        .limit(limit)
    ).all()


def latest_checkpoints_under(
    session: Session, *, owner: str, prefix: str
) -> Sequence[CheckpointRow]:
    """The newest checkpoint of every key of ``owner`` that starts with ``prefix`` (taken
    literally: ``%`` and ``_`` are not wildcards), by key."""
    newest = (
        select(func.max(CheckpointRow.id))
        .where(CheckpointRow.owner == owner, CheckpointRow.key.startswith(prefix, autoescape=True))
        .group_by(CheckpointRow.key)
    )
    return session.scalars(
        select(CheckpointRow).where(CheckpointRow.id.in_(newest)).order_by(CheckpointRow.key)
    ).all()


def checkpoint_by_id(session: Session, *, owner: str, checkpoint_id: int) -> CheckpointRow | None:
    """One checkpoint row of ``owner``."""
    row = session.get(CheckpointRow, checkpoint_id)
    return row if row is not None and row.owner == owner else None


def latest_checkpoint(session: Session, *, owner: str, key: str) -> CheckpointRow | None:
    """The newest checkpoint of ``owner``/``key`` (the client verifies it)."""
    rows = checkpoints_newest_first(session, owner=owner, key=key, limit=1)
    return rows[0] if rows else None


def prune_checkpoints(
    session: Session, *, keep: int, owner: str | None = None, key: str | None = None
) -> tuple[int, list[str]]:
    """Delete all but the newest ``keep`` checkpoints of every owner/key (or of the one
    given); returns how many rows went and the sha256 of those whose bytes are in the
    artifact store.

    The bytes are not touched here: the caller deletes, after commit, those that
    :func:`referenced_sha256` says nothing else needs.
    """
    if owner is not None and key is not None:
        pairs: Sequence[Any] = [(owner, key)]
    else:
        pairs = session.execute(select(CheckpointRow.owner, CheckpointRow.key).distinct()).all()
    count, removed = 0, list[str]()
    for o, k in pairs:
        rows = session.execute(
            select(CheckpointRow.id, CheckpointRow.sha256, CheckpointRow.blob.is_(None))
            .where(CheckpointRow.owner == o, CheckpointRow.key == k)
            .order_by(CheckpointRow.id.desc())
            .offset(keep)
        ).all()
        if rows:
            session.execute(delete(CheckpointRow).where(CheckpointRow.id.in_([r[0] for r in rows])))
            removed.extend(sha for _, sha, in_store in rows if in_store)
            count += len(rows)
    return count, removed


# -- training runs -------------------------------------------------------------------


def start_run(
    session: Session,
    *,
    model: str,
    trigger_event_id: str,
    trigger: dict[str, Any],
    window: dict[str, Any],
) -> tuple[TrainingRun, bool]:
    """The run for a trigger event, created if new; the bool says whether it was created."""
    existing = session.scalars(
        select(TrainingRunRow).where(TrainingRunRow.trigger_event_id == trigger_event_id)
    ).first()
    if existing is not None:
        return _run(session, existing), False
    run_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"driftline:run:{trigger_event_id}"))
    created = _insert_ignore(
        session,
        TrainingRunRow,
        {
            "id": run_id,
            "model": model,
            "trigger_event_id": trigger_event_id,
            "trigger": trigger,
            "status": "running",
            "window": window,
            "champion": {},
            "started_at": utcnow(),
        },
    )
    row = session.get(TrainingRunRow, run_id)
    assert row is not None  # noqa: S101 - inserted or already there
    return _run(session, row), created


def add_candidate(session: Session, *, run_id: str, **values: Any) -> None:
    """Record one candidate of a run."""
    if session.get(TrainingRunRow, run_id) is None:
        raise NotFound(f"no training run {run_id}")
    same = select(CandidateRow.id).where(
        CandidateRow.run_id == run_id,
        CandidateRow.name == values.get("name"),
        CandidateRow.version.is_(None)
        if values.get("version") is None
        else CandidateRow.version == values["version"],
    )
    if session.scalars(same).first() is not None:
        return  # a retried request: recorded already
    session.add(CandidateRow(run_id=run_id, **values))
    session.flush()


def finish_run(session: Session, *, run_id: str, **values: Any) -> TrainingRun:
    """Set a run's outcome fields."""
    row = session.get(TrainingRunRow, run_id)
    if row is None:
        raise NotFound(f"no training run {run_id}")
    for name, value in values.items():
        setattr(row, name, value)
    session.flush()
    return _run(session, row)


def get_run(session: Session, *, run_id: str) -> TrainingRun | None:
    """A run with its candidates."""
    row = session.get(TrainingRunRow, run_id)
    return _run(session, row) if row else None


def list_runs(session: Session, *, model: str | None = None, limit: int = 50) -> list[TrainingRun]:
    """Runs, newest first."""
    query = select(TrainingRunRow)
    if model is not None:
        query = query.where(TrainingRunRow.model == model)
    rows = session.scalars(query.order_by(TrainingRunRow.started_at.desc()).limit(limit))
    return [_run(session, r) for r in rows]


def _run(session: Session, row: TrainingRunRow) -> TrainingRun:
    cands = session.scalars(
        select(CandidateRow).where(CandidateRow.run_id == row.id).order_by(CandidateRow.id)
    )
    return TrainingRun(
        id=row.id,
        model=row.model,
        trigger_event_id=row.trigger_event_id,
        trigger=row.trigger,
        status=row.status,
        window=row.window,
        champion=row.champion,
        decision=row.decision,
        winner_version=row.winner_version,
        started_at=aware(row.started_at),
        finished_at=aware(row.finished_at) if row.finished_at else None,
        candidates=tuple(
            Candidate(
                name=c.name,
                params=c.params,
                metrics=c.metrics,
                fit_s=c.fit_s,
                version=c.version,
                note=c.note,
            )
            for c in cands
        ),
    )


# -- handled events and the outbox --------------------------------------------------


def mark_handled(session: Session, *, consumer: str, event_id: str) -> bool:
    """Record that ``consumer`` handled ``event_id``; False if it already had."""
    if session.get(HandledEventRow, (consumer, event_id)) is not None:
        return False
    _insert_ignore(
        session,
        HandledEventRow,
        {"consumer": consumer, "event_id": event_id, "handled_at": utcnow()},
    )
    return True


def was_handled(session: Session, *, consumer: str, event_id: str) -> bool:
    """Whether ``consumer`` already handled ``event_id``."""
    return session.get(HandledEventRow, (consumer, event_id)) is not None


def prune_handled(session: Session, *, before: datetime) -> int:
    """Forget handled ids older than ``before``."""
    result = session.execute(delete(HandledEventRow).where(HandledEventRow.handled_at < before))
    return int(result.rowcount)  # type: ignore[attr-defined]


def pending_outbox(session: Session, *, limit: int = 500) -> Sequence[OutboxRow]:
    """Unpublished outbox rows, oldest first, locked against other relays (PostgreSQL)."""
    query = (
        select(OutboxRow)
        .where(OutboxRow.published_at.is_(None))
        .order_by(OutboxRow.id)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return session.scalars(query).all()


def mark_published(session: Session, *, ids: Sequence[int]) -> None:
    """Mark outbox rows as published."""
    session.execute(
        update(OutboxRow).where(OutboxRow.id.in_(list(ids))).values(published_at=utcnow())
    )


def prune_outbox(session: Session, *, before: datetime) -> int:
    """Delete published outbox rows older than ``before``."""
    result = session.execute(
        delete(OutboxRow).where(
            OutboxRow.published_at.is_not(None), OutboxRow.published_at < before
        )
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def outbox_backlog(session: Session) -> int:
    """How many outbox rows wait to be published."""
    return int(session.scalar(select(func.count()).where(OutboxRow.published_at.is_(None))) or 0)


# -- artifact retention (``driftline gc`` and the automatic path share this) ----------

RECENT_MOVES = 3  # per alias, the versions of its last moves stay restorable (rollback)


def referenced_sha256(session: Session, *, shas: Collection[str]) -> set[str]:
    """Which of ``shas`` a live version or a stored checkpoint still points at.

    The store is content-addressed, so two rows may share bytes: bytes go only when no
    row needs them any more.
    """
    wanted = list(set(shas))
    if not wanted:
        return set()
    versions = session.scalars(
        select(ModelVersionRow.sha256).where(
            ModelVersionRow.sha256.in_(wanted), ModelVersionRow.status != "archived"
        )
    ).all()
    checkpoints = session.scalars(
        select(CheckpointRow.sha256).where(
            CheckpointRow.sha256.in_(wanted), CheckpointRow.blob.is_(None)
        )
    ).all()
    return set(versions) | set(checkpoints)


def collect_versions(
    session: Session,
    *,
    keep_newest: int,
    kind: str | None = None,
    model: str | None = None,
    recent_moves: int = RECENT_MOVES,
) -> list[tuple[str, int, str]]:
    """Mark archived every live version (of ``kind``, of ``model``) whose artifact
    nothing needs; returns ``(model, version, sha256)`` of each. Rows are never deleted.

    Kept, per model: the newest ``keep_newest`` live versions (of ``kind``); every
    version an alias points at; the versions of each alias's last ``recent_moves`` moves
    (what a rollback or the evaluator's predecessor needs); and for every training run
    still running, the champion it started with and the newest ``keep_newest`` online
    versions up to it (the trainer scores an online champion from such a snapshot).
    Versions of another kind are not touched.
    """
    query = select(
        ModelVersionRow.model, ModelVersionRow.version, ModelVersionRow.kind, ModelVersionRow.sha256
    ).where(ModelVersionRow.status != "archived")
    if model is not None:
        query = query.where(ModelVersionRow.model == model)
    live: dict[str, list[tuple[int, str, str]]] = {}
    for name, number, k, sha in session.execute(query):
        live.setdefault(name, []).append((int(number), k, sha))
    doomed: list[tuple[str, int, str]] = []
    for name, rows in live.items():
        mine = sorted(v for v, k, _ in rows if kind is None or k == kind)
        keep = set(mine[-keep_newest:]) if keep_newest > 0 else set()
        keep |= _needed(session, model=name, recent_moves=recent_moves)
        online = sorted(v for v, k, _ in rows if k == "online")
        for start in _running_champions(session, model=name):
            keep.add(start)
            up_to = [v for v in online if v <= start]
            keep |= set(up_to[-max(keep_newest, 1) :])
        doomed += [
            (name, v, sha) for v, k, sha in rows if (kind is None or k == kind) and v not in keep
        ]
    for name, version, _ in doomed:
        mark_archived(session, model=name, version=version)
    return doomed


def _needed(session: Session, *, model: str, recent_moves: int) -> set[int]:
    """Versions ``model``'s aliases point at, or pointed at in their last moves."""
    needed: set[int] = set()
    for row in session.scalars(select(AliasRow).where(AliasRow.model == model)):
        if row.version is not None:
            needed.add(row.version)
        moves = session.execute(
            select(AliasMoveRow.from_version, AliasMoveRow.to_version)
            .where(AliasMoveRow.model == model, AliasMoveRow.alias == row.alias)
            .order_by(AliasMoveRow.id.desc())
            .limit(recent_moves)
        )
        needed |= {v for pair in moves for v in pair if v is not None}
    return needed


def _running_champions(session: Session, *, model: str) -> set[int]:
    """The champion each still-running training run of ``model`` started with."""
    windows = session.scalars(
        select(TrainingRunRow.window).where(
            TrainingRunRow.model == model, TrainingRunRow.status == "running"
        )
    )
    starts: set[int] = set()
    for window in windows:
        value = (window or {}).get("champion_at_start")
        if isinstance(value, int) and not isinstance(value, bool):
            starts.add(value)
    return starts


def mark_archived(session: Session, *, model: str, version: int) -> None:
    """A version whose artifact was collected."""
    session.execute(
        update(ModelVersionRow)
        .where(ModelVersionRow.model == model, ModelVersionRow.version == version)
        .values(status="archived")
    )
