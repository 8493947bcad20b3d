"""The registry server's own settings, read from ``DRIFTLINE_REGISTRY_*`` variables.

The database URL is a shared setting (``DRIFTLINE_REGISTRY_URL``, see
:class:`~services.common.settings.DriftlineSettings`), so it is not repeated here.

>>> s = RegistrySettings.load(env={"DRIFTLINE_REGISTRY_PORT": "8400"})
>>> s.host, s.port, s.relay_interval_s
('127.0.0.1', 8400, 2.0)
>>> RegistrySettings.load(env={"DRIFTLINE_REGISTRY_RELAY_INTERVAL_S": "0"})
Traceback (most recent call last):
...
services.common.errors.ConfigError: DRIFTLINE_REGISTRY_RELAY_INTERVAL_S: ...
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.common.settings import SettingsBase


class RegistrySettings(SettingsBase):
    """Where the registry's HTTP API listens and how often it relays its outbox."""

    model_config = SettingsConfigDict(env_prefix="DRIFTLINE_REGISTRY_", frozen=True, extra="ignore")

    host: str = Field(default="127.0.0.1", min_length=1, description="address the HTTP API binds")
    port: int = Field(
        default=8300, ge=0, le=65535, description="port of the HTTP API (0: any free port)"
    )
    max_blob_bytes: int = Field(
        default=1 << 30,
        ge=1024,
        le=1 << 40,
        description="largest artifact or checkpoint a service may upload (PUT /uploads; 413 above)",
    )
    max_body_bytes: int = Field(
        default=1024 * 1024,
        ge=1024,
        le=2**31,
        description="larger HTTP request bodies are refused with 413",
    )
    relay_interval_s: float = Field(
        default=2.0,
        gt=0,
        le=3600,
        description="how often pending outbox rows are relayed to Kafka (rows left by a "
        "crashed writer included)",
    )
