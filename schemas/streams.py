"""Stream configs: the spec a stream's examples must meet, its model and its policy.

One YAML file per stream, published whole to the compacted ``streams`` topic.

>>> cfg = StreamConfig.model_validate({
...     "stream": "sea",
...     "spec": {"features": [{"name": "x1", "type": "number", "min": 0, "max": 10}],
...              "label": {"kind": "class", "classes": [False, True]}},
... })
>>> cfg.model.pipeline[-1].estimator
'linear_model.LogisticRegression'
>>> cfg.policy.primary_metric_for(cfg.spec.label.kind)
'accuracy'
>>> len(cfg.spec_sha256())
64
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, ClassVar, Literal, Self

from pydantic import Field, JsonValue, StrictBool, StrictInt, StrictStr, model_validator

from schemas.base import Event, Record

ClassValue = StrictBool | StrictInt | StrictStr
ClassificationMetric = Literal["accuracy", "f1_macro", "log_loss"]
RegressionMetric = Literal["mae", "rmse", "r2"]


def canonical_json(data: Any) -> str:
    """Sorted keys, no spaces: the form that a config's sha256 is taken over."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


class FeatureSpec(Record):
    """One feature: its type and what values are acceptable."""

    name: StrictStr = Field(min_length=1, max_length=200)
    type: Literal["number", "category", "bool"]
    min: float | None = None
    max: float | None = None
    categories: tuple[StrictStr, ...] | None = None
    nullable: bool = False

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.type != "number" and (self.min is not None or self.max is not None):
            raise ValueError(f"feature {self.name!r}: min/max apply only to numbers")
        if self.type != "category" and self.categories is not None:
            raise ValueError(f"feature {self.name!r}: categories apply only to categories")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"feature {self.name!r}: min {self.min} > max {self.max}")
        if self.categories is not None and len(set(self.categories)) != len(self.categories):
            raise ValueError(f"feature {self.name!r}: categories repeat")
        return self


class LabelSpec(Record):
    """The label: a class from a closed set, or a number."""

    kind: Literal["class", "number"]
    classes: tuple[ClassValue, ...] | None = None
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.kind == "class":
            if not self.classes or len(self.classes) < 2:
                raise ValueError("a class label needs at least two classes")
            if len(set(self.classes)) != len(self.classes):
                raise ValueError("label classes repeat")
            if self.min is not None or self.max is not None:
                raise ValueError("min/max apply only to number labels")
        elif self.classes is not None:
            raise ValueError("classes apply only to class labels")
        return self


class Spec(Record):
    """What a valid example of the stream looks like."""

    features: tuple[FeatureSpec, ...] = Field(min_length=1)
    label: LabelSpec
    max_future_s: float = Field(
        default=300.0, ge=0, description="event time may be at most this far ahead of now"
    )
    max_age_s: float | None = Field(
        default=None, gt=0, description="event time may be at most this old (None: no limit)"
    )

    @model_validator(mode="after")
    def _unique_names(self) -> Self:
        names = [f.name for f in self.features]
        if len(set(names)) != len(names):
            dup = sorted({n for n in names if names.count(n) > 1})
            raise ValueError(f"feature names repeat: {', '.join(dup)}")
        return self

    def feature(self, name: str) -> FeatureSpec | None:
        """The feature called ``name``, if any."""
        return next((f for f in self.features if f.name == name), None)


class EstimatorSpec(Record):
    """A River estimator by its allow-listed class path, with constructor params."""

    estimator: StrictStr = Field(pattern=r"^[a-z_]+\.[A-Za-z0-9_]+$")
    params: dict[str, JsonValue] = Field(default_factory=dict)


def _default_pipeline() -> tuple[EstimatorSpec, ...]:
    return (
        EstimatorSpec(estimator="preprocessing.StandardScaler"),
        EstimatorSpec(estimator="linear_model.LogisticRegression"),
    )


class ModelSpec(Record):
    """The learner's River pipeline, first step first.

    A string ``"a.B | c.D"`` is accepted as shorthand for a pipeline without params.
    """

    pipeline: tuple[EstimatorSpec, ...] = Field(default_factory=_default_pipeline, min_length=1)
    seed: int = 42

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("pipeline"), str):
            steps = [s.strip() for s in data["pipeline"].split("|") if s.strip()]
            data = {**data, "pipeline": [{"estimator": s} for s in steps]}
        return data


class DriftPolicy(Record):
    """How drift is detected and debounced.

    Concept drift (a rise of the online model's error) triggers a retrain. Data drift
    (a feature's distribution moving) is reported, as a ``DriftDetected`` event of kind
    ``data`` and in the learner's metrics, and triggers a retrain only with
    ``data_drift_retrains``: inputs move with seasons and time of day while the concept
    holds. ``exclude_features`` are left out of the data-drift tests (time stamps,
    counters, ids: ``spec infer`` lists the monotonic features it sees).
    """

    detector: Literal["ADWIN", "PageHinkley", "KSWIN"] = "ADWIN"
    params: dict[str, JsonValue] = Field(default_factory=dict)
    data_drift: bool = True
    data_drift_retrains: bool = Field(
        default=False, description="a data-drift event also triggers a retrain"
    )
    exclude_features: tuple[StrictStr, ...] = Field(
        default=(), description="features left out of the data-drift tests"
    )
    data_window: int = Field(default=500, ge=50, description="examples per data-drift window")
    data_alpha: float = Field(default=0.0001, gt=0, lt=1, description="data-drift test level")
    cooldown: int = Field(default=2000, ge=0, description="examples between two drift events")


class RetrainPolicy(Record):
    """Which examples a retrain uses, how it is tuned, and how often it is scheduled.

    ``mode``: ``since_drift`` (the default) trains a drift's run on the examples after the
    drift only (the newest ``window`` of them; the trainer waits, bounded by
    ``DRIFTLINE_TRAINER_DRIFT_WAIT_S``, until ``min_size`` exist): a model trained on rows
    from before the drift learns the old concept again. ``last``: the newest ``window``
    examples whatever the drift. Scheduled and manual runs always use ``last``.

    ``every``: besides drift, the learner requests a run on the newest ``window`` examples
    once ``every`` examples have passed since the stream's last drift event or scheduled
    request. A model trained while a gradual drift was under way learned a mixture of
    concepts, and a detector that fired at the drift's start stays quiet after it; the
    schedule replaces such a model once the new concept has settled. None: drift only.
    """

    mode: Literal["last", "since_drift"] = "since_drift"
    window: int = Field(
        default=5000,
        ge=10,
        description="the last W examples (mode last); at most the newest W (since_drift)",
    )
    min_size: int = Field(default=1000, ge=10, description="at least this many examples")
    holdout_fraction: float = Field(default=0.2, gt=0, lt=1)
    candidates: tuple[
        Literal["logistic_regression", "hist_gradient_boosting", "random_forest", "ridge"], ...
    ] = ("logistic_regression", "hist_gradient_boosting", "random_forest")
    budget_s: float = Field(default=60.0, gt=0, description="tuning time budget per run")
    seed: int = 42
    every: int | None = Field(
        default=None,
        ge=10,
        description="also retrain on the last W examples every N examples (learner-scheduled)",
    )


class Policy(Record):
    """Metrics, drift, retraining and promotion rules of one stream."""

    primary_metric: ClassificationMetric | RegressionMetric | None = None
    rolling_window: int = Field(default=1000, ge=10)
    drift: DriftPolicy = Field(default_factory=DriftPolicy)
    retrain: RetrainPolicy = Field(default_factory=RetrainPolicy)
    online_version_every: int = Field(
        default=2000, ge=1, description="register the online model every K examples"
    )
    promotion: Literal["direct", "shadow"] = "direct"
    margin: float = Field(default=0.0, ge=0, description="how much a candidate must win by")
    segment_feature: str | None = None
    max_gap: float = Field(default=0.1, ge=0, description="max metric gap between segments")
    shadow_min_examples: int = Field(default=500, ge=1)
    shadow_confidence: float = Field(default=0.95, gt=0.5, lt=1)
    rollback_margin: float = Field(default=0.05, ge=0)
    frozen: bool = False

    def primary_metric_for(self, label_kind: Literal["class", "number"]) -> str:
        """The primary metric, defaulting by label kind (accuracy or MAE)."""
        if self.primary_metric is not None:
            return self.primary_metric
        return "accuracy" if label_kind == "class" else "mae"


class StreamConfig(Event):
    """Sent by ``driftline spec publish`` to ``streams`` (key: the stream name).

    ``version`` is None in a file and assigned on publish (latest + 1). Schema version 2
    added ``policy.retrain.every``; version 3 ``policy.drift.data_drift_retrains`` and
    ``policy.drift.exclude_features``.
    """

    SCHEMA_VERSION: ClassVar[int] = 3

    event_type: Literal["stream_config"] = "stream_config"
    schema_version: int = Field(default=3, ge=1, description="version of this event's schema")
    stream: StrictStr = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._-]+$")
    version: int | None = Field(default=None, ge=1)
    spec: Spec
    model: ModelSpec = Field(default_factory=ModelSpec)
    policy: Policy = Field(default_factory=Policy)

    @model_validator(mode="after")
    def _cross_checks(self) -> Self:
        kind = self.spec.label.kind
        metric = self.policy.primary_metric
        if metric is not None:
            wanted = (
                ("accuracy", "f1_macro", "log_loss") if kind == "class" else ("mae", "rmse", "r2")
            )
            if metric not in wanted:
                raise ValueError(
                    f"policy.primary_metric {metric!r} does not fit a {kind} label "
                    f"(use one of {', '.join(wanted)})"
                )
        for name in self.policy.drift.exclude_features:
            if self.spec.feature(name) is None:
                raise ValueError(
                    f"policy.drift.exclude_features: {name!r} is not a feature of the spec"
                )
        seg = self.policy.segment_feature
        if seg is not None:
            feature = self.spec.feature(seg)
            if feature is None:
                raise ValueError(f"policy.segment_feature {seg!r} is not a feature of the spec")
            if feature.type == "number":
                raise ValueError(f"policy.segment_feature {seg!r} must be a category or bool")
        return self

    def spec_sha256(self) -> str:
        """sha256 of the spec's canonical JSON: the identity models are checked against."""
        return hashlib.sha256(
            canonical_json(self.spec.model_dump(mode="json")).encode()
        ).hexdigest()

    def config_sha256(self) -> str:
        """sha256 of the whole config (spec, model, policy), without the envelope fields."""
        body = self.model_dump(mode="json", include={"stream", "spec", "model", "policy"})
        return hashlib.sha256(canonical_json(body).encode()).hexdigest()
