"""Serving's start-up: bad settings fail at once, naming the setting (no broker needed)."""

from __future__ import annotations

import pytest

from services.common.errors import ConfigError
from services.serving.__main__ import main
from services.serving.settings import ServingSettings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("DRIFTLINE_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("DRIFTLINE_KAFKA_BOOTSTRAP", "127.0.0.1:1")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DRIFTLINE_SERVING_PORT", "eighty"),
        ("DRIFTLINE_SERVING_PINS", "sea:zero"),
        ("DRIFTLINE_SERVING_MODELS", "sea,,bad name"),
        ("DRIFTLINE_SERVING_ALIAS", "champ ion"),
    ],
)
def test_a_bad_setting_exits_2_naming_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    assert main([]) == 2
    assert name in capsys.readouterr().err


def test_no_verification_key_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DRIFTLINE_SERVING_PORT", "0")
    assert main([]) == 2
    err = capsys.readouterr().err
    assert "DRIFTLINE_VERIFY_KEYS" in err and "public key" in err


def test_defaults_and_derived_values() -> None:
    s = ServingSettings.load(env={"DRIFTLINE_SERVING_SHADOW": "false"})
    assert (s.host, s.port, s.followed_aliases(), s.pin_map(), s.model_filter()) == (
        "127.0.0.1",
        8400,
        ("champion",),
        {},
        None,
    )
    assert s.replica().startswith("serving-")
    named = ServingSettings.load(env={"DRIFTLINE_SERVING_REPLICA_ID": "r7"})
    assert named.replica() == "r7"
    with pytest.raises(ConfigError, match="DRIFTLINE_SERVING_SHADOW_QUEUE"):
        ServingSettings.load(env={"DRIFTLINE_SERVING_SHADOW_QUEUE": "0"})
