"""The evaluator's own settings (``DRIFTLINE_EVALUATOR_*``).

>>> s = EvaluatorSettings.load(env={"DRIFTLINE_EVALUATOR_SNAPSHOT_EVERY": "100"})
>>> s.snapshot_every, s.metrics_port, s.group_id
(100, 9105, 'driftline-evaluator')
>>> EvaluatorSettings.load(env={"DRIFTLINE_EVALUATOR_JOIN_WINDOW_S": "0"})
Traceback (most recent call last):
...
services.common.errors.ConfigError: DRIFTLINE_EVALUATOR_JOIN_WINDOW_S: ...
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.common.settings import SettingsBase


class EvaluatorSettings(SettingsBase):
    """Leadership group, snapshot cadence, join window, decision cadence, checkpoints.

    The decision thresholds themselves (``shadow_min_examples``, ``shadow_confidence``,
    ``margin``, ``rollback_margin``, ``rolling_window``, ``frozen``) come from each
    stream's policy; these settings only say how often to look and how much to keep.
    """

    model_config = SettingsConfigDict(
        env_prefix="DRIFTLINE_EVALUATOR_", frozen=True, extra="ignore"
    )

    group_id: str = Field(
        default="driftline-evaluator",
        min_length=1,
        description="consumer group; the member holding its one partition is the active one",
    )
    snapshot_every: int = Field(
        default=500, ge=1, description="examples per (stream, version, role) between snapshots"
    )
    join_window_s: float = Field(
        default=3600.0, gt=0, description="how long a shadow pair waits for its label"
    )
    join_max_pending: int = Field(
        default=100_000, ge=1, description="shadow pairs waiting at most (oldest dropped)"
    )
    dedupe_ids: int = Field(
        default=200_000, ge=1, description="example ids remembered per stream for de-duplication"
    )
    look_every: int = Field(
        default=50, ge=1, description="paired examples between two looks of the promotion test"
    )
    rollback_min_examples: int | None = Field(
        default=None,
        ge=1,
        description="pairs before the rollback rule may act (default: shadow_min_examples)",
    )
    start_from: Literal["earliest", "latest"] = Field(
        default="earliest", description="where a first start (no checkpoint) begins reading"
    )
    online_challenger: bool = Field(
        default=True,
        description="challenge a batch champion with the latest online snapshot when no "
        "challenger is set",
    )
    follow: bool = Field(
        default=True,
        description="keep loaded online snapshots learning from examples.valid as the "
        "learner does, each record after it was scored (false: score snapshots as taken)",
    )
    nice: int = Field(
        default=10,
        ge=0,
        le=19,
        description="niceness the evaluator adds to itself at start (and to its session's "
        "autogroup when it leads its session): its scoring and its followers' learning are "
        "off the hot path, so on a shared machine the learner and serving come first "
        "(0: the same priority as they have)",
    )
    checkpoint_every: int = Field(default=2000, ge=1, description="records between checkpoints")
    checkpoint_interval_s: float = Field(default=10.0, gt=0, description="or this many seconds")
    models_timeout_s: float = Field(
        default=60.0, gt=0, description="wait at most this long for the models topic at start"
    )
    max_poll_records: int = Field(default=1000, ge=1)
    session_timeout_ms: int = Field(default=10_000, ge=1000)
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(default=9105, ge=0, le=65535, description="0: no endpoint")
    metrics_streams: int = Field(
        default=100,
        ge=0,
        description="streams with series of their own on /metrics, the busiest by labelled "
        'examples; the others\' counts are summed under stream="(other)" and their gauges '
        "left out (0: every stream)",
    )
