"""Training runs and their candidates."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from schemas import utcnow
from services.registry.domain import Candidate, TrainingRun
from services.registry.errors import NotFound
from services.registry.repository.dialects import aware, insert_ignore
from services.registry.tables import CandidateRow, TrainingRunRow


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
    created = insert_ignore(
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
