"""The Kafka backend seam without a broker: the setting, option and security mapping."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest

from services.common.errors import ConfigError
from services.common.kafka_backend import backend, is_fenced
from services.common.kafka_confluent import (
    ConfluentBackend,
    consumer_config,
    producer_config,
    security_config,
)
from services.common.settings import DriftlineSettings


def test_kafka_python_is_the_default_and_confluent_is_chosen_by_the_setting() -> None:
    assert backend(DriftlineSettings.load(env={})).name == "kafka-python"
    chosen = DriftlineSettings.load(env={"DRIFTLINE_KAFKA_CLIENT": "confluent"})
    assert isinstance(backend(chosen), ConfluentBackend)


def test_an_unknown_client_is_refused_naming_the_setting() -> None:
    with pytest.raises(ConfigError, match="DRIFTLINE_KAFKA_CLIENT"):
        DriftlineSettings.load(env={"DRIFTLINE_KAFKA_CLIENT": "pykafka"})


def test_confluent_without_the_extra_names_the_setting_and_the_fix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = importlib.util.find_spec

    def missing(name: str, *args: Any) -> Any:
        return None if name == "confluent_kafka" else real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", missing)
    with pytest.raises(ConfigError, match=r"DRIFTLINE_KAFKA_CLIENT.*driftline\[confluent\]"):
        DriftlineSettings.load(env={"DRIFTLINE_KAFKA_CLIENT": "confluent"})


def test_sasl_and_ssl_settings_map_to_librdkafka_names(tmp_path: Path) -> None:
    files = {}
    for name in ("ca", "cert", "key"):
        files[name] = tmp_path / f"{name}.pem"
        files[name].write_text("dummy")
    s = DriftlineSettings.load(
        env={
            "DRIFTLINE_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "DRIFTLINE_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "DRIFTLINE_KAFKA_SASL_USERNAME": "alice",
            "DRIFTLINE_KAFKA_SASL_PASSWORD": "pw",
            "DRIFTLINE_KAFKA_SSL_CAFILE": str(files["ca"]),
            "DRIFTLINE_KAFKA_SSL_CERTFILE": str(files["cert"]),
            "DRIFTLINE_KAFKA_SSL_KEYFILE": str(files["key"]),
            "DRIFTLINE_KAFKA_SSL_PASSWORD": "kp",
            "DRIFTLINE_KAFKA_SSL_CHECK_HOSTNAME": "false",
        }
    )
    assert security_config(s) == {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "alice",
        "sasl.password": "pw",
        "ssl.endpoint.identification.algorithm": "none",
        "ssl.ca.location": str(files["ca"]),
        "ssl.certificate.location": str(files["cert"]),
        "ssl.key.location": str(files["key"]),
        "ssl.key.password": "kp",
    }


def test_plaintext_passes_no_credentials() -> None:
    assert security_config(DriftlineSettings.load(env={})) == {"security.protocol": "PLAINTEXT"}


def test_kafka_python_option_names_map_and_unknown_ones_are_refused() -> None:
    assert consumer_config(
        {
            "session_timeout_ms": 6000,
            "heartbeat_interval_ms": 2000,
            "fetch_max_wait_ms": 20,
            "partition_assignment_strategy": ("CooperativeStickyAssignor",),
            "retries": 5,  # librdkafka retries by itself
        }
    ) == {
        "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 2000,
        "fetch.wait.max.ms": 20,
        "partition.assignment.strategy": "cooperative-sticky",
    }
    assert producer_config({"linger_ms": 5, "max_request_size": 2 << 20}) == {
        "linger.ms": 5,
        "message.max.bytes": 2 << 20,
    }
    with pytest.raises(ValueError, match="no producer option 'buffer_memory'"):
        producer_config({"buffer_memory": 1})


def test_fenced_errors_of_either_client_are_recognised() -> None:
    from confluent_kafka import KafkaError, KafkaException
    from kafka.errors import FencedInstanceIdError

    assert is_fenced(FencedInstanceIdError())
    assert is_fenced(KafkaException(KafkaError(KafkaError.FENCED_INSTANCE_ID)))
    assert not is_fenced(KafkaException(KafkaError(KafkaError._TRANSPORT)))
    assert not is_fenced(RuntimeError("fenced"))
