"""Models and their numbered versions (each queues its ModelVersionPublished event)."""

from __future__ import annotations

import uuid

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from schemas import ArtifactRef, Lineage, ModelVersionPublished, utcnow
from services.registry.domain import ModelInfo, ModelVersion, VersionDraft
from services.registry.errors import NotFound
from services.registry.repository.alias_moves import aliases
from services.registry.repository.dialects import aware, insert_ignore
from services.registry.repository.outbox import add_outbox
from services.registry.tables import ModelRow, ModelVersionRow


def ensure_model(session: Session, *, name: str) -> None:
    """Create the model row if missing (race-safe)."""
    insert_ignore(
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
