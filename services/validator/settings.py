"""The validator's own settings, read from ``DRIFTLINE_VALIDATOR_*`` variables.

>>> s = ValidatorSettings.load(env={"DRIFTLINE_VALIDATOR_METRICS_PORT": "0"})
>>> s.metrics_port, s.max_message_bytes, s.group("driftline.")
(0, 65536, 'driftline.validator')
>>> ValidatorSettings.load(env={"DRIFTLINE_VALIDATOR_BATCH_SIZE": "0"})
Traceback (most recent call last):
...
services.common.errors.ConfigError: DRIFTLINE_VALIDATOR_BATCH_SIZE: ...
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.common.membership import INSTANCE_ID_PATTERN, instance_id
from services.common.settings import DriftlineSettings, SettingsBase


class ValidatorSettings(SettingsBase):
    """Settings of ``driftline run validator``; see the README's configuration table."""

    model_config = SettingsConfigDict(
        env_prefix="DRIFTLINE_VALIDATOR_", frozen=True, extra="ignore"
    )

    max_message_bytes: int = Field(
        default=64 * 1024,
        ge=256,
        le=16 * 1024 * 1024,
        description="a raw message larger than this is dead-lettered as oversize",
    )
    metrics_port: int = Field(
        default=9101, ge=0, le=65535, description="port of /metrics (0: no endpoint)"
    )
    metrics_host: str = Field(default="127.0.0.1", description="address /metrics binds to")
    batch_size: int = Field(
        default=1000, ge=1, le=100_000, description="messages judged and acknowledged together"
    )
    batch_timeout_s: float = Field(
        default=0.1, gt=0, le=10, description="how long a batch waits to fill before it runs"
    )
    dedupe_window: int = Field(
        default=100_000,
        ge=1,
        description="accepted ids remembered per partition for duplicate detection (at "
        "least this many, at most twice)",
    )
    commit_interval_s: float = Field(
        default=1.0, gt=0, le=60, description="how often acknowledged offsets are committed"
    )
    session_timeout_s: float = Field(
        default=10.0,
        ge=1,
        le=300,
        description="consumer-group session timeout: how soon a dead validator's partitions "
        "move to another",
    )
    group_id: str | None = Field(
        default=None, description="consumer group (and faust app id); default <prefix>validator"
    )
    instance_id: str | None = Field(
        default=None,
        pattern=INSTANCE_ID_PATTERN,
        description="static group member id, stable across restarts of this replica and "
        "distinct between replicas (default: validator-<host>-<slot>, see "
        "services.common.membership)",
    )
    leave_on_stop: bool = Field(
        default=True,
        description="on SIGTERM, leave the group so partitions move at once (false: keep "
        "them for this replica until the session timeout, for restarts in place)",
    )
    metrics_streams: int = Field(
        default=100,
        ge=0,
        description="streams with series of their own on /metrics, the busiest by examples; "
        'the others are summed under stream="(other)" (0: every stream)',
    )
    feature_metrics: str = Field(
        default="top-10",
        pattern=r"^(all|none|top-[1-9][0-9]*)$",
        description="per-feature series (feature_values, _missing, _out_of_range): all, none "
        'or top-N (the N busiest streams); other streams get feature="(all)", their sum',
    )

    engine: Literal["auto", "faust", "loop"] = Field(
        default="auto",
        description="what consumes examples.raw: the batch loop (services/validator/loop.py) "
        "on either Kafka client (the default, auto), or faust (opt-in, on its own aiokafka)",
    )

    def uses_loop(self, kafka_client: str) -> bool:
        """Whether the batch loop (not faust) runs with the ``kafka_client`` backend: always,
        unless faust is asked for.

        >>> s = ValidatorSettings.load(env={})
        >>> s.uses_loop("confluent"), s.uses_loop("kafka-python")
        (True, True)
        >>> ValidatorSettings.load(env={"DRIFTLINE_VALIDATOR_ENGINE": "faust"}).uses_loop(
        ...     "kafka-python"
        ... )
        False
        """
        return self.engine != "faust"

    def feature_streams(self) -> int | None:
        """How many streams get per-feature series (None: all of them)."""
        if self.feature_metrics == "all":
            return None
        return 0 if self.feature_metrics == "none" else int(self.feature_metrics[4:])

    def group(self, topic_prefix: str) -> str:
        """The consumer group of the validator under ``topic_prefix``."""
        return self.group_id or f"{topic_prefix}validator"

    def member(self, settings: DriftlineSettings) -> str:
        """This replica's ``group_instance_id`` (the same on every call in a process).

        Raises ConfigError when the configured id is held by another process here.
        """
        return instance_id(
            service="validator",
            group=self.group(settings.topic_prefix),
            bootstrap=settings.bootstrap,
            configured=self.instance_id,
            setting="DRIFTLINE_VALIDATOR_INSTANCE_ID",
        )
