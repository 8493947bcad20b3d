"""Serving's HTTP API: predictions from whatever version the subscriber holds right now.

=============================================  ============================================
``POST /v2/models/{model}/infer``              Open Inference Protocol (KServe V2) predict
``POST /v2/models/{model}/versions/{v}/infer``  the same, only if version ``v`` is loaded
``GET /v2/models/{model}[/versions/{v}]``       model metadata: version, inputs, outputs
``GET /v2/models/{model}[/versions/{v}]/ready`` ``{"ready": true}`` once loaded, else 503
``GET /v2``, ``/v2/health/live|ready``         server metadata, ``{"live"|"ready": true}``
``POST /models/{model}/predict``               ``{"instances": [{...}, ...]}`` -> labels
``GET /models``                                loaded models, aliases, load history
``GET /healthz``, ``/readyz``, ``/metrics``    liveness, readiness, Prometheus
``GET /docs``, ``/redoc``                      API docs (assets served locally)
=============================================  ============================================

The predict path takes no lock: it reads the subscriber's current (immutable) snapshot
once, so a swap in the middle of a request changes nothing for it; the answer names the
version that produced it (``model_version`` and ``parameters.version`` in V2).

Stock V2 clients work unmodified: a JSON body is read whatever its ``Content-Type``
(or none), the binary tensor data extension is supported
(:mod:`services.serving.binary`), top-level ``model_name``/``model_version`` are
accepted, and response ``parameters`` hold only strings, numbers and booleans.

Errors are ``{"error": "...", "detail": "..."}`` (V2's key and FastAPI's): 422 a
malformed request (with the row and feature; input quoted only as a short excerpt), 404
an unknown model, alias or version, 413 a body over ``DRIFTLINE_SERVING_MAX_BODY_BYTES``,
503 no version loaded yet. Values outside the stream's spec are counted per feature
(``driftline_serving_out_of_spec_total``) and flagged (V2 ``parameters.out_of_spec``,
JSON ``out_of_spec``), or refused with 422 when ``strict_spec``. See
:mod:`services.serving.protocol` for the request shapes.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import Annotated, Any

from fastapi import FastAPI, HTTPException, Path, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel, Field

from schemas import FeatureSpec, ModelAnswer
from services.common.http_body import BodyLimit, json_route
from services.common.http_docs import offline_docs
from services.common.http_errors import ERROR_RESPONSES, Problem, install_error_handlers
from services.common.subscriber import PINNED, LoadedModel, LoadFailure, ModelSubscriber
from services.serving.binary import decode_request
from services.serving.metrics import ServingMetrics
from services.serving.protocol import (
    MAX_VERSION,
    BadRequest,
    InferRequest,
    InferResponse,
    ModelMetadata,
    Parameters,
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
    scalar_parameters,
)
from services.serving.ranges import OutOfSpec, out_of_spec
from services.serving.shadow import ShadowJob, ShadowScorer

log = logging.getLogger(__name__)

MODEL_NAME = r"^[A-Za-z0-9._-]+$"
ModelName = Annotated[str, Path(pattern=MODEL_NAME, max_length=200, examples=["sea"])]
Version = Annotated[int, Path(ge=1, le=MAX_VERSION)]
MAX_BODY_BYTES = 64 * 1024 * 1024


class Health(BaseModel):
    """Liveness or readiness."""

    status: str
    replica_id: str
    loaded: dict[str, int] = Field(default_factory=dict, description="model@alias -> version")


class Live(BaseModel):
    """V2 server liveness."""

    live: bool


class Ready(BaseModel):
    """V2 server or model readiness."""

    ready: bool
    name: str | None = Field(default=None, description="the model (model readiness)")


_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem, "description": "unknown model, alias or version"},
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
    spec: Callable[[str], Sequence[FeatureSpec]] = lambda model: (),
    strict_spec: bool = False,
    max_body_bytes: int = MAX_BODY_BYTES,
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
    spec
        The features of a model's stream spec (ranges and categories to check inputs by).
    strict_spec
        Refuse (422) rows with values outside the spec, rather than flag them.
    max_body_bytes
        Larger request bodies are refused with 413.
    """
    app = FastAPI(
        title="driftline serving",
        version=_package_version(),
        description="Predictions from hot-swapped model versions (Open Inference Protocol).",
        docs_url=None,
        redoc_url=None,
        responses=ERROR_RESPONSES,
    )
    app.router.route_class = json_route(any_content_type=True, decode=decode_request)
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    install_error_handlers(app, on_invalid=lambda request: _count(request, "invalid"))
    offline_docs(app)
    served = models.followed

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
    ) -> tuple[list[Any], list[dict[str, float] | None], OutOfSpec]:
        started = time.perf_counter()
        try:
            check_rows(rows, loaded.predictor.features, nullable(loaded.model))
        except BadRequest as exc:
            _count(request, "invalid", loaded)
            raise HTTPException(422, str(exc)) from exc
        outside = out_of_spec(rows, spec(loaded.model))
        for feature, n in outside.counts.items():
            metrics.out_of_spec.labels(model=loaded.model, feature=feature).inc(n)
        if outside and strict_spec:
            _count(request, "invalid", loaded)
            raise HTTPException(422, f"outside the stream's spec: {outside.describe()}")
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
        return labels, probs, outside

    # -- Open Inference Protocol ------------------------------------------------------

    def infer(
        request: Request, model: str, body: InferRequest, version: int | None
    ) -> InferResponse:
        if body.model_name is not None and body.model_name != model:
            _count(request, "invalid")
            raise HTTPException(
                422, f"model_name {body.model_name[:200]!r} is not the path's model {model!r}"
            )
        if body.model_version is not None:
            pinned = _version_of(body.model_version)
            if pinned is None or (version is not None and pinned != version):
                _count(request, "invalid")
                raise HTTPException(
                    422,
                    f"model_version {body.model_version!r} is not "
                    + (f"the path's version {version}" if version else "a version number"),
                )
            version = pinned
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
        labels, probs, outside = predict(request, loaded, rows, ids, "v2")
        wanted = {o.name for o in body.outputs} if body.outputs else {"prediction", "probabilities"}
        outputs = []
        if "prediction" in wanted:
            outputs.append(output_tensor("prediction", labels))
        proba = probability_tensor(probs) if "probabilities" in wanted else None
        if proba is not None:
            outputs.append(proba)
        parameters = v2_parameters(loaded)
        if outside:
            parameters["out_of_spec"] = ",".join(sorted(outside.counts))
            parameters["out_of_spec_values"] = sum(outside.counts.values())
            parameters["out_of_spec_rows"] = len(outside.rows)
        return InferResponse(
            model_name=loaded.model,
            model_version=str(loaded.version),
            id=body.id,
            parameters=parameters,
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
        request: Request, model: ModelName, version: Version, body: InferRequest
    ) -> InferResponse:
        """Predict with exactly ``version``, if this replica has it loaded (else 404)."""
        return infer(request, model, body, version)

    def metadata(loaded: LoadedModel) -> ModelMetadata:
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
            parameters=v2_parameters(loaded) | {"classes": json.dumps([str(c) for c in p.classes])},
        )

    @app.get("/v2/models/{model}", tags=["v2"], responses=_ERRORS)
    def v2_metadata(request: Request, model: ModelName) -> ModelMetadata:
        """The served version's metadata: its inputs (one per feature) and outputs."""
        return metadata(resolve(request, model, served[0]))

    @app.get("/v2/models/{model}/versions/{version}", tags=["v2"], responses=_ERRORS)
    def v2_version_metadata(request: Request, model: ModelName, version: Version) -> ModelMetadata:
        """The metadata of ``version``, if this replica has it loaded (else 404)."""
        return metadata(resolve(request, model, served[0], version))

    @app.get("/v2/models/{model}/ready", tags=["v2"], responses=_ERRORS)
    def v2_model_ready(request: Request, model: ModelName) -> Ready:
        """200 once a version of the model is loaded for the served alias (else 503)."""
        resolve(request, model, served[0])
        return Ready(name=model, ready=True)

    @app.get("/v2/models/{model}/versions/{version}/ready", tags=["v2"], responses=_ERRORS)
    def v2_version_ready(request: Request, model: ModelName, version: Version) -> Ready:
        """200 when ``version`` is loaded here (404 when it is not, 503 when nothing is)."""
        resolve(request, model, served[0], version)
        return Ready(name=model, ready=True)

    @app.get("/v2", tags=["v2"])
    def v2_server() -> ServerMetadata:
        """Server metadata."""
        return ServerMetadata(
            name="driftline-serving",
            version=_package_version(),
            extensions=["binary_tensor_data"],
        )

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
        labels, probs, outside = predict(request, loaded, body.instances, ids, "json")
        return PredictResponse(
            model=loaded.model,
            version=loaded.version,
            alias=loaded.alias,
            predictions=labels,
            probabilities=probs if any(p is not None for p in probs) else None,
            out_of_spec=outside.counts or None,
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
    app.get("/readyz", tags=["ops"], responses=responses)(ready)

    @app.get("/v2/health/live", tags=["v2"], responses=responses)
    def v2_live() -> Live:
        """``{"live": true}`` while the replica can answer (503 when its model subscriber
        stopped)."""
        live()
        return Live(live=True)

    @app.get("/v2/health/ready", tags=["v2"], responses=responses)
    def v2_ready() -> Ready:
        """``{"ready": true}`` once every served model has a version loaded (else 503)."""
        ready()
        return Ready(ready=True)

    @app.get("/metrics", tags=["ops"], response_class=Response)
    def prometheus() -> Response:
        """Prometheus metrics of this process."""
        return Response(metrics.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    return app


def v2_parameters(loaded: LoadedModel) -> Parameters:
    """What answered, as V2 ``parameters`` (strings, numbers and booleans only)."""
    return scalar_parameters(_describe(loaded))


def _version_of(text: str) -> int | None:
    text = text.strip()
    if not text.isdecimal() or len(text) > 10 or not 1 <= int(text) <= MAX_VERSION:
        return None
    return int(text)


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
