"""Artifact retention: which versions' artifacts nothing needs any more (``driftline gc``
and the automatic path share this), and which stored bytes a row still points at."""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from services.registry.tables import (
    AliasMoveRow,
    AliasRow,
    CheckpointRow,
    ModelVersionRow,
    TrainingRunRow,
)

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
