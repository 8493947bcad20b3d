"""Checkpoint rows (the learner's signed state): insert, find, prune."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from schemas import utcnow
from services.registry.tables import CheckpointRow


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
