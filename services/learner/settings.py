"""The learner's own settings (``DRIFTLINE_LEARNER_*``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.common.settings import SettingsBase


class LearnerSettings(SettingsBase):
    """Consumer group, checkpoint cadence, metrics endpoint."""

    model_config = SettingsConfigDict(env_prefix="DRIFTLINE_LEARNER_", frozen=True, extra="ignore")

    group_id: str = Field(default="driftline-learner", min_length=1)
    checkpoint_every: int = Field(default=2000, ge=1, description="examples between checkpoints")
    checkpoint_interval_s: float = Field(default=10.0, gt=0, description="or this many seconds")
    metrics_every: int | None = Field(
        default=None, ge=1, description="examples between metric snapshots (default: window)"
    )
    dedupe_window: int = Field(
        default=100_000, ge=1, description="example ids remembered per stream for de-duplication"
    )
    max_poll_records: int = Field(default=1000, ge=1)
    session_timeout_ms: int = Field(default=30_000, ge=1000)
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(default=9102, ge=0, le=65535, description="0: no endpoint")
