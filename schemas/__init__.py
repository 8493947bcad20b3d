"""driftline's wire contract: pydantic models of every event, and the topic catalogue.

This package imports nothing else of driftline's.
"""

from schemas.base import Event, Record, derive_id, utcnow
from schemas.dead_letter import DeadLetter, ReasonCode
from schemas.drift import DriftDetected, RetrainRequested
from schemas.examples import LabelledExample
from schemas.fleet import ModelLoaded, ModelLoadFailed
from schemas.lineage import Lineage, OffsetRange
from schemas.metrics import MetricSnapshot
from schemas.models import (
    AliasMoved,
    AliasReason,
    ArtifactRef,
    EventSignature,
    ModelVersionPublished,
)
from schemas.predictions import ModelAnswer, Prediction, PredictionRequest, ShadowPair
from schemas.streams import FeatureSpec, LabelSpec, ModelSpec, Policy, Spec, StreamConfig
from schemas.topics import CATALOGUE, Topics, TopicSpec, event_classes

__all__ = [
    "CATALOGUE",
    "AliasMoved",
    "AliasReason",
    "ArtifactRef",
    "EventSignature",
    "DeadLetter",
    "DriftDetected",
    "Event",
    "FeatureSpec",
    "LabelSpec",
    "LabelledExample",
    "Lineage",
    "MetricSnapshot",
    "ModelAnswer",
    "ModelLoadFailed",
    "ModelLoaded",
    "ModelSpec",
    "ModelVersionPublished",
    "OffsetRange",
    "Policy",
    "Prediction",
    "PredictionRequest",
    "Record",
    "ReasonCode",
    "RetrainRequested",
    "ShadowPair",
    "Spec",
    "StreamConfig",
    "TopicSpec",
    "Topics",
    "derive_id",
    "event_classes",
    "utcnow",
]
