"""Streams and their published config versions."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from schemas import StreamConfig, utcnow
from services.registry.domain import SpecVersion
from services.registry.errors import SpecConflict
from services.registry.repository.dialects import aware, insert_ignore
from services.registry.tables import SpecVersionRow, StreamRow


def record_spec(session: Session, *, config: StreamConfig) -> SpecVersion:
    """Record a published stream config version (idempotent for identical content)."""
    if config.version is None:
        raise SpecConflict(f"stream {config.stream!r}: only published configs have a version")
    insert_ignore(session, StreamRow, {"name": config.stream, "created_at": utcnow()})
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
