"""The trainer's own settings, read from ``DRIFTLINE_TRAINER_*`` variables.

>>> s = TrainerSettings.load(env={"DRIFTLINE_TRAINER_WORKERS": "3"})
>>> s.metrics_port, s.workers, s.group("driftline.")
(9103, 3, 'driftline.trainer')
>>> TrainerSettings.load(env={"DRIFTLINE_TRAINER_WORKERS": "0"})
Traceback (most recent call last):
...
services.common.errors.ConfigError: DRIFTLINE_TRAINER_WORKERS: ...
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.common.settings import SettingsBase


class TrainerSettings(SettingsBase):
    """Settings of ``driftline run trainer``; see the README's configuration table."""

    model_config = SettingsConfigDict(env_prefix="DRIFTLINE_TRAINER_", frozen=True, extra="ignore")

    metrics_port: int = Field(
        default=9103, ge=0, le=65535, description="port of /metrics (0: no endpoint)"
    )
    metrics_host: str = Field(default="127.0.0.1", description="address /metrics binds to")
    metrics_streams: int = Field(
        default=100,
        ge=0,
        description="streams with series of their own on /metrics, those with the most runs; "
        'the others are summed under stream="(other)" (0: every stream)',
    )
    workers: int = Field(
        default=2, ge=1, le=64, description="processes that fit candidates side by side"
    )
    fit_nice: int = Field(
        default=10,
        ge=0,
        le=19,
        description="niceness added to the processes that fit candidates: a fit takes only "
        "the CPU the learner, serving and the evaluator leave, so it never starves them",
    )
    max_run_s: float = Field(
        default=1800.0,
        ge=10,
        description="longest a run may take; the consumer's max poll interval is set above it",
    )
    drift_wait_s: float = Field(
        default=300.0,
        ge=0,
        description="how long a since_drift run waits for min_size examples after the drift",
    )
    broker_retries: int = Field(
        default=3,
        ge=0,
        le=20,
        description="times a run is retried after a broker error (backoff 2 s, doubling)",
    )
    session_timeout_s: float = Field(
        default=10.0, ge=1, le=300, description="consumer-group session timeout"
    )
    group_id: str | None = Field(
        default=None, description="consumer group (and faust app id); default <prefix>trainer"
    )
    pause_at: Literal["registered", "moved"] | None = Field(
        default=None,
        description="testing only: stop mid-run at this step (after registering the "
        "candidates, or after moving the alias) until the process is killed",
    )
    pause_file: Path | None = Field(
        default=None, description="testing only: touched when the run pauses at pause_at"
    )

    def group(self, topic_prefix: str) -> str:
        """The consumer group of the trainer under ``topic_prefix``."""
        return self.group_id or f"{topic_prefix}trainer"
