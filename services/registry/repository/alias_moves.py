"""Aliases: where each points, the compare-and-set move (queuing its AliasMoved event) and
the history of moves."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from schemas import AliasMoved, AliasReason, utcnow
from services.registry.backend import describe_expect, expect_text
from services.registry.domain import AliasMove
from services.registry.errors import AliasConflict, FrozenModel, NotFound
from services.registry.repository.dialects import aware
from services.registry.repository.outbox import add_outbox
from services.registry.tables import AliasMoveRow, AliasRow, ModelRow, ModelVersionRow


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
    if row is None and not _inserted(
        session, AliasRow(model=model, alias=alias, version=to_version, updated_at=now)
    ):
        # Another writer created the alias since it was read (on PostgreSQL the row lock
        # above cannot cover a row that did not exist yet): compare with what it wrote.
        current = get_alias(session, model=model, alias=alias)
        if accepted is not None and current not in accepted:
            raise AliasConflict(model, alias, expect_text(expect), current)
        row = session.get(AliasRow, (model, alias))
    if row is not None:
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


def _inserted(session: Session, row: AliasRow) -> bool:
    """Insert a new alias row; False when a racing writer inserted it first (the primary
    key refuses the second row; only this insert is rolled back, in its savepoint)."""
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        return False
    return True


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
