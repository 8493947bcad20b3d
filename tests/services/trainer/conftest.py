"""Fixtures of the trainer's unit tests: a SQLite registry and a trainer on fake replay."""

from __future__ import annotations

import concurrent.futures as cf
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from schemas import StreamConfig
from services.common.settings import DriftlineSettings
from services.registry.client import Registry
from services.trainer.runner import Trainer
from tests.keys import private_key_for
from tests.services.trainer.support import FakeReplay

KEY = private_key_for("trainer-test-signing-key-0123")


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    settings = DriftlineSettings.load(
        env={}, data_dir=tmp_path, signing_key=KEY, signing_key_id="k1"
    )
    reg = Registry.open(settings, relay=False)
    yield reg
    reg.close()


@pytest.fixture
def pool() -> Iterator[cf.ThreadPoolExecutor]:
    # one worker: threadpoolctl limits are process-wide, so threads fitting side by side
    # would change each other's thread counts (the service uses processes)
    executor = cf.ThreadPoolExecutor(max_workers=1)
    yield executor
    executor.shutdown(wait=True)


@pytest.fixture
def make_trainer(registry: Registry, pool: cf.ThreadPoolExecutor) -> Callable[..., Trainer]:
    def make(
        configs: dict[str, StreamConfig],
        replay: FakeReplay,
        pause: Any = None,
        drift_wait_s: float = 0.0,
        broker_retries: int = 0,
    ) -> Trainer:
        return Trainer(
            registry=registry,
            configs=configs.get,
            replay=replay,
            pool=pool,
            pause=pause,
            drift_wait_s=drift_wait_s,
            broker_retries=broker_retries,
            retry_backoff_s=0.01,
        )

    return make
