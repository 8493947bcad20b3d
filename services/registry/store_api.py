"""The registry's write API for services: what :class:`~services.registry.rest_store.RestStore`
speaks, so that only the registry service opens the database.

==============================================  ==========================================
``PUT /uploads/{sha256}``                       upload bytes (streamed, size-limited)
``GET /blobs/{sha256}``                         stored bytes, unverified
``POST /models/{name}/register``                register uploaded bytes as a version
``GET /versions/by-key?key=``                   the version of an idempotency key
``GET /versions/by-sha256/{sha256}``            versions with this artifact
``POST /models/{name}/aliases/{alias}/moves``   compare-and-set an alias (``move_id``)
``POST /specs``, ``GET /specs/{stream}``        record and read stream config versions
``GET /specs/by-spec-sha256/{sha256}``          the config version of a spec
``POST /checkpoints/{owner}/save``              record uploaded checkpoints
``GET /checkpoints/{owner}``                    a key's checkpoints, newest first
``GET /checkpoints/{owner}/latest``             the newest of every key under a prefix
``GET /checkpoints/{owner}/{id}/blob``          a checkpoint's bytes
``POST /training-runs``, ``.../candidates``     start a training run, record a candidate
``POST /runs/{id}/finish``                      a run's outcome
``GET /handled/{consumer}/{event_id}[/mark]``   idempotent consumers (POST .../mark)
``POST /gc``                                    ``driftline gc``
==============================================  ==========================================

Every route needs ``Authorization: Bearer <DRIFTLINE_SERVICE_TOKEN>`` (the admin token
is for people, on the admin routes of :mod:`services.registry.api`). Every write is safe to retry: a
version under its idempotency key, a move under its ``move_id``, a checkpoint identical
to its key's newest and a candidate already recorded happen once. Errors carry an
``X-Driftline-Error`` header (``not_found``, ``alias_conflict``, ``frozen``,
``spec_conflict``, ``unavailable``, ...), so clients need not parse the body.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import tempfile
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    ValidationError,
)

from schemas import AliasReason, StreamConfig
from services.registry.backend import CheckpointBlob, expect_from
from services.registry.client import Registry
from services.registry.domain import (
    AliasMove,
    GcReport,
    ModelVersion,
    SpecVersion,
    StoredCheckpoint,
    TrainingRun,
    VersionDraft,
)
from services.registry.errors import NotFound, SpecConflict
from services.registry.sql_store import SqlStore

SHA256 = r"^[0-9a-f]{64}$"
_SHA = re.compile(SHA256)
_INT = 2**31 - 1
_CHUNK = 1 << 20
_bearer = HTTPBearer(
    auto_error=False,
    description="DRIFTLINE_SERVICE_TOKEN (services) or DRIFTLINE_ADMIN_TOKEN (people)",
)


class _Body(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Problem(BaseModel):
    """An error: what went wrong, in words."""

    detail: str


class Uploaded(_Body):
    """Bytes the registry holds now."""

    sha256: str
    size: int


class RegisterRequest(VersionDraft):
    """A version to register over bytes uploaded with ``PUT /uploads/{sha256}``."""

    sha256: str = Field(pattern=SHA256, description="the uploaded artifact")


class MoveRequest(_Body):
    """A compare-and-set alias move."""

    to_version: int | None = Field(ge=1, le=_INT, description="null: unset the alias")
    expect: list[int | None] | None = Field(
        max_length=1000,
        description="versions the alias may point at now ([null]: unset); null: any",
    )
    reason: AliasReason
    actor: str = Field(min_length=1, max_length=200)
    evidence: dict[str, Any] = Field(default_factory=dict)
    move_id: uuid.UUID = Field(description="the move's event id: a retry returns the first move")


class SpecsRequest(_Body):
    """Published stream config versions to record, all or none."""

    configs: list[dict[str, Any]] = Field(
        min_length=1, max_length=1000, description="published stream configs (StreamConfig)"
    )


class CheckpointUpload(_Body):
    """One checkpoint over bytes uploaded with ``PUT /uploads/{sha256}``."""

    key: str = Field(min_length=1, max_length=300)
    sha256: str = Field(pattern=SHA256)
    offsets: dict[str, Any]
    meta: dict[str, Any] = Field(default_factory=dict)


class CheckpointsRequest(_Body):
    """Checkpoints recorded in one transaction."""

    items: list[CheckpointUpload] = Field(min_length=1, max_length=1000)


class StartRunRequest(_Body):
    """The training run of a trigger event."""

    model: str = Field(min_length=1, max_length=200)
    trigger_event_id: str = Field(min_length=1, max_length=36)
    trigger: dict[str, Any] = Field(default_factory=dict)
    window: dict[str, Any] = Field(default_factory=dict)


class StartedRun(_Body):
    """The run, and whether this request created it."""

    run: TrainingRun
    created: bool


class CandidateRequest(_Body):
    """A candidate a run tried."""

    name: str = Field(min_length=1, max_length=200)
    params: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, Any] = Field(default_factory=dict)
    fit_s: float = Field(ge=0)
    version: int | None = Field(default=None, ge=1, le=_INT)
    note: str | None = Field(default=None, max_length=4000)


class FinishRequest(_Body):
    """A run's outcome."""

    status: Literal["running", "succeeded", "failed", "rejected"]
    decision: str = Field(max_length=8000)
    winner_version: int | None = Field(default=None, ge=1, le=_INT)
    finished_at: AwareDatetime
    champion: dict[str, Any] | None = None
    window: dict[str, Any] | None = None


class Handled(_Body):
    """Whether an event was handled (``created``: by this request)."""

    handled: bool
    created: bool = False


class GcRequest(_Body):
    """``driftline gc``'s limits."""

    keep_versions: StrictInt = Field(default=10, ge=0, le=1_000_000)
    keep_checkpoints: StrictInt = Field(default=3, ge=0, le=1_000_000)
    handled_ttl_s: StrictInt = Field(default=30 * 86400, ge=0, le=10 * 365 * 86400)
    outbox_ttl_s: StrictInt = Field(default=7 * 86400, ge=0, le=10 * 365 * 86400)
    dry_run: StrictBool = False


_AUTH: dict[int | str, dict[str, Any]] = {
    400: {"model": Problem, "description": "a body that does not parse, or a refused value"},
    401: {"model": Problem, "description": "missing or wrong bearer token"},
    403: {"model": Problem, "description": "no token configured on the server"},
    503: {"model": Problem, "description": "the registry's database did not answer"},
}
_NF: dict[int | str, dict[str, Any]] = {**_AUTH, 404: {"model": Problem}}
_BYTES: dict[int | str, dict[str, Any]] = {
    **_NF,
    200: {"content": {"application/octet-stream": {}}, "description": "the stored bytes"},
}


def _digest(token: bytes) -> bytes:
    return hashlib.sha256(token).digest()


def store_router(
    registry: Registry,
    *,
    service_token: str | None,
    admin_token: str | None,
    max_blob_bytes: int,
    refuse: Callable[[Request, str], None],
    on_change: Callable[[], None],
) -> APIRouter:
    """The routes of the module docstring over ``registry`` (an in-process store).

    ``refuse`` counts a refused request; ``on_change`` is called after every write that
    queued an event (the server wakes its outbox relay with it).
    """
    backend = registry.backend
    if not isinstance(backend, SqlStore):
        raise TypeError("the registry server opens its database in-process (a SqlStore)")
    blobs = backend.store
    service = [_digest(service_token.encode())] if service_token else []

    def check(
        request: Request, given: HTTPAuthorizationCredentials | None, ok: list[bytes]
    ) -> None:
        if given is None:  # 401 first: the caller must authenticate, configured or not
            refuse(request, "unauthorized")
            raise HTTPException(401, "missing bearer token", headers={"WWW-Authenticate": "Bearer"})
        if not ok:
            refuse(request, "no_service_token")
            raise HTTPException(
                403,
                "the write API is disabled: set DRIFTLINE_SERVICE_TOKEN on the registry server "
                "and send it as 'Authorization: Bearer <token>'",
            )
        sent = _digest(given.credentials.encode())
        # compare every accepted digest, so timing says nothing about which one matched
        if not sum(hmac.compare_digest(sent, d) for d in ok):
            refuse(request, "unauthorized")
            raise HTTPException(
                401,
                "wrong bearer token",
                headers={"WWW-Authenticate": "Bearer"},
            )

    def require_service(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> None:
        check(request, credentials, service)

    router = APIRouter(tags=["service"], dependencies=[Depends(require_service)])

    def stored(sha256: str) -> bytes:
        return backend.artifact_bytes(sha256=sha256)

    # -- bytes ------------------------------------------------------------------------

    @router.put(
        "/uploads/{sha256}",
        status_code=201,
        responses={
            **_AUTH,
            409: {"model": Problem, "description": "the bytes' sha256 is not the path's"},
            413: {"model": Problem, "description": "larger than DRIFTLINE_REGISTRY_MAX_BLOB_BYTES"},
        },
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/octet-stream": {"schema": {"type": "string"}}},
            }
        },
    )
    async def put_blob(request: Request, sha256: Annotated[str, Path(pattern=SHA256)]) -> Uploaded:
        """Upload bytes (an artifact or a checkpoint), streamed to disk with a size limit;
        stored under their sha256 (content-addressed: uploading again changes nothing)."""
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > max_blob_bytes:
            refuse(request, "too_large")
            raise HTTPException(413, f"larger than {max_blob_bytes} bytes")
        digest, size = hashlib.sha256(), 0
        with tempfile.SpooledTemporaryFile(max_size=8 * _CHUNK) as spool:
            async for chunk in request.stream():
                size += len(chunk)
                if size > max_blob_bytes:
                    refuse(request, "too_large")
                    raise HTTPException(413, f"larger than {max_blob_bytes} bytes")
                digest.update(chunk)
                spool.write(chunk)
            if digest.hexdigest() != sha256:
                refuse(request, "sha256_mismatch")
                raise HTTPException(409, f"the bytes' sha256 is {digest.hexdigest()}, not {sha256}")
            spool.seek(0)
            data = spool.read()
        blobs.put(data, sha256)
        return Uploaded(sha256=sha256, size=size)

    @router.get("/blobs/{sha256}", response_class=Response, responses=_BYTES)
    def get_blob(sha256: Annotated[str, Path(pattern=SHA256)]) -> Response:
        """Stored bytes, unverified: the reader checks their signature."""
        return Response(stored(sha256), media_type="application/octet-stream")

    # -- versions ---------------------------------------------------------------------

    @router.post("/models/{name}/register", status_code=201, responses=_NF)
    def register(
        name: Annotated[str, Path(min_length=1, max_length=200)], body: RegisterRequest
    ) -> ModelVersion:
        """Sign the uploaded bytes and register them as the model's next version (or
        return the version of the same idempotency key)."""
        draft = VersionDraft.model_validate(body.model_dump(exclude={"sha256"}))
        version = backend.register_version(model=name, draft=draft, data=stored(body.sha256))
        on_change()
        return version

    @router.get("/versions/by-key", responses=_NF)
    def version_by_key(key: Annotated[str, Query(min_length=1, max_length=300)]) -> ModelVersion:
        """The version registered under an idempotency key."""
        found = backend.version_by_key(idempotency_key=key)
        if found is None:
            raise NotFound(f"no version under the idempotency key {key[:80]!r}")
        return found

    @router.get("/versions/by-sha256/{sha256}", responses=_AUTH)
    def versions_by_sha256(sha256: Annotated[str, Path(pattern=SHA256)]) -> list[ModelVersion]:
        """Versions whose artifact has this sha256."""
        return backend.versions_by_sha256(sha256=sha256)

    @router.post(
        "/models/{name}/aliases/{alias}/moves",
        responses={**_NF, 409: {"model": Problem, "description": "alias moved, or frozen"}},
    )
    def move(
        name: Annotated[str, Path(min_length=1, max_length=200)],
        alias: Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]+$", max_length=64)],
        body: MoveRequest,
    ) -> AliasMove:
        """Compare-and-set ``alias``; a ``move_id`` already applied returns that move."""
        moved = backend.move_alias(
            model=name,
            alias=alias,
            to_version=body.to_version,
            expect=expect_from(body.expect),
            reason=body.reason,
            actor=body.actor,
            evidence=body.evidence,
            move_id=str(body.move_id),
        )
        on_change()
        return moved

    # -- specs ------------------------------------------------------------------------

    @router.post("/specs", responses={**_AUTH, 409: {"model": Problem}})
    def record_specs(body: SpecsRequest) -> list[SpecVersion]:
        """Record published stream config versions, all or none (idempotent)."""
        try:
            configs = [StreamConfig.model_validate(c) for c in body.configs]
        except ValidationError as exc:
            raise SpecConflict(f"not a valid stream config: {exc.errors()[0]['msg']}") from None
        return backend.record_specs(configs=configs)

    @router.get("/specs/by-spec-sha256/{sha256}", responses=_NF)
    def spec_by_sha256(sha256: Annotated[str, Path(pattern=SHA256)]) -> SpecVersion:
        """The newest config version whose spec has this sha256."""
        found = backend.spec_by_sha256(spec_sha256=sha256)
        if found is None:
            raise NotFound(f"no spec with sha256 {sha256}")
        return found

    @router.get("/specs/{stream}", responses=_NF)
    def get_spec(
        stream: Annotated[str, Path(min_length=1, max_length=200)],
        version: Annotated[int | None, Query(ge=1, le=_INT)] = None,
    ) -> SpecVersion:
        """A stream's config version (the latest without ``version``)."""
        found = backend.get_spec(stream=stream, version=version)
        if found is None:
            raise NotFound(f"no config of {stream!r}" + (f" v{version}" if version else ""))
        return found

    # -- checkpoints ------------------------------------------------------------------

    @router.post("/checkpoints/{owner}/save", responses=_NF)
    def save_checkpoints(
        owner: Annotated[str, Path(min_length=1, max_length=200)], body: CheckpointsRequest
    ) -> list[str]:
        """Sign and record uploaded checkpoints in one transaction (with retention)."""
        items = [
            CheckpointBlob(key=i.key, blob=stored(i.sha256), offsets=i.offsets, meta=i.meta)
            for i in body.items
        ]
        return backend.save_checkpoints(owner=owner, items=items)

    @router.get("/checkpoints/{owner}", responses=_AUTH)
    def checkpoints(
        owner: Annotated[str, Path(min_length=1, max_length=200)],
        key: Annotated[str, Query(min_length=1, max_length=300)],
        limit: Annotated[int, Query(ge=1, le=1000)] = 10,
    ) -> list[StoredCheckpoint]:
        """A key's newest checkpoints, newest first."""
        return backend.checkpoints(owner=owner, key=key, limit=limit)

    @router.get("/checkpoints/{owner}/latest", responses=_AUTH)
    def latest_checkpoints(
        owner: Annotated[str, Path(min_length=1, max_length=200)],
        prefix: Annotated[str, Query(max_length=300)] = "",
    ) -> list[StoredCheckpoint]:
        """The newest checkpoint of every key starting with ``prefix`` (literally)."""
        return backend.latest_checkpoints(owner=owner, prefix=prefix)

    @router.get(
        "/checkpoints/{owner}/{checkpoint_id}/blob", response_class=Response, responses=_BYTES
    )
    def checkpoint_blob(
        owner: Annotated[str, Path(min_length=1, max_length=200)],
        checkpoint_id: Annotated[int, Path(ge=1, le=2**63 - 1)],
    ) -> Response:
        """A checkpoint's bytes, unverified: the reader checks their signature."""
        data = backend.checkpoint_blob(owner=owner, checkpoint_id=checkpoint_id)
        return Response(data, media_type="application/octet-stream")

    # -- runs and handled events -------------------------------------------------------

    @router.post("/training-runs", responses=_AUTH)
    def start_run(body: StartRunRequest) -> StartedRun:
        """The run of a trigger event, created if new."""
        run, created = backend.start_run(
            model=body.model,
            trigger_event_id=body.trigger_event_id,
            trigger=body.trigger,
            window=body.window,
        )
        return StartedRun(run=run, created=created)

    @router.post("/runs/{run_id}/candidates", status_code=204, responses=_NF)
    def add_candidate(
        run_id: Annotated[str, Path(max_length=36)], body: CandidateRequest
    ) -> Response:
        """Record a candidate (once: the same name and version again is a no-op)."""
        backend.add_candidate(run_id=run_id, **body.model_dump())
        return Response(status_code=204)

    @router.post("/runs/{run_id}/finish", responses=_NF)
    def finish_run(run_id: Annotated[str, Path(max_length=36)], body: FinishRequest) -> TrainingRun:
        """Record a run's outcome."""
        values = body.model_dump(exclude_none=True)
        values["winner_version"] = body.winner_version
        return backend.finish_run(run_id=run_id, values=values)

    @router.post("/handled/{consumer}/{event_id}/mark", responses=_AUTH)
    def mark_handled(
        consumer: Annotated[str, Path(min_length=1, max_length=100)],
        event_id: Annotated[str, Path(min_length=1, max_length=36)],
    ) -> Handled:
        """Record a handled event id (``created``: by this request)."""
        created = backend.mark_handled(consumer=consumer, event_id=event_id)
        return Handled(handled=True, created=created)

    @router.get("/handled/{consumer}/{event_id}", responses=_AUTH)
    def was_handled(
        consumer: Annotated[str, Path(min_length=1, max_length=100)],
        event_id: Annotated[str, Path(min_length=1, max_length=36)],
    ) -> Handled:
        """Whether an event id was handled."""
        return Handled(handled=backend.was_handled(consumer=consumer, event_id=event_id))

    @router.post("/gc", responses=_AUTH)
    def gc(body: GcRequest) -> GcReport:
        """``driftline gc``: artifacts, checkpoints, handled ids and sent events past
        their limits."""
        return backend.gc(
            keep_versions=body.keep_versions,
            keep_checkpoints=body.keep_checkpoints,
            handled_ttl=timedelta(seconds=body.handled_ttl_s),
            outbox_ttl=timedelta(seconds=body.outbox_ttl_s),
            dry_run=body.dry_run,
        )

    return router
