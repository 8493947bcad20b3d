"""Bad configuration fails at start-up, naming the setting, before anything connects."""

from __future__ import annotations

import os

import pytest

from services.evaluator.__main__ import main
from tests.keys import public_key_for

ENV = ("DRIFTLINE_SIGNING_KEY", "DRIFTLINE_SIGNING_KEY_ID", "DRIFTLINE_EVALUATOR_SNAPSHOT_EVERY")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    # main() runs in this process: a start that got further would lower pytest's priority
    monkeypatch.setenv("DRIFTLINE_EVALUATOR_NICE", "0")


def test_a_refused_start_leaves_the_priority_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRIFTLINE_EVALUATOR_NICE", "5")
    before = os.nice(0)
    assert main([]) == 2  # no verify key
    assert os.nice(0) == before


def test_no_verify_key_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "DRIFTLINE_VERIFY_KEYS" in capsys.readouterr().err


def test_no_checkpoint_key_is_refused(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DRIFTLINE_VERIFY_KEYS", f"k1:{public_key_for('registry')}")
    assert main([]) == 2
    assert "DRIFTLINE_CHECKPOINT_KEY" in capsys.readouterr().err


def test_a_bad_service_setting_is_named(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DRIFTLINE_EVALUATOR_SNAPSHOT_EVERY", "0")
    assert main([]) == 2
    assert "DRIFTLINE_EVALUATOR_SNAPSHOT_EVERY" in capsys.readouterr().err
