"""The registry's HTTP API: reads for anyone who can reach it, alias moves for admins.

==========================================  =============================================
``GET /models``                             every model with its aliases
``GET /models/{name}``                      one model: latest version, frozen, aliases
``GET /models/{name}/versions``             its versions, newest first
``GET /models/{name}/versions/{version}``   one version: metrics, lineage, artifact ref
``GET /models/{name}/aliases/{a}/history``  the moves of one alias, newest first
``GET /runs?model=``                        training runs, newest first
``GET /runs/{id}``                          one run with its candidates
``GET /artifacts/{sha256}``                 the artifact bytes, signature in headers
``GET /healthz``, ``GET /metrics``          liveness (database reachable), Prometheus
``POST /models/{name}/promote``             admin: compare-and-set an alias
``POST /models/{name}/rollback``            admin: alias back to its previous version
``POST /models/{name}/freeze|unfreeze``     admin: stop or resume automatic moves
==========================================  =============================================

Mutating endpoints need ``Authorization: Bearer <DRIFTLINE_ADMIN_TOKEN>`` (compared in
constant time): 401 without it, 403 when the server has no token configured. Moves made here are
``manual`` (a person decided), so a frozen model still accepts them; the request's
``reason`` text and the operation go into the move's evidence.

Errors are ``{"error": "...", "detail": "..."}`` (the same words): 401/403 an admin
route without the right token (checked before the body is read); 404 unknown model,
version, run or artifact; 409 a compare-and-set that found another version (the body
says which: ``current_version``); 413 a body over ``DRIFTLINE_REGISTRY_MAX_BODY_BYTES``;
422 a malformed request (strict JSON: no NaN or Infinity, versions within 32 bits, text
without NUL or lone surrogates; inputs quoted only as short excerpts). ``/docs`` and
``/redoc`` load their assets from this server.

>>> import tempfile, pathlib
>>> from services.common.settings import DriftlineSettings
>>> reg = Registry.open(DriftlineSettings.load(env={}, data_dir=tempfile.mkdtemp()), relay=False)
>>> app = create_app(reg, admin_token=None, metrics=Metrics("doc"))
>>> {"/artifacts/{sha256}", "/healthz", "/metrics"} <= set(app.openapi()["paths"])
True
>>> reg.close()
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from importlib.metadata import PackageNotFoundError, version
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, FastAPI, HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel, ConfigDict, Field

from schemas import AliasReason
from services.common.http_body import BodyLimit, json_route
from services.common.http_docs import offline_docs
from services.common.http_errors import (
    ERROR_RESPONSES,
    Problem,
    install_error_handlers,
)
from services.common.http_errors import problem as problem_response
from services.common.metrics import Metrics
from services.common.signing import sha256_hex
from services.registry.client import Registry
from services.registry.domain import AliasMove, ModelInfo, ModelVersion, TrainingRun
from services.registry.errors import (
    AliasConflict,
    FrozenModel,
    NotFound,
    RegistryError,
    RegistryUnavailable,
    SpecConflict,
)
from services.registry.metrics import ApiMetrics
from services.registry.store_api import store_router

log = logging.getLogger(__name__)

ACTOR = "http-admin"
ALIAS_PATTERN = r"^[A-Za-z0-9_-]+$"
NAME_PATTERN = r"^[A-Za-z0-9._-]+$"  # model name = stream name
MAX_VERSION = 2**31 - 1  # versions are 32-bit integers in the tables
TEXT_PATTERN = r"^[^\x00]*$"  # PostgreSQL text holds no NUL
MAX_BODY_BYTES = 1024 * 1024
ModelName = Annotated[
    str, Path(min_length=1, max_length=200, pattern=NAME_PATTERN, examples=["sea"])
]
VersionNumber = Annotated[int, Path(ge=1, le=MAX_VERSION)]
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_bearer = HTTPBearer(
    auto_error=False, description="the registry's DRIFTLINE_ADMIN_TOKEN (mutating endpoints)"
)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


# -- request and response bodies ----------------------------------------------------------


class _Body(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PromoteRequest(_Body):
    """Point an alias at a version, if it still points where you saw it."""

    version: int = Field(ge=1, le=MAX_VERSION, description="the version the alias should point at")
    alias: str = Field(default="champion", pattern=ALIAS_PATTERN, max_length=64)
    expect: int | None = Field(
        ge=1,
        le=MAX_VERSION,
        description="compare-and-set: the version the alias points at now (null: unset); "
        "required, so nobody overwrites a move they have not seen",
    )
    reason: str | None = Field(
        default=None, max_length=2000, pattern=TEXT_PATTERN, description="why, for the record"
    )


class RollbackRequest(_Body):
    """Move an alias back to the version it pointed at before its last move."""

    alias: str = Field(default="champion", pattern=ALIAS_PATTERN, max_length=64)
    expect: int | None = Field(
        ge=1,
        le=MAX_VERSION,
        description="compare-and-set: the version the alias points at now (required)",
    )
    reason: str | None = Field(
        default=None, max_length=2000, pattern=TEXT_PATTERN, description="why, for the record"
    )


class FreezeRequest(_Body):
    """Why a model is frozen or unfrozen."""

    reason: str | None = Field(default=None, max_length=2000, pattern=TEXT_PATTERN)


class AliasConflictProblem(Problem):
    """A compare-and-set move found the alias somewhere else."""

    model: str | None = None
    current_version: int | None = Field(description="where the alias points now (null: unset)")


class Health(BaseModel):
    """The server is up and its database answers."""

    status: Literal["ok"] = "ok"
    outbox_backlog: int = Field(description="events committed but not yet relayed to Kafka")


_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": Problem}}
_ADMIN: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "missing or wrong bearer token"},
    403: {"model": Problem, "description": "no DRIFTLINE_ADMIN_TOKEN configured on the server"},
    404: {"model": Problem},
}
_MOVE: dict[int | str, dict[str, Any]] = {
    **_ADMIN,
    409: {"model": AliasConflictProblem, "description": "the alias is not at `expect`"},
}


# -- the app ------------------------------------------------------------------------------


def create_app(
    registry: Registry,
    *,
    admin_token: str | None,
    metrics: Metrics,
    on_change: Callable[[], None] | None = None,
    max_body_bytes: int = MAX_BODY_BYTES,
    service_token: str | None = None,
    max_blob_bytes: int = 1 << 30,
) -> FastAPI:
    """The registry's FastAPI app over ``registry``.

    Parameters
    ----------
    registry
        The open registry the endpoints read and write.
    admin_token
        Bearer token of the mutating endpoints; None (or empty) makes them refuse (403).
    metrics
        Where request, refusal and outbox metrics are registered; ``GET /metrics`` renders it.
    on_change
        Called after every committed alias move (the server wakes its outbox relay with it).
    max_body_bytes
        Larger request bodies are refused with 413 (uploads to ``/uploads`` excepted).
    service_token
        Bearer token of the services' write API (:mod:`services.registry.store_api`);
        None (or empty) makes it refuse (403) unless the admin token is sent.
    max_blob_bytes
        Largest upload to ``/uploads`` (413 above).
    """
    app = FastAPI(
        title="driftline registry",
        version=_package_version(),
        description="Model versions, aliases, lineage, training runs and signed artifacts.",
        docs_url=None,
        redoc_url=None,
        responses=ERROR_RESPONSES,
    )
    app.router.route_class = json_route()
    offline_docs(app)
    own = ApiMetrics(metrics)
    requests, latency, refusals, backlog = own.requests, own.latency, own.refusals, own.backlog
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes, exempt=("/uploads/",))
    app.add_middleware(_Instrument, requests=requests, latency=latency)
    token = admin_token.encode() if admin_token else None

    def refuse(request: Request, reason: str) -> None:
        refusals.labels(route=_route(request.scope), reason=reason).inc()

    def problem(request: Request, status: int, reason: str, exc: Exception) -> JSONResponse:
        refuse(request, reason)
        return problem_response(status, str(exc), headers={"X-Driftline-Error": reason})

    async def on_not_found(request: Request, exc: Exception) -> JSONResponse:
        return problem(request, 404, "not_found", exc)

    async def on_alias_conflict(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, AliasConflict)  # noqa: S101 - registered for this class only
        refuse(request, "alias_conflict")
        body = {
            "error": str(exc),
            "detail": str(exc),
            "model": request.path_params.get("name"),
            "current_version": exc.actual,
        }
        return JSONResponse(body, status_code=409, headers={"X-Driftline-Error": "alias_conflict"})

    async def on_frozen(request: Request, exc: Exception) -> JSONResponse:
        return problem(request, 409, "frozen", exc)

    async def on_spec_conflict(request: Request, exc: Exception) -> JSONResponse:
        return problem(request, 409, "spec_conflict", exc)

    async def on_unavailable(request: Request, exc: Exception) -> JSONResponse:
        response = problem(request, 503, "unavailable", exc)
        response.headers["Retry-After"] = "1"
        return response

    async def on_registry_error(request: Request, exc: Exception) -> JSONResponse:
        return problem(request, 400, "registry_error", exc)

    install_error_handlers(app, on_invalid=lambda request: refuse(request, "invalid"))
    app.add_exception_handler(NotFound, on_not_found)
    app.add_exception_handler(AliasConflict, on_alias_conflict)
    app.add_exception_handler(FrozenModel, on_frozen)
    app.add_exception_handler(SpecConflict, on_spec_conflict)
    app.add_exception_handler(RegistryUnavailable, on_unavailable)
    app.add_exception_handler(RegistryError, on_registry_error)

    def require_admin(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> None:
        check_admin(request, credentials)

    def check_admin(request: Request, credentials: HTTPAuthorizationCredentials | None) -> None:
        if credentials is None:  # 401 first: the caller must authenticate, configured or not
            refuse(request, "unauthorized")
            raise HTTPException(401, "missing bearer token", headers={"WWW-Authenticate": "Bearer"})
        if token is None:
            refuse(request, "no_admin_token")
            raise HTTPException(
                403,
                "mutating endpoints are disabled: set DRIFTLINE_ADMIN_TOKEN on the registry "
                "server and send it as 'Authorization: Bearer <token>'",
            )
        given = credentials.credentials.encode()
        # Compare digests, so neither the content nor the length of the token leaks.
        if not hmac.compare_digest(hashlib.sha256(given).digest(), hashlib.sha256(token).digest()):
            refuse(request, "unauthorized")
            raise HTTPException(
                401,
                "wrong bearer token",
                headers={"WWW-Authenticate": "Bearer"},
            )

    admin = [Depends(require_admin)]
    base_route = json_route()

    class AdminRoute(base_route):  # type: ignore[valid-type, misc]
        """Checks the bearer token before the body is read: a caller without the token
        learns nothing from how its body is judged."""

        def get_route_handler(self) -> Callable[[Request], Awaitable[Response]]:
            handler = super().get_route_handler()

            async def route(request: Request) -> Response:
                check_admin(request, await _bearer(request))
                response: Response = await handler(request)
                return response

            return route

    writes = APIRouter(route_class=AdminRoute, tags=["admin"], dependencies=admin)

    def model_or_404(name: str) -> ModelInfo:
        info = registry.get_model(name=name)
        if info is None:
            raise NotFound(f"no model {name!r}")
        return info

    def changed() -> None:
        if on_change is not None:
            on_change()

    # -- reads --------------------------------------------------------------------------

    @app.get("/models", tags=["models"])
    def list_models() -> list[ModelInfo]:
        """Every model, by name, with where its aliases point."""
        return registry.list_models()

    @app.get("/models/{name}", tags=["models"], responses=_NOT_FOUND)
    def get_model(name: ModelName) -> ModelInfo:
        """One model: latest version, frozen flag and its aliases."""
        return model_or_404(name)

    @app.get("/models/{name}/versions", tags=["models"], responses=_NOT_FOUND)
    def list_versions(
        name: ModelName, limit: Annotated[int, Query(ge=1, le=1000)] = 100
    ) -> list[ModelVersion]:
        """A model's versions, newest first."""
        model_or_404(name)
        return registry.list_versions(model=name, limit=limit)

    @app.get("/models/{name}/versions/{version}", tags=["models"], responses=_NOT_FOUND)
    def get_version(name: ModelName, version: VersionNumber) -> ModelVersion:
        """One version: params, metrics, evaluation, lineage and artifact reference."""
        found = registry.get_version(model=name, version=version)
        if found is None:
            raise NotFound(f"no version {name} v{version}")
        return found

    @app.get("/models/{name}/aliases/{alias}/history", tags=["models"], responses=_NOT_FOUND)
    def alias_history(
        name: ModelName,
        alias: Annotated[str, Path(pattern=ALIAS_PATTERN, max_length=64)],
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[AliasMove]:
        """The moves of one alias, newest first (empty when it never moved)."""
        model_or_404(name)
        return registry.alias_history(model=name, alias=alias, limit=limit)

    @app.get("/runs", tags=["runs"])
    def list_runs(
        model: Annotated[
            str | None, Query(min_length=1, max_length=200, pattern=NAME_PATTERN)
        ] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    ) -> list[TrainingRun]:
        """Training runs, newest first, optionally of one model."""
        return registry.list_runs(model=model, limit=limit)

    @app.get("/runs/{run_id}", tags=["runs"], responses=_NOT_FOUND)
    def get_run(
        run_id: Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")],
    ) -> TrainingRun:
        """One training run with every candidate it tried."""
        run = registry.get_run(run_id=run_id)
        if run is None:
            raise NotFound(f"no training run {run_id!r}")
        return run

    @app.get(
        "/artifacts/{sha256}",
        tags=["artifacts"],
        response_class=Response,
        responses={
            200: {
                "content": {"application/octet-stream": {}},
                "description": "The artifact bytes; verify them with the signature headers "
                "before unpickling anything.",
            },
            404: {"model": Problem},
        },
    )
    def get_artifact(sha256: str) -> Response:
        """The raw bytes of an artifact, as the registry stored and signed them.

        ``X-Driftline-Signature`` (hex HMAC-SHA256) and ``X-Driftline-Key-Id`` come from
        the model version with this artifact.
        """
        sha = sha256.lower()
        if not _SHA256.match(sha):
            raise NotFound(f"not a sha256: {sha256[:80]!r}")
        versions = registry.versions_by_sha256(sha256=sha)
        if not versions:
            raise NotFound(f"no model version has the artifact {sha}")
        newest = max(versions, key=lambda v: v.created_at)
        data = registry.artifact_bytes(sha256=sha)
        if sha256_hex(data) != sha:
            log.error("stored artifact is corrupt", extra={"sha256": sha})
            raise HTTPException(500, f"the stored artifact {sha} is corrupt (sha256 mismatch)")
        return Response(
            data,
            media_type="application/octet-stream",
            headers={
                "X-Driftline-Signature": newest.artifact.signature,
                "X-Driftline-Key-Id": newest.artifact.key_id,
                "X-Driftline-Sha256": sha,
                "ETag": f'"{sha}"',
                "Cache-Control": "public, max-age=31536000, immutable",
            },
        )

    @app.get("/healthz", tags=["ops"], responses={503: {"model": Problem}})
    def healthz() -> Health:
        """Up, with the database reachable; the outbox backlog is informative."""
        try:
            pending = registry.outbox_backlog()
        except Exception as exc:  # noqa: BLE001 - any database failure means unhealthy
            log.warning("health check: database unreachable: %s", exc)
            raise HTTPException(503, f"database unreachable: {type(exc).__name__}") from exc
        backlog.set(pending)
        return Health(outbox_backlog=pending)

    @app.get("/metrics", tags=["ops"], response_class=Response)
    def prometheus() -> Response:
        """Prometheus metrics of this process (text exposition format)."""
        try:
            backlog.set(registry.outbox_backlog())
        except Exception:  # noqa: BLE001 - metrics still render without the backlog
            log.warning("metrics: cannot read the outbox backlog", exc_info=True)
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    # -- writes (admin) -----------------------------------------------------------------

    @writes.post("/models/{name}/promote", responses=_MOVE)
    def promote(name: ModelName, body: PromoteRequest) -> AliasMove:
        """Point ``alias`` at ``version`` if it still points at ``expect`` (compare-and-set).

        The move is ``manual``: it is accepted on a frozen model too.
        """
        move = registry.move_alias(
            model=name,
            alias=body.alias,
            to_version=body.version,
            expect=body.expect,
            reason=AliasReason.MANUAL,
            actor=ACTOR,
            evidence=_evidence("promote", body.reason),
        )
        log.info("alias moved", extra=_log_move(move))
        changed()
        return move

    @writes.post("/models/{name}/rollback", responses=_MOVE)
    def rollback(name: ModelName, body: RollbackRequest) -> AliasMove:
        """Move ``alias`` back to the version it pointed at before its last move."""
        move = registry.rollback(
            model=name,
            alias=body.alias,
            expect=body.expect,
            actor=ACTOR,
            evidence=_evidence("rollback", body.reason),
            reason=AliasReason.MANUAL,
        )
        log.info("alias rolled back", extra=_log_move(move))
        changed()
        return move

    @writes.post("/models/{name}/freeze", responses=_ADMIN)
    def freeze(name: ModelName, body: Annotated[FreezeRequest | None, Body()] = None) -> ModelInfo:
        """Stop every automatic alias move of the model (manual moves still work)."""
        reason = body.reason if body is not None else None
        info = registry.freeze(model=name, frozen=True, reason=reason)
        log.info("model frozen", extra={"model": name, "reason": reason})
        return info

    @writes.post("/models/{name}/unfreeze", responses=_ADMIN)
    def unfreeze(
        name: ModelName, body: Annotated[FreezeRequest | None, Body()] = None
    ) -> ModelInfo:
        """Resume automatic alias moves of the model."""
        info = registry.freeze(model=name, frozen=False, reason=None)
        reason = body.reason if body is not None else None
        log.info("model unfrozen", extra={"model": name, "reason": reason})
        return info

    app.include_router(writes)
    app.include_router(
        store_router(
            registry,
            service_token=service_token,
            admin_token=admin_token,
            max_blob_bytes=max_blob_bytes,
            refuse=refuse,
            on_change=changed,
        )
    )
    return app


def _evidence(operation: str, reason: str | None) -> dict[str, Any]:
    evidence: dict[str, Any] = {"operation": operation}
    if reason:
        evidence["note"] = reason
    return evidence


def _log_move(move: AliasMove) -> dict[str, Any]:
    return {
        "model": move.model,
        "alias": move.alias,
        "from_version": move.from_version,
        "to_version": move.to_version,
        "actor": move.actor,
        "event_id": move.event_id,
    }


def _route(scope: Scope) -> str:
    """The matched route's template (bounded label values), or ``unmatched``."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"


def _package_version() -> str:
    try:
        return version("driftline")
    except PackageNotFoundError:
        return "0+unknown"


class _Instrument:
    """ASGI middleware counting requests by method, route template and status."""

    def __init__(self, app: ASGIApp, *, requests: Any, latency: Any) -> None:
        self.app = app
        self.requests = requests
        self.latency = latency

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        started = time.perf_counter()

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            route, method = _route(scope), str(scope.get("method", "?"))
            self.requests.labels(method=method, route=route, status=str(status)).inc()
            self.latency.labels(method=method, route=route).observe(time.perf_counter() - started)
