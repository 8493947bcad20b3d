"""Every registry test runs on SQLite and on a real PostgreSQL started for the run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from services.common.settings import DriftlineSettings
from services.registry.client import Registry
from tests.keys import private_key_for

KEY = private_key_for("test-signing-key-0123456789")


@pytest.fixture
def settings(registry_url: str, tmp_path: Path) -> DriftlineSettings:
    """Settings with a signing key and this test's database and artifact dir."""
    return DriftlineSettings.load(
        env={},
        data_dir=tmp_path,
        registry_url=registry_url,
        signing_key=KEY,
        signing_key_id="k1",
    )


@pytest.fixture
def registry(settings: DriftlineSettings) -> Iterator[Registry]:
    """An open registry (no Kafka relay: events wait in the outbox)."""
    reg = Registry.open(settings, relay=False)
    yield reg
    reg.close()


@pytest.fixture
def settings_env(settings: DriftlineSettings, registry_url: str) -> dict[str, str]:
    """The environment that gives a subprocess the same registry as ``settings``."""
    return {
        "DRIFTLINE_DATA_DIR": str(settings.data_path),
        "DRIFTLINE_REGISTRY_URL": registry_url,
        "DRIFTLINE_SIGNING_KEY": KEY,
        "DRIFTLINE_SIGNING_KEY_ID": "k1",
    }
