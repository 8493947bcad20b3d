"""``driftline spec`` and ``driftline produce`` against the real broker (no validator)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from schemas import LabelledExample, StreamConfig
from services.common.codec import decode
from services.common.settings import DriftlineSettings
from services.registry.client import Registry
from tests.integration.validator_support import cli, read_all, topic_total, wait_until


@pytest.mark.registry_http
def test_spec_infer_publish_show_list(
    cli_registry_env: DriftlineSettings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = cli(capsys, "spec", "infer", "river:Phishing")
    assert "wrote phishing.yaml" in out
    text = (tmp_path / "phishing.yaml").read_text()
    assert text.startswith("# stream config inferred by `driftline spec infer` from river:Phishing")
    body = yaml.safe_load(text)
    assert body["stream"] == "phishing" and body["spec"]["label"]["classes"] == [False, True]
    assert {"model", "policy"} <= set(body)
    assert "exists" in cli(capsys, "spec", "infer", "river:Phishing", code=2)

    first = cli(capsys, "spec", "publish", "phishing.yaml", "--json")[0]
    assert first["version"] == 1 and first["status"].startswith("published")
    assert cli(capsys, "spec", "publish", "phishing.yaml", "--json")[0]["version"] == 1
    forced = cli(capsys, "spec", "publish", "phishing.yaml", "--force", "--json")[0]
    assert forced["version"] == 2 and forced["spec_sha256"] == first["spec_sha256"]

    shown = cli(capsys, "spec", "show", "phishing", "--json")
    config = StreamConfig.model_validate(shown)
    assert config.version == 2 and config.spec_sha256() == first["spec_sha256"]
    assert "# stream phishing v2" in cli(capsys, "spec", "show", "phishing")
    assert "no spec is published for stream 'nope'" in cli(capsys, "spec", "show", "nope", code=1)
    listed = cli(capsys, "spec", "list", "--json")
    assert [(r["stream"], r["version"]) for r in listed] == [("phishing", 2)]

    # every published version is recorded in the registry too
    registry = Registry.open(cli_registry_env, relay=False)
    try:
        recorded = [registry.get_spec(stream="phishing", version=v) for v in (1, 2)]
    finally:
        registry.close()
    assert [r.version for r in recorded if r] == [1, 2]
    if cli_registry_env.registry_url is not None:  # over HTTP: the CLI opened no database
        assert not (tmp_path / "registry.db").exists()
    assert recorded[1] is not None and recorded[1].spec_sha256 == first["spec_sha256"]

    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**body, "spec": {**body["spec"], "label": {"kind": "class"}}}))
    assert "at least two classes" in cli(capsys, "spec", "publish", str(bad), code=2)


def test_produce_a_synthetic_stream_with_limit_and_rate(
    cli_env: DriftlineSettings, capsys: pytest.CaptureFixture[str]
) -> None:
    report = cli(
        capsys,
        "produce",
        "synth:agrawal-drift",
        "--limit",
        "300",
        "--rate",
        "1000",
        "--seed",
        "7",
        "--json",
    )[0]
    assert (report["stream"], report["sent"], report["failed"]) == ("agrawal-drift", 300, 0)
    assert report["elapsed_s"] >= 0.25  # paced
    records = read_all(cli_env, "examples.raw")
    assert len(records) == 300 and {r.key for r in records} == {b"agrawal-drift"}
    events = [decode(r.value, LabelledExample) for r in records]
    assert sorted(int(e.example_id) for e in events) == list(range(300))  # type: ignore[union-attr]
    sample = events[0]
    assert isinstance(sample, LabelledExample) and isinstance(sample.features["zipcode"], str)


def test_produce_refuses_a_missing_topic_and_a_bad_source(
    settings_factory: Callable[..., DriftlineSettings],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = settings_factory(create_topics=False)
    monkeypatch.setenv("DRIFTLINE_KAFKA_BOOTSTRAP", settings.bootstrap)
    monkeypatch.setenv("DRIFTLINE_TOPIC_PREFIX", settings.topic_prefix)
    assert "driftline topics create" in cli(capsys, "produce", "river:Bananas", code=2)
    assert "synth:NAME" in cli(capsys, "produce", "no-such-file.csv", code=2)


@pytest.mark.slow
def test_ctrl_c_flushes_and_reports_what_was_sent(
    cli_env: DriftlineSettings, tmp_path: Path
) -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "services.cli.main",
            "produce",
            "synth:sea-drift",
            "--limit",
            "100000",
            "--rate",
            "500",
            "--json",
        ],
        env=dict(os.environ),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        wait_until(lambda: topic_total(cli_env, "examples.raw") > 200, 60, "the first events")
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err.decode()
    report = json.loads(out)[0]
    assert 200 < report["sent"] < 100_000 and report["failed"] == 0
    assert topic_total(cli_env, "examples.raw") == report["sent"]
