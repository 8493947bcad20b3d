"""Handled event ids (idempotent consumers) and the outbox (events that must reach Kafka,
written in the transaction that made them and relayed after commit)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from schemas import Event, utcnow
from services.common.codec import encode, event_key
from services.registry.repository.dialects import insert_ignore
from services.registry.tables import HandledEventRow, OutboxRow


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


def mark_handled(session: Session, *, consumer: str, event_id: str) -> bool:
    """Record that ``consumer`` handled ``event_id``; False if it already had."""
    if session.get(HandledEventRow, (consumer, event_id)) is not None:
        return False
    insert_ignore(
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
