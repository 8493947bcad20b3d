"""Serving's own settings (``DRIFTLINE_SERVING_*``).

>>> s = ServingSettings.load(
...     env={"DRIFTLINE_SERVING_PINS": "sea:3", "DRIFTLINE_SERVING_MODELS": "sea"})
>>> s.pin_map(), s.model_filter(), s.followed_aliases(), s.port
({'sea': 3}, {'sea'}, ('champion', 'challenger'), 8400)
>>> ServingSettings.load(env={"DRIFTLINE_SERVING_PINS": "sea"})
Traceback (most recent call last):
...
services.common.errors.ConfigError: DRIFTLINE_SERVING_PINS: ...
"""

from __future__ import annotations

import os
import re
import socket

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from services.common.settings import SettingsBase

_NAME = re.compile(r"^[A-Za-z0-9._-]+$")


class ServingSettings(SettingsBase):
    """HTTP address, what to follow, the Kafka path and shadowing."""

    model_config = SettingsConfigDict(env_prefix="DRIFTLINE_SERVING_", frozen=True, extra="ignore")

    host: str = Field(default="127.0.0.1", description="HTTP bind address")
    port: int = Field(default=8400, ge=0, le=65535, description="HTTP port (0: any free port)")
    replica_id: str | None = Field(
        default=None, min_length=1, description="names this replica in models.acks"
    )
    models: str | None = Field(
        default=None, description="comma-separated models to serve (default: every model)"
    )
    alias: str = Field(default="champion", pattern=r"^[A-Za-z0-9_-]+$", description="served")
    shadow: bool = Field(default=True, description="also load the challenger and shadow it")
    shadow_alias: str = Field(default="challenger", pattern=r"^[A-Za-z0-9_-]+$")
    shadow_queue: int = Field(
        default=10_000, ge=1, description="pending shadow scorings; beyond, pairs are dropped"
    )
    pins: str | None = Field(
        default=None, description="model:version pins, comma-separated (override aliases)"
    )
    kafka: bool = Field(default=True, description="answer predictions.requests too")
    follow: bool = Field(
        default=True,
        description="keep a served online snapshot learning from examples.valid, as the "
        "learner does (false: serve each snapshot as it was taken)",
    )
    follow_catch_up_s: float = Field(
        default=60.0,
        gt=0,
        description="how long a new online snapshot may catch up before it is served anyway",
    )
    group_id: str = Field(default="driftline-serving", min_length=1)
    session_timeout_ms: int = Field(default=10_000, ge=1000)
    max_poll_records: int = Field(default=500, ge=1)
    strict_spec: bool = Field(
        default=False,
        description="refuse (HTTP 422) rows with values outside the stream's spec (a number "
        "beyond min/max, an unknown category) instead of answering and flagging them",
    )
    max_body_bytes: int = Field(
        default=64 * 1024 * 1024,
        ge=1024,
        le=2**31,
        description="larger HTTP request bodies are refused with 413",
    )
    ready_timeout_s: float = Field(
        default=30.0,
        ge=0,
        le=600,
        description="at start-up, HTTP stays closed until the models topic is read and the "
        "served versions are loaded, at most this long (then it opens; /readyz says 503)",
    )

    @field_validator("pins")
    @classmethod
    def _check_pins(cls, value: str | None) -> str | None:
        if value is not None:
            _parse_pins(value)
        return value

    @field_validator("models")
    @classmethod
    def _check_models(cls, value: str | None) -> str | None:
        if value is not None:
            bad = [m for m in _split(value) if not _NAME.match(m)]
            if bad or not _split(value):
                raise ValueError(f"must be model names separated by commas, got {value!r}")
        return value

    def model_filter(self) -> set[str] | None:
        """The models to serve (None: every model)."""
        return set(_split(self.models)) if self.models else None

    def pin_map(self) -> dict[str, int]:
        """``model -> version`` pins."""
        return _parse_pins(self.pins) if self.pins else {}

    def followed_aliases(self) -> tuple[str, ...]:
        """The served alias first, then the shadowed one (when shadowing)."""
        if self.shadow and self.shadow_alias != self.alias:
            return (self.alias, self.shadow_alias)
        return (self.alias,)

    def replica(self) -> str:
        """This replica's id: the setting, else ``serving-<host>-<pid>``."""
        return self.replica_id or f"serving-{socket.gethostname()}-{os.getpid()}"


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _parse_pins(text: str) -> dict[str, int]:
    pins: dict[str, int] = {}
    for item in _split(text):
        model, sep, version = item.partition(":")
        if not sep or not _NAME.match(model) or not version.isdigit() or int(version) < 1:
            raise ValueError(f"{item!r} is not model:version (for example sea:3)")
        pins[model] = int(version)
    return pins
