"""Many streams through the CLI against the real broker: ``driftline spec publish DIR``
publishes many configs reading the ``streams`` topic once, and ``driftline produce`` sends
a JSONL file whose rows name their stream."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from schemas import LabelledExample, StreamConfig
from services.common.codec import decode
from services.common.config_files import config_to_yaml
from services.common.settings import DriftlineSettings
from services.registry.client import Registry
from tests.integration.validator_support import cli, read_all, stream_config, topic_total


def write_configs(directory: Path, count: int, *, prefix: str = "s") -> list[Path]:
    """``count`` stream configs ``<prefix>0000.yaml`` ... in ``directory`` (a test helper)."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = directory / f"{prefix}{i:04d}.yaml"
        path.write_text(config_to_yaml(stream_config(f"{prefix}{i:04d}", 1)), encoding="utf-8")
        paths.append(path)
    return paths


def recorded(settings: DriftlineSettings, streams: list[str]) -> dict[str, int | None]:
    """The newest version the registry holds for each stream."""
    registry = Registry.open(settings, relay=False)
    try:
        specs = {s: registry.get_spec(stream=s) for s in streams}
    finally:
        registry.close()
    return {s: None if spec is None else spec.version for s, spec in specs.items()}


@pytest.mark.registry_http
def test_spec_publish_a_directory_and_files_in_one_run(
    cli_registry_env: DriftlineSettings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = write_configs(tmp_path / "streams", 100)
    streams = [p.stem for p in paths]

    started = time.perf_counter()
    first = cli(capsys, "spec", "publish", "streams", "--json")
    elapsed = time.perf_counter() - started
    with capsys.disabled():
        sys.stderr.write(f"\nspec publish: 100 configs in one run: {elapsed:.2f}s\n")
    assert [(r["stream"], r["version"]) for r in first] == [(s, 1) for s in streams]
    assert all(r["status"].startswith("published") for r in first)
    assert first[0]["file"] == str(Path("streams") / "s0000.yaml")
    assert topic_total(cli_registry_env, "streams") == 100
    assert recorded(cli_registry_env, streams) == dict.fromkeys(streams, 1)

    # unchanged configs are skipped; changed ones get the next version; --force publishes all
    changed = stream_config("s0007", 1, max_future_s=60)
    paths[7].write_text(config_to_yaml(changed), encoding="utf-8")
    again = cli(capsys, "spec", "publish", "streams", "--json")
    assert [r["stream"] for r in again if r["status"].startswith("published")] == ["s0007"]
    assert {r["version"] for r in again} == {1, 2}
    assert sum(r["status"].startswith("unchanged") for r in again) == 99
    assert topic_total(cli_registry_env, "streams") == 101
    forced = cli(capsys, "spec", "publish", str(paths[3]), str(paths[7]), "--force", "--json")
    assert [(r["stream"], r["version"]) for r in forced] == [("s0003", 2), ("s0007", 3)]
    assert recorded(cli_registry_env, ["s0003", "s0007"]) == {"s0003": 2, "s0007": 3}

    listed = cli(capsys, "spec", "list", "--json")
    assert len(listed) == 100 and {r["version"] for r in listed} == {1, 2, 3}
    summary = cli(capsys, "spec", "publish", "streams")
    assert "100 configs, 0 published, 100 unchanged, 0 failed" in summary


def test_spec_publish_validates_every_file_first_and_publishes_nothing_on_error(
    cli_env: DriftlineSettings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = write_configs(tmp_path / "streams", 5)
    body: dict[str, Any] = yaml.safe_load(paths[0].read_text())
    bad = tmp_path / "streams" / "s0002.yaml"
    bad.write_text(yaml.safe_dump({**body, "stream": "s0002", "spec": {"features": []}}))
    (tmp_path / "streams" / "broken.yml").write_text("stream: [unclosed\n")
    out = cli(capsys, "spec", "publish", "streams", code=2)
    assert "nothing was published" in out
    assert f"{Path('streams') / 's0002.yaml'}: not a valid stream config" in out
    assert f"{Path('streams') / 'broken.yml'}: not valid YAML" in out
    assert topic_total(cli_env, "streams") == 0

    bad.write_text(paths[1].read_text())  # two files, one stream
    (tmp_path / "streams" / "broken.yml").unlink()
    out = cli(capsys, "spec", "publish", "streams", code=2)
    assert "stream 's0001' is also in" in out and "s0002.yaml" in out
    assert topic_total(cli_env, "streams") == 0

    assert "no such file or directory" in cli(capsys, "spec", "publish", "nope", code=2)
    (tmp_path / "empty").mkdir()
    assert "no *.yaml or *.yml" in cli(capsys, "spec", "publish", "empty", code=2)


def test_produce_a_jsonl_whose_rows_name_their_stream(
    cli_env: DriftlineSettings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows: list[dict[str, Any]] = []
    for i in range(30):
        stream = ("alpha", "beta", "gamma")[i % 3]
        if i % 2:  # example-shaped
            rows.append(
                {"stream": stream, "example_id": f"e{i}", "features": {"x": i}, "label": i % 2}
            )
        else:  # flat: the stream field is not a feature
            rows.append({"stream": stream, "example_id": f"e{i}", "x": i, "label": i % 2})
    rows.append({"example_id": "no-stream", "x": 1, "label": 0})  # goes to --stream
    rows.append({"stream": "beta", "example_id": "bad", "x": 1})  # no label: skipped
    rows.append({"stream": 7, "example_id": "odd", "x": 1, "label": 0})  # skipped
    source = tmp_path / "mixed.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))

    report = cli(capsys, "produce", str(source), "--stream", "fallback", "--json")
    by_stream = {r["stream"]: (r["sent"], r["failed"], r["skipped"]) for r in report}
    assert by_stream == {
        "fallback": (1, 0, 1),
        "alpha": (10, 0, 0),
        "beta": (10, 0, 1),
        "gamma": (10, 0, 0),
    }
    records = read_all(cli_env, "examples.raw")
    assert len(records) == 31
    for record in records:
        event = decode(record.value, LabelledExample)
        assert isinstance(event, LabelledExample)
        assert record.key == event.stream.encode()
        assert set(event.features) == {"x"}
        if event.example_id != "no-stream":
            assert event.stream == ("alpha", "beta", "gamma")[int(event.example_id[1:]) % 3]

    # every row names its stream: no row for the unused default (the file's stem)
    named = tmp_path / "named.jsonl"
    named.write_text("".join(json.dumps(r) + "\n" for r in rows[:6]))
    report = cli(capsys, "produce", str(named), "--json")
    assert sorted(r["stream"] for r in report) == ["alpha", "beta", "gamma"]
    assert "3 streams, 6 sent" in cli(capsys, "produce", str(named))


@pytest.mark.slow
def test_spec_publish_1000_configs(
    cli_registry_env: DriftlineSettings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = write_configs(tmp_path / "streams", 1000)
    started = time.perf_counter()
    first = cli(capsys, "spec", "publish", "streams", "--json")
    elapsed = time.perf_counter() - started
    started = time.perf_counter()
    again = cli(capsys, "spec", "publish", "streams", "--json")
    unchanged = time.perf_counter() - started
    with capsys.disabled():
        sys.stderr.write(
            f"\nspec publish: 1,000 configs in one run: {elapsed:.2f}s; "
            f"again (all unchanged): {unchanged:.2f}s\n"
        )
    assert len(first) == 1000 and all(r["status"].startswith("published") for r in first)
    assert all(r["status"].startswith("unchanged") for r in again)
    assert topic_total(cli_registry_env, "streams") == 1000
    streams = [p.stem for p in paths]
    assert recorded(cli_registry_env, streams) == dict.fromkeys(streams, 1)
    assert StreamConfig.model_validate(cli(capsys, "spec", "show", "s0999", "--json")).version == 1
