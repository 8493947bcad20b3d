"""Serving's HTTP API: predictions from whatever version the subscriber holds right now.

=============================================  ============================================
``POST /v2/models/{model}/infer``              Open Inference Protocol (KServe V2) predict
``POST /v2/models/{model}/versions/{v}/infer``  the same, only if version ``v`` is loaded
``GET /v2/models/{model}``                     model metadata: version, inputs, outputs
``GET /v2/models/{model}/ready``               200 once a version is loaded, else 503
``GET /v2``, ``/v2/health/live|ready``         server metadata, liveness, readiness
``POST /models/{model}/predict``               ``{"instances": [{...}, ...]}`` -> labels
``GET /models``                                loaded models, aliases, load history
``GET /healthz``, ``/readyz``, ``/metrics``    liveness, readiness, Prometheus
=============================================  ============================================

The predict path takes no lock: it reads the subscriber's current (immutable) snapshot
once, so a swap in the middle of a request changes nothing for it; the answer names the
version that produced it (``model_version`` and ``parameters.version`` in V2).

Errors are ``{"detail": "..."}``: 422 a malformed request (with the row and feature),
404 an unknown model or alias, 503 no version loaded yet. See
:mod:`services.serving.protocol` for the request shapes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Mapping
from importlib.metadata import PackageNotFoundError, version
from typing import Annotated, Any

from fastapi import FastAPI, HTTPException, Path, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel, Field

from schemas import ModelAnswer
from services.common.subscriber import PINNED, LoadedModel, LoadFailure, ModelSubscriber
from services.serving.metrics import ServingMetrics
from services.serving.protocol import (
    BadRequest,
    InferRequest,
    InferResponse,
    ModelMetadata,
    PredictRequest,
    PredictResponse,
    ServerMetadata,
    TensorMetadata,
    check_ids,
    check_rows,
    feature_datatype,
    output_tensor,
    probability_tensor,
    rows_from_tensors,
)
from services.serving.shadow import ShadowJob, ShadowScorer

log = logging.getLogger(__name__)

MODEL_NAME = r"^[A-Za-z0-9._-]+$"
ModelName = Annotated[str, Path(pattern=MODEL_NAME, max_length=200)]


class Problem(BaseModel):
    """An error, in words."""

    detail: str


class Health(BaseModel):
    """Liveness or readiness."""

    status: str
    replica_id: str
    loaded: dict[str, int] = Field(default_factory=dict, description="model@alias -> version")


_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem, "description": "unknown model or alias"},
    422: {"model": Problem, "description": "malformed request (names the row and feature)"},
    503: {"model": Problem, "description": "no version of the model is loaded yet"},
}


def create_app(
    models: ModelSubscriber,
    *,
    metrics: ServingMetrics,
    replica_id: str,
    shadow: ShadowScorer | None = None,
    nullable: Callable[[str], Collection[str]] = lambda model: (),
    specs: Callable[[], Mapping[str, int | None]] = dict,
) -> FastAPI:
    """Serving's FastAPI app over a (started) :class:`ModelSubscriber`.

    Parameters
    ----------
    models
        Holds the loaded versions; its first alias is the one served by default.
    metrics
        Where request and model metrics are counted; ``GET /metrics`` renders them.
    replica_id
        This replica's name (health answers and logs).
    shadow
        With a challenger loaded, rows that carry example ids are queued here to be
        scored by it off the response path (None: no shadowing).
    nullable
        The features of a model that may be null (from its stream's spec).
    specs
        The stream config version in force per stream (shown by ``GET /models``).
    """
    app = FastAPI(
        title="driftline serving",
        version=_package_version(),
        description="Predictions from hot-swapped model versions (Open Inference Protocol).",
    )
    served = models.followed

    async def on_invalid(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)  # noqa: S101 - registered for it only
        errors = exc.errors()
        parts = []
        for err in errors[:3]:
            loc = ".".join(str(p) for p in err.get("loc", ()))
            parts.append(f"{loc}: {err.get('msg')}")
        more = f" (+{len(errors) - 3} more)" if len(errors) > 3 else ""
        _count(request, "invalid")
        body = {"detail": "; ".join(parts) + more, "errors": jsonable_encoder(errors)}
        return JSONResponse(body, status_code=422)

    app.add_exception_handler(RequestValidationError, on_invalid)

    def _count(request: Request, outcome: str, loaded: LoadedModel | None = None) -> None:
        name = request.path_params.get("model")
        if loaded is not None:
            model, ver = loaded.model, str(loaded.version)
        elif isinstance(name, str) and _known(name):
            model, ver = name, "none"
        else:
            model, ver = "unknown", "none"
        metrics.requests.labels(model=model, version=ver, outcome=outcome).inc()

    def _known(model: str) -> bool:
        return (
            (models.models is not None and model in models.models)
            or model in models.pins
            or bool(models.versions(model))
            or bool(models.aliases(model))
            or any(m == model for m, _ in models.loaded())
        )

    def resolve(
        request: Request, model: str, alias: str, version: int | None = None
    ) -> LoadedModel:
        """The loaded version to answer with, or the right HTTP error."""
        if alias not in served:
            _count(request, "not_found")
            raise HTTPException(
                404, f"alias {alias!r} is not served here (followed: {', '.join(served)})"
            )
        loaded = models.get(model, alias)
        if loaded is None:
            if models.models is not None and model not in models.models:
                _count(request, "not_found")
                raise HTTPException(404, f"model {model!r} is not served by this replica")
            if not _known(model):
                _count(request, "not_found")
                raise HTTPException(404, f"no model {model!r} on the models topic")
            _count(request, "unavailable")
            raise HTTPException(
                503,
                f"no version of {model!r} is loaded for {alias!r} yet"
                + ("" if models.caught_up() else " (still reading the models topic)"),
            )
        if version is not None and loaded.version != version:
            others = {
                slot: m.version for (name, slot), m in models.loaded().items() if name == model
            }
            match = next(
                (m for (n, _), m in models.loaded().items() if n == model and m.version == version),
                None,
            )
            if match is None:
                _count(request, "not_found")
                raise HTTPException(
                    404, f"version {version} of {model!r} is not loaded here (loaded: {others})"
                )
            loaded = match
        return loaded

    def predict(
        request: Request,
        loaded: LoadedModel,
        rows: list[dict[str, Any]],
        ids: list[str] | None,
        path: str,
    ) -> tuple[list[Any], list[dict[str, float] | None]]:
        started = time.perf_counter()
        try:
            check_rows(rows, loaded.predictor.features, nullable(loaded.model))
        except BadRequest as exc:
            _count(request, "invalid", loaded)
            raise HTTPException(422, str(exc)) from exc
        try:
            labels = loaded.predictor.predict_many(rows)
            probs = loaded.predictor.predict_proba_many(rows)
        except Exception as exc:
            _count(request, "error", loaded)
            log.exception("%s v%d failed to predict", loaded.model, loaded.version)
            raise HTTPException(
                500, f"{loaded.model} v{loaded.version} failed to predict: {type(exc).__name__}"
            ) from exc
        metrics.latency.labels(model=loaded.model, path=path).observe(time.perf_counter() - started)
        metrics.rows.labels(model=loaded.model, path=path).inc(len(rows))
        _count(request, "ok", loaded)
        if ids is not None and shadow is not None and len(served) > 1:
            challenger = models.get(loaded.model, served[1])
            if challenger is not None and challenger.version != loaded.version:
                mine = [
                    ModelAnswer(
                        model=loaded.model, version=loaded.version, prediction=y, probabilities=p
                    )
                    for y, p in zip(labels, probs, strict=True)
                ]
                shadow.submit(
                    ShadowJob(
                        model=loaded.model,
                        rows=rows,
                        example_ids=ids,
                        request_ids=[None] * len(rows),
                        champion=mine,
                        challenger=challenger,
                    )
                )
        return labels, probs

    # -- Open Inference Protocol ------------------------------------------------------

    def infer(
        request: Request, model: str, body: InferRequest, version: int | None
    ) -> InferResponse:
        params = body.parameters or {}
        alias = params.get("alias", served[0])
        if not isinstance(alias, str):
            _count(request, "invalid")
            raise HTTPException(422, "parameters.alias must be a string")
        loaded = resolve(request, model, alias, version)
        try:
            rows = rows_from_tensors(body.inputs)
            raw_ids = params.get("example_ids")
            ids = check_ids(raw_ids if isinstance(raw_ids, list) else None, len(rows))
            if raw_ids is not None and not isinstance(raw_ids, list):
                raise BadRequest("parameters.example_ids must be a list, one id per row")
        except BadRequest as exc:
            _count(request, "invalid", loaded)
            raise HTTPException(422, str(exc)) from exc
        labels, probs = predict(request, loaded, rows, ids, "v2")
        wanted = {o.name for o in body.outputs} if body.outputs else {"prediction", "probabilities"}
        outputs = []
        if "prediction" in wanted:
            outputs.append(output_tensor("prediction", labels))
        proba = probability_tensor(probs) if "probabilities" in wanted else None
        if proba is not None:
            outputs.append(proba)
        return InferResponse(
            model_name=loaded.model,
            model_version=str(loaded.version),
            id=body.id,
            parameters=_describe(loaded),
            outputs=outputs,
        )

    @app.post("/v2/models/{model}/infer", tags=["v2"], responses=_ERRORS)
    def v2_infer(request: Request, model: ModelName, body: InferRequest) -> InferResponse:
        """Predict with the served version (``parameters.alias`` picks another followed
        alias). Inputs: one tensor per feature, or one BYTES tensor ``instances`` of JSON
        objects; outputs ``prediction`` and, for classifiers, ``probabilities`` [N, K]."""
        return infer(request, model, body, None)

    @app.post("/v2/models/{model}/versions/{version}/infer", tags=["v2"], responses=_ERRORS)
    def v2_infer_version(
        request: Request,
        model: ModelName,
        version: Annotated[int, Path(ge=1)],
        body: InferRequest,
    ) -> InferResponse:
        """Predict with exactly ``version``, if this replica has it loaded (else 404)."""
        return infer(request, model, body, version)

    @app.get("/v2/models/{model}", tags=["v2"], responses=_ERRORS)
    def v2_metadata(request: Request, model: ModelName) -> ModelMetadata:
        """The served version's metadata: its inputs (one per feature) and outputs."""
        loaded = resolve(request, model, served[0])
        p = loaded.predictor
        outputs = [
            TensorMetadata(name="prediction", datatype=_label_type(p.task, p.classes), shape=[-1])
        ]
        if p.task == "class":
            outputs.append(
                TensorMetadata(name="probabilities", datatype="FP64", shape=[-1, len(p.classes)])
            )
        return ModelMetadata(
            name=loaded.model,
            versions=[str(loaded.version)],
            platform=f"driftline-{loaded.meta.flavor}",
            inputs=[
                TensorMetadata(name=f.name, datatype=feature_datatype(f), shape=[-1])
                for f in p.features
            ],
            outputs=outputs,
            parameters=_describe(loaded) | {"classes": [str(c) for c in p.classes]},
        )

    @app.get("/v2/models/{model}/ready", tags=["v2"], responses=_ERRORS)
    def v2_model_ready(request: Request, model: ModelName) -> Health:
        """200 once a version of the model is loaded for the served alias."""
        loaded = resolve(request, model, served[0])
        return Health(
            status="ready", replica_id=replica_id, loaded={f"{model}@{served[0]}": loaded.version}
        )

    @app.get("/v2", tags=["v2"])
    def v2_server() -> ServerMetadata:
        """Server metadata."""
        return ServerMetadata(name="driftline-serving", version=_package_version())

    # -- plain JSON ---------------------------------------------------------------------

    @app.post("/models/{model}/predict", tags=["predict"], responses=_ERRORS)
    def predict_json(request: Request, model: ModelName, body: PredictRequest) -> PredictResponse:
        """Predict one or many instances (objects of feature values) with the served
        version, or with another followed ``alias``."""
        loaded = resolve(request, model, body.alias)
        try:
            ids = check_ids(body.ids, len(body.instances))
        except BadRequest as exc:
            _count(request, "invalid", loaded)
            raise HTTPException(422, str(exc)) from exc
        labels, probs = predict(request, loaded, body.instances, ids, "json")
        return PredictResponse(
            model=loaded.model,
            version=loaded.version,
            alias=loaded.alias,
            predictions=labels,
            probabilities=probs if any(p is not None for p in probs) else None,
        )

    @app.get("/models", tags=["models"])
    def list_models() -> dict[str, Any]:
        """Loaded versions per model and alias, where the aliases point on the topic, and
        the load history (newest last, at most 100)."""
        by_model: dict[str, dict[str, Any]] = {}
        for (model, slot), loaded in sorted(models.loaded().items()):
            entry = by_model.setdefault(model, {"loaded": {}, "aliases": models.aliases(model)})
            entry["loaded"][slot] = _describe(loaded)
        for model in models.models or ():
            by_model.setdefault(model, {"loaded": {}, "aliases": models.aliases(model)})
        history = [_history_item(h) for h in models.history()[-100:]]
        return {
            "replica_id": replica_id,
            "followed": list(served),
            "pins": models.pins,
            "caught_up": models.caught_up(),
            "specs": dict(specs()),
            "models": by_model,
            "history": history,
        }

    # -- operations ---------------------------------------------------------------------

    def live() -> Health:
        if models.error is not None:
            raise HTTPException(503, f"the model subscriber stopped: {models.error}")
        return Health(status="ok", replica_id=replica_id)

    def ready() -> Health:
        loaded = {
            f"{m}@{slot}": lm.version
            for (m, slot), lm in models.loaded().items()
            if slot in (served[0], PINNED)
        }
        wanted = models.models
        missing = sorted(m for m in wanted or () if not any(k.startswith(f"{m}@") for k in loaded))
        if not loaded or missing:
            detail = f"not ready: nothing loaded for {', '.join(missing) or 'any model'}"
            raise HTTPException(503, detail)
        return Health(status="ready", replica_id=replica_id, loaded=loaded)

    responses: dict[int | str, dict[str, Any]] = {503: {"model": Problem}}
    app.get("/healthz", tags=["ops"], responses=responses)(live)
    app.get("/v2/health/live", tags=["v2"], responses=responses)(live)
    app.get("/readyz", tags=["ops"], responses=responses)(ready)
    app.get("/v2/health/ready", tags=["v2"], responses=responses)(ready)

    @app.get("/metrics", tags=["ops"], response_class=Response)
    def prometheus() -> Response:
        """Prometheus metrics of this process."""
        return Response(metrics.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    return app


def _describe(loaded: LoadedModel) -> dict[str, Any]:
    described = {
        "version": loaded.version,
        "alias": loaded.alias,
        "kind": loaded.meta.kind,
        "flavor": loaded.meta.flavor,
        "algorithm": loaded.meta.algorithm,
        "spec_sha256": loaded.meta.spec_sha256,
        "metrics": loaded.meta.metrics,
        "loaded_at": loaded.loaded_at.isoformat(),
        "load_ms": round(loaded.load_ms, 3),
    }
    if loaded.meta.kind == "online":  # what the answering model has learned (issue 16)
        following = getattr(loaded.predictor, "following", None)
        described |= (
            following()
            if callable(following)
            else {
                "base_version": loaded.version,
                "learned_examples": loaded.meta.lineage.example_count,
            }
        )
    return described


def _history_item(item: LoadedModel | LoadFailure) -> dict[str, Any]:
    if isinstance(item, LoadedModel):
        return {
            "event": "loaded",
            "model": item.model,
            "version": item.version,
            "alias": item.alias,
            "at": item.loaded_at.isoformat(),
            "load_ms": round(item.load_ms, 3),
        }
    return {
        "event": "failed",
        "model": item.model,
        "version": item.version,
        "alias": item.alias,
        "at": item.at.isoformat(),
        "reason": item.reason,
        "detail": item.detail,
    }


def _label_type(task: str, classes: tuple[Any, ...]) -> str:
    if task == "number":
        return "FP64"
    if classes and all(isinstance(c, bool) for c in classes):
        return "BOOL"
    if classes and all(isinstance(c, int) for c in classes):
        return "INT64"
    return "BYTES"


def _package_version() -> str:
    try:
        return version("driftline")
    except PackageNotFoundError:
        return "0+unknown"
