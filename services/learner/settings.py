"""The learner's own settings (``DRIFTLINE_LEARNER_*``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.common.membership import INSTANCE_ID_PATTERN, instance_id
from services.common.settings import DriftlineSettings, SettingsBase


class LearnerSettings(SettingsBase):
    """Consumer group (static membership), checkpoint cadence, metrics endpoint."""

    model_config = SettingsConfigDict(env_prefix="DRIFTLINE_LEARNER_", frozen=True, extra="ignore")

    group_id: str = Field(default="driftline-learner", min_length=1)
    checkpoint_every: int = Field(
        default=2000,
        ge=1,
        description="examples between checkpoints; a changed stream is saved once it "
        "learned this many since its last checkpoint",
    )
    checkpoint_interval_s: float = Field(
        default=10.0, gt=0, description="or this many seconds (a stream: its change's age)"
    )
    serialise_budget: float = Field(
        default=0.03,
        gt=0,
        le=1,
        description="largest share of the learner's time spent serialising: after an "
        "online snapshot or a checkpoint that took t seconds, the next waits at least "
        "t * (1 - budget) / budget seconds (a snapshot due before then is skipped: the "
        "next multiple of policy.online_version_every takes it; 1: no wait)",
    )
    first_version_at: int = Field(
        default=100,
        ge=0,
        description="a new stream's first online version is registered after this many "
        "examples when that is sooner than policy.online_version_every, so serving and "
        "the evaluator have a model to follow (and keep learning) within seconds instead of "
        "after K examples; 0: every K examples only",
    )
    metrics_every: int | None = Field(
        default=None, ge=1, description="examples between metric snapshots (default: window)"
    )
    dedupe_window: int = Field(
        default=100_000, ge=1, description="example ids remembered per stream for de-duplication"
    )
    max_poll_records: int = Field(default=1000, ge=1)
    session_timeout_ms: int = Field(
        default=10_000,
        ge=1000,
        description="how soon the partitions of a replica that died (and did not come back) "
        "move to another; a restarted replica takes its own back at once",
    )
    instance_id: str | None = Field(
        default=None,
        pattern=INSTANCE_ID_PATTERN,
        description="static group member id, stable across restarts of this replica and "
        "distinct between replicas (default: learner-<host>-<slot>, see "
        "services.common.membership)",
    )
    leave_on_stop: bool = Field(
        default=True,
        description="on SIGTERM, leave the group so partitions move at once (false: keep "
        "them for this replica until the session timeout, for restarts in place)",
    )
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(default=9102, ge=0, le=65535, description="0: no endpoint")

    def member(self, settings: DriftlineSettings) -> str:
        """This replica's ``group_instance_id`` (the same on every call in a process).

        Raises ConfigError when the configured id is held by another process here.
        """
        return instance_id(
            service="learner",
            group=self.group_id,
            bootstrap=settings.bootstrap,
            configured=self.instance_id,
            setting="DRIFTLINE_LEARNER_INSTANCE_ID",
        )
