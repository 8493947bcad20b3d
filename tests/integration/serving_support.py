"""Shared pieces of the subscriber and serving integration tests: real models registered
through the registry (which announces them on the ``models`` topic), a server runner."""

from __future__ import annotations

import itertools
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from river import linear_model, preprocessing
from river.datasets import synth

from schemas import AliasReason, Spec, StreamConfig
from services.common.predictor import Predictor
from services.common.settings import DriftlineSettings
from services.registry.client import ANY, Registry
from tests.integration.processes import start_service
from tests.keys import private_key_for, public_key_for

KEY = private_key_for("serving-test-signing-key")
FEATURES = ("x0", "x1", "x2")
SPEC = Spec.model_validate(
    {
        "features": [{"name": f, "type": "number", "min": 0, "max": 10} for f in FEATURES],
        "label": {"kind": "class", "classes": [False, True]},
    }
)


def spec_sha256() -> str:
    """The sha256 of :data:`SPEC` as a stream config computes it."""
    return StreamConfig(stream="sea", version=1, spec=SPEC).spec_sha256()


def sea_rows(n: int, seed: int) -> list[tuple[dict[str, float], bool]]:
    """``n`` examples of River's SEA stream with features ``x0..x2``."""
    return [
        ({f"x{i}": float(v) for i, v in x.items()}, bool(y))
        for x, y in itertools.islice(synth.SEA(seed=seed, variant=seed % 4), n)
    ]


def predictor(n: int, seed: int) -> Predictor:
    """A River logistic regression trained on ``n`` SEA examples."""
    model = preprocessing.StandardScaler() | linear_model.LogisticRegression()
    for x, y in sea_rows(n, seed):
        model.learn_one(x, y)
    return Predictor.river(model, spec=SPEC, spec_sha256=spec_sha256())


def register(registry: Registry, model: str, seed: int, *, n: int = 300) -> int:
    """Register a new version (announced on the models topic); returns its number."""
    version = registry.register_version(
        model=model, kind="batch", predictor=predictor(n, seed), metrics={"seed": float(seed)}
    )
    return version.version


def move(registry: Registry, model: str, alias: str, version: int | None) -> None:
    """Point ``alias`` at ``version`` (announced on the models topic)."""
    registry.move_alias(
        model=model,
        alias=alias,
        to_version=version,
        expect=ANY,
        reason=AliasReason.MANUAL,
        actor="test",
    )


def signed(settings_factory: Callable[..., DriftlineSettings], **extra: Any) -> DriftlineSettings:
    """Settings on the test broker with this module's signing key."""
    return settings_factory(signing_key=KEY, signing_key_id="k1", **extra)


def tamper(registry: Registry, model: str, version: int) -> None:
    """Flip one byte of a stored artifact, as an attacker with disk access would."""
    found = registry.get_version(model=model, version=version)
    assert found is not None
    path = Path(found.artifact.uri.removeprefix("file://"))
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))


def serving_env(settings: DriftlineSettings, port: int, **extra: str) -> dict[str, str]:
    """The environment of a serving process on the test's broker and prefix."""
    return os.environ | {
        "DRIFTLINE_KAFKA_BOOTSTRAP": settings.bootstrap,
        "DRIFTLINE_TOPIC_PREFIX": settings.topic_prefix,
        "DRIFTLINE_DATA_DIR": str(settings.data_path),
        "DRIFTLINE_VERIFY_KEYS": f"k1:{public_key_for('serving-test-signing-key')}",
        "DRIFTLINE_SERVING_PORT": str(port),
        "DRIFTLINE_SERVING_SESSION_TIMEOUT_MS": "6000",
        "PYTHONPATH": str(Path.cwd()),
        **extra,
    }


def start_serving(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """``python -m services.serving`` with its log in ``log``."""
    return start_service("serving", env, log)
