"""The spec registry, the duplicate index, metrics, settings, and the purity of the core."""

from __future__ import annotations

import ast
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from schemas import StreamConfig
from services.common.errors import ConfigError
from services.validator.dedupe import DuplicateIndex
from services.validator.metrics import ValidatorMetrics
from services.validator.rules import QualityStats
from services.validator.settings import ValidatorSettings
from services.validator.specs import HISTORY_PER_STREAM, SpecRegistry

ROOT = Path(__file__).resolve().parents[3]
PURE = [
    "services/validator/rules.py",
    "services/validator/specs.py",
    "services/validator/dedupe.py",
    "services/ingest/datasets.py",
    "services/ingest/sources.py",
    "services/ingest/infer.py",
]
IO_PACKAGES = {"kafka", "aiokafka", "faust", "mode", "sqlalchemy", "psycopg", "socket", "requests"}


def cfg(stream: str = "s", version: int | None = 1, max_x: float = 10) -> StreamConfig:
    return StreamConfig.model_validate(
        {
            "stream": stream,
            "version": version,
            "spec": {
                "features": [{"name": "x", "type": "number", "max": max_x}],
                "label": {"kind": "class", "classes": ["a", "b"]},
            },
        }
    )


@pytest.mark.parametrize("path", PURE)
def test_core_modules_are_pure(path: str) -> None:
    tree = ast.parse((ROOT / path).read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & IO_PACKAGES, f"{path} imports {imported & IO_PACKAGES}"


def test_importing_the_core_loads_no_client() -> None:
    import subprocess

    code = (
        "import sys, services.validator.rules, services.ingest.infer; "
        "print(sorted(m for m in ('kafka', 'faust', 'aiokafka') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# -- specs ---------------------------------------------------------------------------


def test_latest_version_wins_whatever_the_order() -> None:
    reg = SpecRegistry()
    assert reg.apply(cfg(version=2))
    assert not reg.apply(cfg(version=1))  # an older version read later
    assert reg.latest("s").version == 2  # type: ignore[union-attr]
    assert reg.get("s", 1).version == 1  # type: ignore[union-attr]
    assert reg.apply(cfg(version=2, max_x=5))  # the same version read later replaces it
    assert reg.latest("s").features[0].max == 5  # type: ignore[union-attr]
    assert reg.versions() == {"s": 2} and len(reg) == 1


def test_streams_are_independent_and_removable() -> None:
    reg = SpecRegistry()
    reg.apply(cfg("a"))
    reg.apply(cfg("b", version=3))
    assert reg.versions() == {"a": 1, "b": 3}
    assert reg.remove("a") and not reg.remove("a")
    assert reg.latest("a") is None and reg.get("a", 1) is None


def test_history_is_bounded() -> None:
    reg = SpecRegistry()
    for v in range(1, HISTORY_PER_STREAM + 6):
        reg.apply(cfg(version=v))
    assert reg.get("s", 1) is None
    assert reg.get("s", HISTORY_PER_STREAM + 5) is not None


def test_a_config_without_version_is_refused() -> None:
    with pytest.raises(ValueError, match="needs a version"):
        SpecRegistry().apply(cfg(version=None))


def test_compiled_classes_tell_types_apart() -> None:
    config = StreamConfig.model_validate(
        {
            "stream": "s",
            "version": 1,
            "spec": {
                "features": [{"name": "x", "type": "bool"}],
                "label": {"kind": "class", "classes": [1, "1"]},
            },
        }
    )
    reg = SpecRegistry()
    reg.apply(config)
    classes = reg.latest("s").classes  # type: ignore[union-attr]
    assert classes[(int, 1)] == 1 and classes[(str, "1")] == "1"
    assert (bool, True) not in classes and (float, 1.0) not in classes


# -- dedupe --------------------------------------------------------------------------


def test_index_remembers_raw_id_and_version() -> None:
    index = DuplicateIndex()
    raw = uuid.uuid4()
    index.record("s", "1", raw, 7, digest=2**64 - 1)
    found = index.get("s", "1")
    assert found is not None and found.raw_event_id == raw and found.spec_version == 7
    assert found.digest == 2**64 - 1
    assert index.get("t", "1") is None and index.get("s", "2") is None


def test_index_is_bounded_but_keeps_the_last_window() -> None:
    index = DuplicateIndex(window=100)
    ids = [uuid.uuid4() for _ in range(1000)]
    for i, raw in enumerate(ids):
        index.record("s", str(i), raw, 1, digest=i)
        assert len(index) <= 200
    for i in range(900, 1000):
        assert index.get("s", str(i)) is not None, i
    assert index.get("s", "0") is None


def test_index_window_must_be_positive() -> None:
    with pytest.raises(ValueError):
        DuplicateIndex(window=0)


# -- metrics and settings -------------------------------------------------------------


def test_metrics_observe_and_spec_versions() -> None:
    m = ValidatorMetrics()
    stats = QualityStats()
    stats.rejected[("s", "out_of_range")] += 2
    stats.values[("s", "x")] += 5
    stats.missing[("s", "x")] += 1
    stats.out_of_range[("s", "x")] += 2
    m.observe(stats)
    assert not stats.rejected
    m.set_spec_versions({"s": 2, "t": 1})
    m.set_spec_versions({"s": 3})
    text = m.metrics.render().decode()
    for line in (
        'driftline_validator_rejected_total{reason="out_of_range",stream="s"} 2.0',
        'driftline_validator_feature_values_total{feature="x",stream="s"} 5.0',
        'driftline_validator_feature_missing_total{feature="x",stream="s"} 1.0',
        'driftline_validator_feature_out_of_range_total{feature="x",stream="s"} 2.0',
        'driftline_validator_spec_version{stream="s"} 3.0',
    ):
        assert line in text
    assert 'spec_version{stream="t"}' not in text


def test_settings_from_environment() -> None:
    env: dict[str, Any] = {
        "DRIFTLINE_VALIDATOR_MAX_MESSAGE_BYTES": "1024",
        "DRIFTLINE_VALIDATOR_GROUP_ID": "g",
        "DRIFTLINE_VALIDATOR_METRICS_PORT": "0",
    }
    s = ValidatorSettings.load(env=env)
    assert (s.max_message_bytes, s.group("p."), s.metrics_port) == (1024, "g", 0)
    with pytest.raises(ConfigError, match="DRIFTLINE_VALIDATOR_METRICS_PORT"):
        ValidatorSettings.load(env={"DRIFTLINE_VALIDATOR_METRICS_PORT": "99999"})


def test_main_fails_on_a_bad_setting(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from services.validator.__main__ import main

    monkeypatch.setenv("DRIFTLINE_VALIDATOR_BATCH_SIZE", "0")
    assert main([]) == 2
    assert "DRIFTLINE_VALIDATOR_BATCH_SIZE" in capsys.readouterr().err


def test_python_m_and_entry_point() -> None:
    import subprocess
    from importlib.metadata import entry_points

    assert "validator" in {ep.name for ep in entry_points(group="driftline.services")}
    out = subprocess.run(
        [sys.executable, "-m", "services.validator", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "DRIFTLINE_VALIDATOR_" in out.stdout


def test_kafka_python_and_aiokafka_partition_keys_alike() -> None:
    """Valid examples keep their raw partition explicitly; were they re-keyed instead, the
    two clients' default partitioners (Java's murmur2) would still agree."""
    from aiokafka.partitioner import murmur2 as aiokafka_murmur2
    from kafka.partitioner.default import murmur2 as kafka_murmur2

    keys = [f"stream-{i}".encode() for i in range(500)] + [b"", b"\xff\x00"]
    for key in keys:
        assert (kafka_murmur2(key) & 0x7FFFFFFF) % 4 == (aiokafka_murmur2(key) & 0x7FFFFFFF) % 4
