from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from services.common.errors import ConfigError
from services.common.kafka_client import client_config, fetch_config
from services.common.keys import load_private_key
from services.common.settings import DriftlineSettings
from services.common.signing import Keyring
from tests.keys import private_key_for, public_key_for


def test_defaults_follow_the_design() -> None:
    s = DriftlineSettings.load(env={})
    assert s.uses_local_broker and s.bootstrap == "127.0.0.1:9092"
    assert s.topic_prefix == "driftline."
    assert s.data_path == (Path.cwd() / ".driftline").resolve()
    assert s.registry_dsn == f"sqlite:///{s.data_path / 'registry.db'}"
    assert s.artifacts_location == (s.data_path / "artifacts").as_uri()
    assert s.signing_key is None and s.admin_token is None


@pytest.mark.parametrize(
    ("env", "setting"),
    [
        ({"DRIFTLINE_KAFKA_BOOTSTRAP": "localhost"}, "DRIFTLINE_KAFKA_BOOTSTRAP"),
        ({"DRIFTLINE_KAFKA_BOOTSTRAP": "h:99999"}, "DRIFTLINE_KAFKA_BOOTSTRAP"),
        ({"DRIFTLINE_TOPIC_PREFIX": "bad prefix!"}, "DRIFTLINE_TOPIC_PREFIX"),
        ({"DRIFTLINE_LOG_FORMAT": "xml"}, "DRIFTLINE_LOG_FORMAT"),
        ({"DRIFTLINE_KAFKA_TIMEOUT_S": "-1"}, "DRIFTLINE_KAFKA_TIMEOUT_S"),
        (
            {
                "DRIFTLINE_SIGNING_KEY": "an-hmac-secret-of-the-past",
                "DRIFTLINE_SIGNING_KEY_ID": "k",
            },
            "DRIFTLINE_SIGNING_KEY",
        ),
        ({"DRIFTLINE_VERIFY_KEYS": "nocolon"}, "DRIFTLINE_VERIFY_KEYS"),
        ({"DRIFTLINE_VERIFY_KEYS": "k1:not-a-public-key"}, "DRIFTLINE_VERIFY_KEYS"),
        ({"DRIFTLINE_VERIFY_KEYS": "k1:hmac:short"}, "DRIFTLINE_VERIFY_KEYS"),
        ({"DRIFTLINE_CHECKPOINT_KEY": "short"}, "DRIFTLINE_CHECKPOINT_KEY"),
        (
            {
                "DRIFTLINE_SIGNING_KEY": private_key_for("a"),
                "DRIFTLINE_SIGNING_KEY_ID": "k",
                "DRIFTLINE_VERIFY_KEYS": f"k:{public_key_for('b')}",
            },
            "DRIFTLINE_SIGNING_KEY_ID",
        ),
        ({"DRIFTLINE_KAFKA_SSL_CAFILE": "/nonexistent/ca.pem"}, "DRIFTLINE_KAFKA_SSL_CAFILE"),
        ({"DRIFTLINE_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}, "DRIFTLINE_KAFKA_SASL_MECHANISM"),
        ({"DRIFTLINE_SIGNING_KEY": private_key_for("x" * 32)}, "DRIFTLINE_SIGNING_KEY_ID"),
    ],
)
def test_bad_setting_is_named(env: dict[str, str], setting: str) -> None:
    with pytest.raises(ConfigError) as info:
        DriftlineSettings.load(env=env)
    assert setting in str(info.value)


def test_secrets_never_printed() -> None:
    s = DriftlineSettings.load(
        env={
            "DRIFTLINE_SIGNING_KEY": private_key_for("s3cret-s3cret-s3cret"),
            "DRIFTLINE_SIGNING_KEY_ID": "k1",
            "DRIFTLINE_ADMIN_TOKEN": "tok-123",
        }
    )
    assert "s3cret" not in repr(s) and "tok-123" not in repr(s)


def test_verification_keys_include_the_signing_key() -> None:
    s = DriftlineSettings.load(
        env={
            "DRIFTLINE_SIGNING_KEY": private_key_for("new"),
            "DRIFTLINE_SIGNING_KEY_ID": "k2",
            "DRIFTLINE_VERIFY_KEYS": f"k0:{public_key_for('other')},k1:hmac:old-key-old-key-1",
        }
    )
    ring = Keyring.from_settings(s)
    assert ring.can_sign and ring.signing_key_id == "k2"
    assert ring.verify_keys_text() == f"k0:{public_key_for('other')},k2:{public_key_for('new')}"
    assert dict(ring.legacy) == {"k1": b"old-key-old-key-1"}


def test_a_pem_private_key_is_accepted() -> None:
    key = load_private_key(private_key_for("pem"))
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    s = DriftlineSettings.load(env={"DRIFTLINE_SIGNING_KEY": pem, "DRIFTLINE_SIGNING_KEY_ID": "k"})
    assert Keyring.from_settings(s).verify_keys_text() == f"k:{public_key_for('pem')}"


def test_bootstrap_list_normalized() -> None:
    s = DriftlineSettings.load(env={"DRIFTLINE_KAFKA_BOOTSTRAP": " a:1, b:2 "})
    assert s.bootstrap == "a:1,b:2" and not s.uses_local_broker


def test_sasl_settings_pass_through(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("dummy")
    s = DriftlineSettings.load(
        env={
            "DRIFTLINE_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "DRIFTLINE_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "DRIFTLINE_KAFKA_SASL_USERNAME": "alice",
            "DRIFTLINE_KAFKA_SASL_PASSWORD": "pw",
            "DRIFTLINE_KAFKA_SSL_CAFILE": str(ca),
        }
    )
    assert client_config(s) == {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "alice",
        "sasl_plain_password": "pw",
        "ssl_check_hostname": True,
        "ssl_cafile": str(ca),
    }


def test_settings_are_frozen() -> None:
    s = DriftlineSettings.load(env={})
    with pytest.raises(ValueError, match="frozen"):
        s.topic_prefix = "x."  # type: ignore[misc]


def test_environment_is_read_only_in_load(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRIFTLINE_TOPIC_PREFIX", "from-env.")
    assert DriftlineSettings.load().topic_prefix == "from-env."
    assert DriftlineSettings.load(env={}).topic_prefix == "driftline."


def test_fetch_settings_default_to_low_latency() -> None:
    cfg = fetch_config(DriftlineSettings.load(env={}))
    assert cfg == {
        "fetch_max_wait_ms": 20,
        "fetch_min_bytes": 1,
        "max_poll_records": 2000,
        "max_partition_fetch_bytes": 1024 * 1024,
        "fetch_max_bytes": 16 * 1024 * 1024,
    }
    env = {"DRIFTLINE_KAFKA_FETCH_MAX_WAIT_MS": "5", "DRIFTLINE_KAFKA_MAX_POLL_RECORDS": "300"}
    cfg = fetch_config(DriftlineSettings.load(env=env))
    assert (cfg["fetch_max_wait_ms"], cfg["max_poll_records"]) == (5, 300)


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"DRIFTLINE_KAFKA_FETCH_MAX_WAIT_MS": "-1"}, "DRIFTLINE_KAFKA_FETCH_MAX_WAIT_MS"),
        ({"DRIFTLINE_KAFKA_FETCH_MIN_BYTES": "0"}, "DRIFTLINE_KAFKA_FETCH_MIN_BYTES"),
        ({"DRIFTLINE_KAFKA_MAX_POLL_RECORDS": "0"}, "DRIFTLINE_KAFKA_MAX_POLL_RECORDS"),
        ({"DRIFTLINE_KAFKA_MAX_POLL_RECORDS": "many"}, "DRIFTLINE_KAFKA_MAX_POLL_RECORDS"),
        (
            {"DRIFTLINE_KAFKA_MAX_PARTITION_FETCH_BYTES": "10"},
            "DRIFTLINE_KAFKA_MAX_PARTITION_FETCH_BYTES",
        ),
        (
            {"DRIFTLINE_KAFKA_FETCH_MAX_WAIT_MS": "20000", "DRIFTLINE_KAFKA_TIMEOUT_S": "15"},
            "DRIFTLINE_KAFKA_FETCH_MAX_WAIT_MS=20000 must be below the request timeout",
        ),
        (
            {
                "DRIFTLINE_KAFKA_MAX_PARTITION_FETCH_BYTES": str(32 * 1024 * 1024),
                "DRIFTLINE_KAFKA_FETCH_MAX_BYTES": str(16 * 1024 * 1024),
            },
            "DRIFTLINE_KAFKA_MAX_PARTITION_FETCH_BYTES=33554432 is larger than "
            "DRIFTLINE_KAFKA_FETCH_MAX_BYTES",
        ),
    ],
)
def test_bad_fetch_settings_are_refused_at_start_by_name(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError) as info:
        DriftlineSettings.load(env=env)
    assert named in str(info.value)
