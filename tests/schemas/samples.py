"""One valid instance of every event class, for contract tests."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from schemas import (
    AliasMoved,
    AliasReason,
    ArtifactRef,
    DeadLetter,
    DriftDetected,
    Event,
    LabelledExample,
    Lineage,
    MetricSnapshot,
    ModelAnswer,
    ModelLoaded,
    ModelLoadFailed,
    ModelVersionPublished,
    OffsetRange,
    Prediction,
    PredictionRequest,
    ReasonCode,
    RetrainRequested,
    ShadowPair,
    StreamConfig,
)

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
SHA = "ab" * 32
REQ = uuid.UUID("00000000-0000-4000-8000-000000000001")


def samples() -> list[Event]:
    """A realistic instance of every event class of the contract."""
    answer = ModelAnswer(model="sea", version=3, prediction=True, probabilities={"True": 0.8})
    return [
        LabelledExample(
            stream="sea",
            example_id="e-1",
            features={"x1": 1.5, "n": 3, "color": "red", "flag": True, "gap": None},
            label=True,
            event_time=T0,
            spec_version=2,
            raw_event_id=REQ,
        ),
        DeadLetter(
            reason=ReasonCode.OUT_OF_RANGE,
            detail="x1=99 is above max 10",
            service="validator",
            source_topic="driftline.examples.raw",
            source_partition=1,
            source_offset=42,
            source_key=b"sea",
            original=b'{"not": "valid"}\xff',
            stream="sea",
            example_id="e-1",
        ),
        StreamConfig.model_validate(
            {
                "stream": "sea",
                "version": 1,
                "spec": {
                    "features": [
                        {"name": "x1", "type": "number", "min": 0, "max": 10},
                        {"name": "color", "type": "category", "categories": ["red", "blue"]},
                    ],
                    "label": {"kind": "class", "classes": [False, True]},
                },
                "policy": {"segment_feature": "color", "promotion": "shadow"},
            }
        ),
        DriftDetected(
            stream="sea",
            kind="concept",
            detector="ADWIN",
            topic="driftline.examples.valid",
            partition=0,
            offset=5000,
            event_time=T0,
            example_count=5001,
            statistics={"estimation": 0.31, "width": 812.0},
        ),
        RetrainRequested(stream="sea", window=5000),
        ModelVersionPublished(
            model="sea",
            version=3,
            kind="batch",
            flavor="sklearn",
            algorithm="HistGradientBoostingClassifier",
            params={"max_depth": 6, "learning_rate": 0.1},
            metrics={"accuracy": 0.91},
            artifact=ArtifactRef(
                uri="file:///tmp/a/" + SHA, sha256=SHA, signature="cd" * 32, key_id="k1", size=9
            ),
            spec_sha256=SHA,
            lineage=Lineage(
                ranges=(
                    OffsetRange(topic="driftline.examples.valid", partition=0, start=0, end=10),
                ),
                event_time_start=T0,
                event_time_end=T0,
                example_count=10,
            ),
            parent_version=2,
        ),
        AliasMoved(
            model="sea",
            alias="champion",
            from_version=2,
            to_version=3,
            reason=AliasReason.PROMOTED,
            actor="trainer",
            evidence={"holdout_accuracy": 0.91, "champion_accuracy": 0.72},
        ),
        ModelLoaded(replica_id="serving-1", model="sea", version=3, alias="champion", load_ms=12.5),
        ModelLoadFailed(
            replica_id="serving-1", model="sea", version=4, reason="bad_signature", detail="..."
        ),
        PredictionRequest(stream="sea", example_id="e-2", features={"x1": 2.0}),
        Prediction(
            stream="sea", example_id="e-2", request_event_id=REQ, answer=answer, latency_ms=1.2
        ),
        ShadowPair(
            stream="sea", example_id="e-2", request_event_id=REQ, champion=answer, challenger=answer
        ),
        MetricSnapshot(
            stream="sea",
            model="sea",
            version=3,
            source="evaluator",
            role="champion",
            values={"rolling_accuracy": 0.9, "accuracy": 0.88},
            window=1000,
            example_count=12000,
            event_time=T0,
        ),
    ]
