"""docker-compose.yml stays true to the package: every container runs a real command with
real settings, is probed and scraped on its own port, and the dashboard queries real
metrics (pure Python; CI also runs ``docker-compose config -q`` via the same script)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "check_compose", ROOT / "scripts" / "check_compose.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


check = _load_script()


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = check.load_compose()
    return data


def test_every_declared_service_runs_in_the_stack(compose: dict[str, Any]) -> None:
    running = {
        svc["command"][1]
        for svc in check.driftline_services(compose).values()
        if svc["command"][:1] == ["run"]
    }
    assert running == set(check.entry_points())


def test_every_command_exists_in_the_package(compose: dict[str, Any]) -> None:
    assert check.command_problems(compose) == []


def test_a_wrong_command_is_caught(compose: dict[str, Any]) -> None:
    broken = json.loads(json.dumps(compose))
    broken["services"]["validator"]["command"] = ["run", "validatr"]
    broken["services"]["topics"]["command"] = ["topics", "make"]
    problems = [
        p for p in check.command_problems(broken) if p.startswith(("topics:", "validator:"))
    ]
    assert len(problems) == 2
    assert problems[0].startswith("topics: `driftline topics make` is invalid")
    assert "`run validatr` is not an entry point" in problems[1]


def test_every_driftline_variable_is_a_setting(compose: dict[str, Any]) -> None:
    assert check.env_problems(compose) == []
    broken = json.loads(json.dumps(compose))
    broken["services"]["learner"]["environment"]["DRIFTLINE_LEARNER_METRICS_PROT"] = "1"
    assert check.env_problems(broken) == [
        "learner: DRIFTLINE_LEARNER_METRICS_PROT is not a setting of any settings class"
    ]


def test_services_are_probed_and_scraped_on_their_ports(compose: dict[str, Any]) -> None:
    assert check.port_problems(compose) == []
    broken = json.loads(json.dumps(compose))
    broken["services"]["learner"]["environment"]["DRIFTLINE_LEARNER_METRICS_PORT"] = "9999"
    problems = check.port_problems(broken)
    assert any("healthcheck does not probe port 9999" in p for p in problems)
    assert any("Prometheus does not scrape learner:9999" in p for p in problems)


def test_dashboard_queries_only_defined_metrics() -> None:
    assert check.dashboard_problems() == []


def test_secrets_come_from_the_environment(compose: dict[str, Any]) -> None:
    """The keys are required from the user's environment; no secret is written down; only
    the signers get the private key, every service the public keys."""
    raw = (ROOT / "docker-compose.yml").read_text(encoding="utf-8")
    assert "${DRIFTLINE_SIGNING_KEY:?" in raw and "${DRIFTLINE_VERIFY_KEYS:?" in raw
    assert "${DRIFTLINE_SERVICE_TOKEN:?" in raw
    signers = set()
    for name, svc in check.driftline_services(compose).items():
        env = svc["environment"]
        if "DRIFTLINE_SIGNING_KEY" in env:
            assert env["DRIFTLINE_SIGNING_KEY"] == "<DRIFTLINE_SIGNING_KEY>"
            signers.add(name)
        assert env["DRIFTLINE_VERIFY_KEYS"] == "<DRIFTLINE_VERIFY_KEYS>"
        assert env["DRIFTLINE_ADMIN_TOKEN"] == ""  # unset unless the user sets it
    assert signers == {"registry", "learner", "trainer"}


def test_only_the_registry_opens_its_database(compose: dict[str, Any]) -> None:
    """Services reach the registry over HTTP with the service token and mount no artifacts;
    a learner given the database URL and the artifact volume is caught."""
    assert check.registry_problems(compose) == []
    services = check.driftline_services(compose)
    database = services["registry"]["environment"]["DRIFTLINE_REGISTRY_URL"]
    assert database.startswith("postgresql")
    for name, svc in services.items():
        if name not in {"registry", "topics"}:
            assert svc["environment"]["DRIFTLINE_REGISTRY_URL"] == "http://registry:8300", name
    broken = json.loads(json.dumps(compose))
    learner = broken["services"]["learner"]
    learner["environment"]["DRIFTLINE_REGISTRY_URL"] = database
    learner["volumes"] = ["artifacts:/data/artifacts"]
    problems = check.registry_problems(broken)
    assert any("learner: opens the registry's database" in p for p in problems)
    assert any("learner: mounts the artifact volume" in p for p in problems)


def test_demo_stream_config_is_valid() -> None:
    from services.cli.spec import load_config_file

    config = load_config_file(ROOT / "deploy" / "streams" / "sea-drift.yaml")
    assert config.stream == "sea-drift"
    assert [f.name for f in config.spec.features] == ["x1", "x2", "x3"]


def test_dashboard_uses_the_provisioned_datasource() -> None:
    import yaml

    grafana = ROOT / "deploy" / "grafana"
    provisioned = yaml.safe_load(
        (grafana / "provisioning" / "datasources" / "prometheus.yml").read_text(encoding="utf-8")
    )
    uids = {ds["uid"] for ds in provisioned["datasources"]}
    dashboard = json.loads((grafana / "dashboards" / "driftline.json").read_text("utf-8"))
    used = {p["datasource"]["uid"] for p in dashboard["panels"]}
    used |= {t["datasource"]["uid"] for p in dashboard["panels"] for t in p["targets"]}
    assert used == uids
    titles = " ".join(p["title"].lower() for p in dashboard["panels"])
    for topic in ("throughput", "rolling", "drift", "versions", "dead-letter"):
        assert topic in titles
