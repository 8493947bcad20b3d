"""``driftline models|runs|gc`` against a SQLite registry in a temporary data dir.

Kafka points at a closed port with a 1 s timeout: moves commit and their events stay
queued in the outbox, which the CLI says.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from schemas import AliasReason, Lineage, ModelLoaded, ModelLoadFailed, OffsetRange
from services.cli.fleet import fleet_state
from services.cli.main import main
from services.common.settings import DriftlineSettings
from services.registry.client import Registry
from services.registry.errors import FrozenModel
from tests.keys import private_key_for
from tests.services.registry.helpers import predictor

LINEAGE = Lineage(
    ranges=(
        OffsetRange(topic="driftline.examples.valid", partition=0, start=0, end=100),
        OffsetRange(topic="driftline.examples.valid", partition=3, start=40, end=60),
    ),
    event_time_start=datetime(2026, 1, 1, tzinfo=UTC),
    event_time_end=datetime(2026, 1, 2, 12, tzinfo=UTC),
    example_count=120,
)


@pytest.fixture
def registry_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> DriftlineSettings:
    """Environment of a CLI user: a data dir holding a registry with two versions of sea."""
    for name in ("DRIFTLINE_REGISTRY_URL", "DRIFTLINE_ARTIFACTS_URL", "DRIFTLINE_VERIFY_KEYS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DRIFTLINE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("DRIFTLINE_SIGNING_KEY", private_key_for("test-signing-key-0123456789"))
    monkeypatch.setenv("DRIFTLINE_SIGNING_KEY_ID", "k1")
    monkeypatch.setenv("DRIFTLINE_KAFKA_BOOTSTRAP", "127.0.0.1:1")
    monkeypatch.setenv("DRIFTLINE_KAFKA_TIMEOUT_S", "1")
    settings = DriftlineSettings.load()
    registry = Registry.open(settings, relay=False)
    try:
        registry.register_version(
            model="sea",
            kind="online",
            predictor=predictor(),
            params={"lr": 0.1},
            metrics={"accuracy": 0.8},
            lineage=LINEAGE,
        )
        registry.register_version(
            model="sea",
            kind="batch",
            predictor=predictor(30),
            params={"lr": 0.2},
            metrics={"accuracy": 0.85},
            parent_version=1,
        )
        run, _ = registry.start_run(model="sea", trigger_event_id="drift-1")
        registry.add_candidate(
            run_id=run.id, name="rf", params={"n": 5}, metrics={"accuracy": 0.85}, fit_s=0.5
        )
        registry.finish_run(run_id=run.id, status="succeeded", decision="won", winner_version=2)
    finally:
        registry.close()
    return settings


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    assert main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def alias_of(settings: DriftlineSettings, alias: str = "champion") -> int | None:
    registry = Registry.open(settings, relay=False)
    try:
        return registry.get_alias(model="sea", alias=alias)
    finally:
        registry.close()


def test_list_show_and_lineage(
    registry_env: DriftlineSettings, capsys: pytest.CaptureFixture[str]
) -> None:
    models = run_json(capsys, "models", "list")
    assert [(m["name"], m["latest_version"], m["aliases"]) for m in models] == [("sea", 2, {})]

    shown = run_json(capsys, "models", "show", "sea")
    assert shown["model"]["name"] == "sea"
    assert [v["version"] for v in shown["versions"]] == [2, 1]

    lineage = run_json(capsys, "models", "lineage", "sea", "1")
    assert (lineage["model"], lineage["version"]) == ("sea", 1)
    assert lineage["lineage"]["ranges"] == [
        {"topic": "driftline.examples.valid", "partition": 0, "start": 0, "end": 100, "count": 100},
        {"topic": "driftline.examples.valid", "partition": 3, "start": 40, "end": 60, "count": 20},
    ]
    assert lineage["lineage"]["example_count"] == 120
    assert lineage["lineage"]["event_time_start"] == "2026-01-01T00:00:00Z"

    assert main(["models", "lineage", "sea", "1"]) == 0
    text = capsys.readouterr().out
    assert "[0, 100)" in text and "[40, 60)" in text and "examples: 120" in text

    assert main(["models", "show", "nope"]) == 1
    assert "no model 'nope'" in capsys.readouterr().err


def test_diff(registry_env: DriftlineSettings, capsys: pytest.CaptureFixture[str]) -> None:
    rows = {r["field"]: r for r in run_json(capsys, "models", "diff", "sea", "1", "2")}
    assert rows["metrics.accuracy"]["change"] == "+0.05"
    assert rows["params.lr"]["changed"] and rows["kind"]["b"] == "batch"
    assert not rows["algorithm"]["changed"] and not rows["spec_sha256"]["changed"]
    assert rows["lineage.driftline.examples.valid[0]"]["a"] == "[0, 100)"
    assert rows["lineage.driftline.examples.valid[0]"]["b"] == "-"
    assert main(["models", "diff", "sea", "1", "7"]) == 1
    assert "no version sea v7" in capsys.readouterr().err


def test_promote_queues_the_event_and_checks_expect(
    registry_env: DriftlineSettings, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["models", "promote", "sea", "1", "--expect", "none", "--reason", "first"]) == 0
    out, err = capsys.readouterr()
    assert "sea@champion: - -> v1" in out
    assert "warning" in err and "committed" in err and "queued" in err
    assert "127.0.0.1:1" in err and "Traceback" not in err
    assert alias_of(registry_env) == 1

    # compare-and-set: someone expecting the alias unset lost the race
    assert main(["models", "promote", "sea", "2", "--expect", "none"]) == 1
    out, err = capsys.readouterr()
    assert "sea@champion is at v1" in err and "--expect 1" in err
    assert "Traceback" not in err and out == ""
    assert alias_of(registry_env) == 1

    assert main(["models", "promote", "sea", "2", "--expect", "1"]) == 0
    assert alias_of(registry_env) == 2
    capsys.readouterr()

    assert main(["models", "rollback", "sea", "--expect", "2", "--reason", "oops"]) == 0
    assert "rolled back v2 -> v1" in capsys.readouterr().out
    assert alias_of(registry_env) == 1

    registry = Registry.open(registry_env, relay=False)
    try:
        last = registry.alias_history(model="sea", alias="champion", limit=1)[0]
        assert last.reason == "manual" and last.actor.startswith("cli")
        assert last.evidence == {"operation": "rollback", "note": "oops", "rolled_back_from": 2}
        assert registry.outbox_backlog() == 2 + 3  # two versions, three moves: all queued
    finally:
        registry.close()


def test_promote_needs_expect(
    registry_env: DriftlineSettings, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["models", "promote", "sea", "1"])
    assert exc.value.code == 2 and "--expect" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["models", "promote", "sea", "1", "--expect", "latest"])
    assert "neither a version number nor 'none'" in capsys.readouterr().err
    assert main(["models", "promote", "sea", "9", "--expect", "none"]) == 1
    assert "no version sea v9" in capsys.readouterr().err


def test_freeze_stops_automatic_moves(
    registry_env: DriftlineSettings, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["models", "freeze", "sea", "--reason", "incident 42"]) == 0
    assert "sea is frozen" in capsys.readouterr().out
    info = run_json(capsys, "models", "show", "sea")["model"]
    assert (info["frozen"], info["frozen_reason"]) == (True, "incident 42")

    registry = Registry.open(registry_env, relay=False)
    try:
        with pytest.raises(FrozenModel):
            registry.move_alias(
                model="sea",
                alias="champion",
                to_version=2,
                expect=None,
                reason=AliasReason.PROMOTED,
                actor="trainer",
            )
    finally:
        registry.close()
    # a person still can
    assert main(["models", "promote", "sea", "2", "--expect", "none"]) == 0
    assert main(["models", "unfreeze", "sea"]) == 0
    assert "unfrozen" in capsys.readouterr().out
    assert run_json(capsys, "models", "list")[0]["frozen"] is False
    assert main(["models", "freeze", "nope"]) == 1


def test_runs_and_gc(registry_env: DriftlineSettings, capsys: pytest.CaptureFixture[str]) -> None:
    runs = run_json(capsys, "runs", "list", "--model", "sea")
    assert [(r["status"], r["winner_version"]) for r in runs] == [("succeeded", 2)]
    run = run_json(capsys, "runs", "show", runs[0]["id"])
    assert run["candidates"][0]["name"] == "rf"
    assert main(["runs", "show", "nope"]) == 1
    capsys.readouterr()

    limits = ("--keep-versions", "1", "--keep-checkpoints", "1")
    counts = {"artifacts": 1, "checkpoints": 0, "handled_events": 0, "outbox": 0}
    preview = run_json(capsys, "gc", *limits, "--dry-run")
    assert preview == counts | {"dry_run": True}
    versions = run_json(capsys, "models", "show", "sea")["versions"]
    assert {v["status"] for v in versions} == {"registered"}
    report = run_json(capsys, "gc", *limits)
    assert report == counts | {"dry_run": False}
    versions = run_json(capsys, "models", "show", "sea")["versions"]
    assert [(v["version"], v["status"]) for v in versions] == [(2, "registered"), (1, "archived")]


def test_tables_render(registry_env: DriftlineSettings, capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (
        ["models", "list"],
        ["models", "show", "sea"],
        ["models", "diff", "sea", "1", "2"],
        ["runs", "list"],
        ["gc"],
    ):
        assert main(argv) == 0, argv
        assert "sea" in capsys.readouterr().out or argv == ["gc"]


def test_fleet_state_folds_acks_in_order() -> None:
    acks = [
        ModelLoaded(replica_id="r1", model="sea", version=1, alias="champion", load_ms=1.0),
        ModelLoadFailed(
            replica_id="r1",
            model="sea",
            version=2,
            alias="champion",
            reason="bad_signature",
            detail="unknown key id",
        ),
        ModelLoaded(replica_id="r2", model="sea", version=1, alias="champion", load_ms=1.0),
        ModelLoaded(replica_id="r2", model="sea", version=2, alias="champion", load_ms=1.0),
        ModelLoadFailed(
            replica_id="r3", model="sea", version=2, reason="incompatible_spec", detail="x"
        ),
        ModelLoaded(replica_id="r3", model="sea", version=2, alias="champion", load_ms=1.0),
    ]
    rows = {s.replica_id: s.row({"champion": 2}) for s in fleet_state(acks)}
    assert rows["r1"]["status"] == "failing" and rows["r1"]["loaded_version"] == 1
    assert rows["r1"]["last_failure"]["reason"] == "bad_signature"
    assert rows["r2"]["status"] == "ok" and rows["r2"]["last_failure"] is None
    assert rows["r3"]["status"] == "ok" and rows["r3"]["last_failure"]["version"] == 2
    behind = {s.replica_id: s.row({"champion": 3}) for s in fleet_state(acks)}
    assert behind["r2"]["status"] == "behind (champion is v3)"


def test_fleet_shows_each_alias_a_replica_serves() -> None:
    acks = [
        ModelLoaded(replica_id="r1", model="sea", version=4, alias="champion", load_ms=1.0),
        ModelLoaded(replica_id="r1", model="sea", version=5, alias="challenger", load_ms=1.0),
    ]
    rows = [s.row({"champion": 4, "challenger": 5}) for s in fleet_state(acks)]
    assert [(r["alias"], r["loaded_version"], r["status"]) for r in rows] == [
        ("challenger", 5, "ok"),
        ("champion", 4, "ok"),
    ]
