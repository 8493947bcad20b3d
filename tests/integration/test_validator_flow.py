"""The issue's done-when, through the CLI and a running validator on the real broker.

A CSV with good and bad rows goes through ``driftline produce``; the validator turns it
into valid examples and dead letters with the right reasons (``driftline dlq stats``);
the spec is fixed and published live (no restart), and ``driftline dlq replay`` brings
the fixable rows into the valid topic exactly once.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from schemas import LabelledExample
from services.cli.main import main
from services.common.codec import decode
from services.common.settings import DriftlineSettings
from services.localbroker.ports import free_ports
from tests.integration.validator_support import (
    SPEC,
    caught_up,
    read_all,
    running_validator,
    topic_total,
    wait_until,
)

GOOD = [
    f"{i},{i % 10},{['red', 'green', 'blue'][i % 3]},{str(i % 2 == 0).lower()},{i % 2 == 0},"
    f"2026-01-01T00:00:{i:02d}Z"
    for i in range(1, 21)
]
BAD = {
    "out_of_range": [
        "101,15,red,true,true,2026-01-01T00:01:00Z",
        "102,12.5,blue,,false,2026-01-01T00:01:01Z",
    ],
    "unknown_category": [
        "103,3,purple,true,true,2026-01-01T00:01:02Z",
        "104,4,purple,false,false,2026-01-01T00:01:03Z",
        "105,5,mauve,false,false,2026-01-01T00:01:04Z",
    ],
    "wrong_type": ["106,abc,red,true,true,2026-01-01T00:01:05Z"],
    "non_finite": ["107,nan,red,true,true,2026-01-01T00:01:06Z"],
    "bad_label": ["108,1,red,true,maybe,2026-01-01T00:01:07Z"],
    "missing_feature": ["109,1,,true,true,2026-01-01T00:01:08Z"],
    "event_time_future": ["110,1,red,true,true,2099-01-01T00:00:00Z"],
    "duplicate_example_id": ["1,9,red,true,true,2026-01-01T00:02:00Z"],
}
FIXED = {"101", "102", "103", "104"}  # what spec v2 accepts: x up to 20, purple


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    capsys.readouterr()
    code = main(list(argv))
    out = capsys.readouterr()
    assert code == 0, out.err
    return json.loads(out.out) if "--json" in argv else out.out


def write_spec(path: Path, **changes: Any) -> Path:
    spec = json.loads(json.dumps(SPEC))
    for feature in spec["features"]:
        feature.update(changes.get(feature["name"], {}))
    path.write_text(yaml.safe_dump({"stream": "shapes", "spec": spec}))
    return path


def valid_examples(settings: DriftlineSettings) -> list[LabelledExample]:
    out = []
    for record in read_all(settings, "examples.valid"):
        event = decode(record.value, LabelledExample)
        assert isinstance(event, LabelledExample)
        out.append(event)
    return out


@pytest.mark.slow
# the default engine (the batch loop) and the opt-in faust app
@pytest.mark.parametrize("engine", ["auto", "faust"])
def test_csv_to_valid_and_dead_letters_then_fix_and_replay(
    settings_factory: Callable[..., DriftlineSettings],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    engine: str,
) -> None:
    settings = settings_factory()
    for name, value in {
        "DRIFTLINE_KAFKA_BOOTSTRAP": settings.bootstrap,
        "DRIFTLINE_TOPIC_PREFIX": settings.topic_prefix,
        "DRIFTLINE_DATA_DIR": str(tmp_path),
    }.items():
        monkeypatch.setenv(name, value)
    rows = GOOD + [row for rows in BAD.values() for row in rows]
    csv_path = tmp_path / "shapes.csv"
    csv_path.write_text("id,x,color,member,label,ts\n" + "\n".join(rows) + "\n")

    published = run_cli(capsys, "spec", "publish", str(write_spec(tmp_path / "v1.yaml")), "--json")
    assert published[0]["version"] == 1
    (port,) = free_ports(1)
    with running_validator(
        settings, tmp_path, metrics_port=port, DRIFTLINE_VALIDATOR_ENGINE=engine
    ) as validator:
        report = run_cli(
            capsys,
            "produce",
            str(csv_path),
            "--id-column",
            "id",
            "--timestamp-column",
            "ts",
            "--json",
        )
        assert report[0]["stream"] == "shapes"
        assert (report[0]["sent"], report[0]["failed"], report[0]["skipped"]) == (len(rows), 0, 0)
        wait_until(lambda: caught_up(settings), 90, "the validator to catch up", validator)

        stats = run_cli(capsys, "dlq", "stats", "--json")
        assert {r["reason"]: r["count"] for r in stats} == {k: len(v) for k, v in BAD.items()}
        assert {r["stream"] for r in stats} == {"shapes"}
        assert sorted(e.example_id for e in valid_examples(settings)) == sorted(
            str(i) for i in range(1, 21)
        )
        shown = run_cli(capsys, "dlq", "show", "--reason", "non_finite", "--json")
        assert len(shown) == 1 and shown[0]["example_id"] == "107"
        assert '"x":NaN' in shown[0]["original"] and "'x' is NaN" in shown[0]["detail"]
        assert shown[0]["source"].startswith(f"{settings.topic_prefix}examples.raw/")

        assert (
            validator.metric('driftline_validator_examples_total{outcome="valid",stream="shapes"}')
            == 20
        )
        assert (
            validator.metric(
                'driftline_validator_rejected_total{reason="unknown_category",stream="shapes"}'
            )
            == 3
        )
        assert (
            validator.metric(
                'driftline_validator_feature_missing_total{feature="member",stream="shapes"}'
            )
            == 1
        )
        assert (
            validator.metric(
                'driftline_validator_feature_out_of_range_total{feature="x",stream="shapes"}'
            )
            == 2
        )

        # The fix, published live: the running validator picks it up without a restart.
        fixed = write_spec(
            tmp_path / "v2.yaml",
            x={"max": 20},
            color={"categories": ["red", "green", "blue", "purple"]},
        )
        assert run_cli(capsys, "spec", "publish", str(fixed), "--json")[0]["version"] == 2
        again = run_cli(capsys, "spec", "publish", str(fixed), "--json")
        assert again[0]["version"] == 2 and again[0]["status"].startswith("unchanged")
        wait_until(
            lambda: validator.metric('driftline_validator_spec_version{stream="shapes"}') == 2,
            30,
            "spec v2 in force",
            validator,
        )
        dry = run_cli(capsys, "dlq", "replay", "--reason", "out_of_range", "--dry-run", "--json")
        assert dry == [{"stream": "shapes", "reason": "out_of_range", "replayed": 2}]
        for reason, count in (("out_of_range", 2), ("unknown_category", 3)):
            replayed = run_cli(capsys, "dlq", "replay", "--reason", reason, "--json")
            assert replayed == [{"stream": "shapes", "reason": reason, "replayed": count}]
        raw_before = topic_total(settings, "examples.raw")
        assert run_cli(capsys, "dlq", "replay", "--reason", "out_of_range", "--json") == []
        assert topic_total(settings, "examples.raw") == raw_before  # remembered: nothing sent
        wait_until(lambda: caught_up(settings), 90, "the replay to be validated", validator)

        valid = valid_examples(settings)
        per_id = Counter(e.example_id for e in valid)
        assert set(per_id) == {str(i) for i in range(1, 21)} | FIXED
        assert all(n == 1 for n in per_id.values()), per_id  # exactly once
        assert {e.spec_version for e in valid if e.example_id in FIXED} == {2}
        assert {e.spec_version for e in valid if e.example_id not in FIXED} == {1}
        stats = {r["reason"]: r["count"] for r in run_cli(capsys, "dlq", "stats", "--json")}
        assert stats["unknown_category"] == 4  # 'mauve' is still unknown: rejected again
        assert stats["out_of_range"] == 2  # the originals stay; no new ones

        shown = run_cli(capsys, "spec", "show", "shapes")
        assert "# stream shapes v2" in shown and "purple" in shown
