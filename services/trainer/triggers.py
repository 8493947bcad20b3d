"""What starts a training run: the trigger events, which of them retrain, and which earlier
run a drift belongs to (coalescing within the policy's cooldown)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from schemas import StreamConfig
from schemas.drift import DriftDetected, RetrainRequested
from services.common.errors import DriftlineError
from services.registry.client import TrainingRun

Trigger = DriftDetected | RetrainRequested


class UnknownStream(DriftlineError):
    """A trigger for a stream without a published config."""


def retrains(event: DriftDetected, config: StreamConfig | None) -> bool:
    """Whether a drift event starts a run (a data drift only when the policy asks)."""
    if event.kind == "concept":
        return True
    return config is not None and config.policy.drift.data_drift_retrains


def report_only(trigger: Trigger, config: StreamConfig) -> bool:
    """Whether ``trigger`` is a data drift that the stream's policy only reports."""
    return isinstance(trigger, DriftDetected) and not retrains(trigger, config)


def coalesce_with(
    trigger: Trigger, runs: Sequence[TrainingRun], *, cooldown: int
) -> TrainingRun | None:
    """The earlier run a drift event belongs to: one of the same stream triggered by drift
    within ``cooldown`` examples of it (manual requests never coalesce)."""
    if not isinstance(trigger, DriftDetected):
        return None
    for run in runs:
        if run.trigger.get("event_type") != "drift_detected":
            continue
        count = run.trigger.get("example_count")
        if isinstance(count, int) and abs(count - trigger.example_count) < max(1, cooldown):
            return run
    return None


def describe(trigger: Trigger) -> dict[str, Any]:
    """The trigger as recorded with its run."""
    return trigger.model_dump(mode="json")
