from __future__ import annotations

import json
import subprocess
import sys

import pytest

from schemas import CATALOGUE
from services.cli.main import main


def test_topics_list_uses_the_prefix(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DRIFTLINE_TOPIC_PREFIX", "acme.")
    assert main(["topics", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["topic"] for r in rows} == {f"acme.{s}" for s in CATALOGUE}


def test_bad_setting_fails_at_start_naming_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DRIFTLINE_KAFKA_BOOTSTRAP", "no-port-here")
    assert main(["topics", "create"]) == 2
    assert "DRIFTLINE_KAFKA_BOOTSTRAP" in capsys.readouterr().err


def test_unknown_service(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "no-such-service"]) == 2
    assert "unknown service 'no-such-service'" in capsys.readouterr().err


def test_schemas_in_sync_via_cli() -> None:
    assert main(["schemas", "export", "--check"]) == 0


def test_console_script_installed() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "services.cli.main", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for command in ("broker", "topics", "schemas", "run", "demo"):
        assert command in out
