#!/usr/bin/env python3
"""Check docker-compose.yml against the package it deploys (CI runs this; so can you).

1. ``docker-compose config -q`` (Debian's ``docker-compose``; it only parses, no Docker
   engine needed) with every profile, given a placeholder signing key; and the same must
   *fail* without ``DRIFTLINE_SIGNING_KEY``, so the stack never starts unsigned.
2. Every container of the driftline image runs a real command: ``run NAME`` names an entry
   point of ``[project.entry-points."driftline.services"]`` whose function loads; anything
   else parses with ``driftline``'s own argument parser.
3. Every ``DRIFTLINE_*`` variable given to a container is a field of a settings class.
4. Each long-running service is probed (healthcheck) and scraped (Prometheus) on the port
   its environment sets, and the Grafana dashboard queries only metrics the code defines.
5. Only the registry gets a database URL and a volume of artifacts; every other container
   reaches it over HTTP (``DRIFTLINE_REGISTRY_URL=http(s)://...``) with the service token,
   which docker-compose refuses to start without.

Usage: ``python scripts/check_compose.py [--no-docker-compose]``; exit 1 on any problem.
``tests/test_compose.py`` runs checks 2 to 4 (pure Python, no docker-compose needed).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import json
import os
import re
import shutil
import subprocess  # noqa: S404 - runs docker-compose, a fixed argument list
import sys
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"
PROMETHEUS = ROOT / "deploy" / "prometheus" / "prometheus.yml"
DASHBOARDS = ROOT / "deploy" / "grafana" / "dashboards"
GROUP = "driftline.services"
PLACEHOLDER_KEY = "3vVq+MF+7Pju9GlrAKTrriYzSvWCbTSTB/+lyab8iO4="  # noqa: S105 - not a secret
PLACEHOLDER_PUBLIC = "compose-1:Z2yZ3xBu3cI8Ij1fV6Q7m3a8vX0z9d2lJ4vQ5m7ZqHQ="  # shape only
PLACEHOLDER_CHECKPOINT = "compose-config-check-placeholder-key"  # noqa: S105
PLACEHOLDER_TOKEN = "compose-config-check-placeholder-token"  # noqa: S105
_METRIC_DEF = re.compile(r"\.(?:counter|gauge|histogram)\(\s*\"([a-z0-9_]+)\"")
_METRIC_USE = re.compile(r"\bdriftline_[a-z0-9_]+")
_HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?message}, ${NAME?message}, $NAME, $$
_VARIABLE = re.compile(
    r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
    r"|\$(?P<bare>[A-Za-z_][A-Za-z0-9_]*)"
)


def load_compose(path: Path = COMPOSE) -> dict[str, Any]:
    """The compose file as data: YAML anchors and merge keys resolved, and variables
    interpolated as on a machine that sets none (defaults; a placeholder where required)."""
    data = _interpolate(yaml.safe_load(path.read_text(encoding="utf-8")))
    if not isinstance(data, dict) or not isinstance(data.get("services"), dict):
        raise ValueError(f"{path}: no services")
    return data


def interpolate(text: str) -> str:
    """Compose's variable syntax with no variable set.

    >>> interpolate("a ${X:-1} ${KEY:?set it} $$HOME ${NONE}")
    'a 1 <KEY> $HOME '
    """

    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        op = match.group("op") or ""
        if op.endswith("-"):
            return match.group("arg")
        if op.endswith("?"):
            return f"<{match.group('name')}>"
        return ""

    return _VARIABLE.sub(one, text)


def _interpolate(value: Any) -> Any:
    if isinstance(value, str):
        return interpolate(value)
    if isinstance(value, list):
        return [_interpolate(v) for v in value]
    if isinstance(value, dict):
        return {k: _interpolate(v) for k, v in value.items()}
    return value


def driftline_services(compose: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Services built from this repository's Dockerfile (the driftline image)."""
    return {
        name: svc
        for name, svc in compose["services"].items()
        if "build" in svc or str(svc.get("image", "")).startswith("driftline:")
    }


def entry_points(pyproject: Path = ROOT / "pyproject.toml") -> dict[str, str]:
    """``driftline run`` names -> ``module:function``, as the package declares them."""
    data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    table: dict[str, str] = data["project"]["entry-points"][GROUP]
    return dict(table)


def command_problems(compose: Mapping[str, Any]) -> list[str]:
    """Every driftline container's command must exist in the package."""
    from services.cli.main import build_parser

    problems: list[str] = []
    declared = entry_points()
    for name, svc in driftline_services(compose).items():
        command = svc.get("command")
        if not isinstance(command, list) or not all(isinstance(a, str) for a in command):
            problems.append(f"{name}: command must be a list of strings, got {command!r}")
            continue
        if command[:1] == ["run"]:
            service = command[1] if len(command) > 1 else ""
            if service not in declared:
                problems.append(
                    f"{name}: `run {service}` is not an entry point of {GROUP} "
                    f"(declared: {', '.join(sorted(declared))})"
                )
                continue
            module, _, func = declared[service].partition(":")
            try:
                loaded = getattr(importlib.import_module(module), func)
            except (ImportError, AttributeError) as exc:
                problems.append(f"{name}: entry point {declared[service]} does not load: {exc}")
                continue
            if not callable(loaded):
                problems.append(f"{name}: entry point {declared[service]} is not callable")
        usage = io.StringIO()
        try:
            with contextlib.redirect_stderr(usage), contextlib.redirect_stdout(usage):
                build_parser().parse_args(command)
        except SystemExit:
            error = usage.getvalue().strip().splitlines()[-1:] or [""]
            problems.append(f"{name}: `driftline {' '.join(command)}` is invalid: {error[0]}")
    return problems


def settings_fields() -> dict[str, set[str]]:
    """Environment prefix -> field names, for every settings class in the source tree."""
    from services.common.settings import DriftlineSettings, SettingsBase

    found: dict[str, set[str]] = {"DRIFTLINE_": set(DriftlineSettings.model_fields)}
    for path in sorted(ROOT.glob("services/*/settings.py")):
        module = importlib.import_module(f"services.{path.parent.name}.settings")
        for obj in vars(module).values():
            if isinstance(obj, type) and issubclass(obj, SettingsBase) and obj is not SettingsBase:
                prefix = str(obj.model_config.get("env_prefix", ""))
                found.setdefault(prefix, set()).update(obj.model_fields)
    return found


def env_problems(compose: Mapping[str, Any]) -> list[str]:
    """Every ``DRIFTLINE_*`` variable a container gets must be read by some settings class."""
    fields = settings_fields()
    problems = []
    for name, svc in driftline_services(compose).items():
        for var in _environment(svc):
            if not var.startswith("DRIFTLINE_"):
                continue
            known = any(
                var.startswith(prefix) and var[len(prefix) :].lower() in names
                for prefix, names in fields.items()
            )
            if not known:
                problems.append(f"{name}: {var} is not a setting of any settings class")
    return problems


def port_problems(compose: Mapping[str, Any], prometheus: Path = PROMETHEUS) -> list[str]:
    """Long-running services: probed and scraped on the port their environment sets."""
    scraped = set()
    config = yaml.safe_load(prometheus.read_text(encoding="utf-8"))
    for job in config.get("scrape_configs", []):
        for static in job.get("static_configs", []):
            scraped.update(static.get("targets", []))
        for dns in job.get("dns_sd_configs", []):  # type A: every address of each name
            scraped.update(f"{name}:{dns.get('port')}" for name in dns.get("names", []))
    problems = []
    for name, svc in driftline_services(compose).items():
        command = svc.get("command") or []
        if command[:1] != ["run"]:
            continue
        service = command[1]
        env = _environment(svc)
        upper = service.upper()
        port = env.get(f"DRIFTLINE_{upper}_METRICS_PORT") or env.get(f"DRIFTLINE_{upper}_PORT")
        if port is None:
            problems.append(f"{name}: no DRIFTLINE_{upper}_METRICS_PORT or _PORT set")
            continue
        hosts = [v for k, v in env.items() if k.startswith(f"DRIFTLINE_{upper}_") and "HOST" in k]
        if "0.0.0.0" not in hosts:  # noqa: S104 - checking the container binds all interfaces
            problems.append(f"{name}: its HTTP endpoint binds 127.0.0.1; set its _HOST to 0.0.0.0")
        probe = " ".join(map(str, (svc.get("healthcheck") or {}).get("test", [])))
        if f":{port}/" not in probe:
            problems.append(f"{name}: healthcheck does not probe port {port}: {probe!r}")
        if f"{name}:{port}" not in scraped:
            problems.append(f"{name}: Prometheus does not scrape {name}:{port}")
    return problems


def defined_metrics(root: Path = ROOT) -> set[str]:
    """Every ``driftline_*`` metric name the services define (histogram series included)."""
    names: set[str] = set()
    for path in root.glob("services/**/*.py"):
        for short in _METRIC_DEF.findall(path.read_text(encoding="utf-8")):
            names.add(f"driftline_{short}")
    return names | {n + s for n in names for s in _HISTOGRAM_SUFFIXES}


def dashboard_problems(dashboards: Path = DASHBOARDS) -> list[str]:
    """The Grafana dashboards may query only metrics that exist in the code."""
    defined = defined_metrics()
    problems = []
    for path in sorted(dashboards.glob("*.json")):
        used = set(_METRIC_USE.findall(json.dumps(json.loads(path.read_text(encoding="utf-8")))))
        problems += [
            f"{path.name}: queries {m}, which no service defines" for m in sorted(used - defined)
        ]
    return problems


def docker_compose_problems(binary: str = "docker-compose") -> list[str]:
    """``docker-compose config -q`` passes with a signing key and fails without one."""
    exe = shutil.which(binary)
    if exe is None:
        return [f"{binary} is not installed (Debian: apt-get install docker-compose)"]
    base = [exe, "--project-directory", str(ROOT), "-f", str(COMPOSE), "--profile", "demo"]
    env = {k: v for k, v in os.environ.items() if k != "DRIFTLINE_SIGNING_KEY"}
    env.setdefault("DRIFTLINE_VERIFY_KEYS", PLACEHOLDER_PUBLIC)
    env.setdefault("DRIFTLINE_CHECKPOINT_KEY", PLACEHOLDER_CHECKPOINT)
    env.setdefault("DRIFTLINE_SERVICE_TOKEN", PLACEHOLDER_TOKEN)
    problems = []
    ok = subprocess.run(  # noqa: S603 - fixed arguments
        [*base, "config", "-q"],
        env={**env, "DRIFTLINE_SIGNING_KEY": PLACEHOLDER_KEY},
        capture_output=True,
        text=True,
        check=False,
    )
    print(f"docker-compose config -q: exit {ok.returncode}")  # noqa: T201
    if ok.stdout.strip() or ok.stderr.strip():
        print((ok.stdout + ok.stderr).strip())  # noqa: T201
    if ok.returncode != 0:
        problems.append(f"docker-compose config -q failed: {ok.stderr.strip()}")
    unsigned = subprocess.run(  # noqa: S603 - fixed arguments
        [*base, "config", "-q"], env=env, capture_output=True, text=True, check=False
    )
    if unsigned.returncode == 0 or "DRIFTLINE_SIGNING_KEY" not in unsigned.stderr:
        problems.append("docker-compose config accepts a missing DRIFTLINE_SIGNING_KEY")
    open_writes = subprocess.run(  # noqa: S603 - fixed arguments
        [*base, "config", "-q"],
        env={
            **{k: v for k, v in env.items() if k != "DRIFTLINE_SERVICE_TOKEN"},
            "DRIFTLINE_SIGNING_KEY": PLACEHOLDER_KEY,
        },
        capture_output=True,
        text=True,
        check=False,
    )
    if open_writes.returncode == 0 or "DRIFTLINE_SERVICE_TOKEN" not in open_writes.stderr:
        problems.append("docker-compose config accepts a missing DRIFTLINE_SERVICE_TOKEN")
    return problems


def registry_problems(compose: Mapping[str, Any]) -> list[str]:
    """Only the registry opens the database and the artifacts; the rest use its API."""
    problems = []
    for name, svc in driftline_services(compose).items():
        env = _environment(svc)
        url = env.get("DRIFTLINE_REGISTRY_URL", "")
        volumes = [str(v) for v in svc.get("volumes") or []]
        shared = [v for v in volumes if v.split(":")[0] == "artifacts"]
        remote = url.startswith(("http://", "https://"))
        if name == "registry":
            if remote or not url:
                problems.append("registry: DRIFTLINE_REGISTRY_URL must be its database's URL")
            continue
        if name == "topics":
            continue  # creates topics only
        if url and not remote:
            problems.append(f"{name}: opens the registry's database ({url.split(':')[0]})")
        if not env.get("DRIFTLINE_SERVICE_TOKEN"):
            problems.append(f"{name}: no DRIFTLINE_SERVICE_TOKEN for the registry's write API")
        if shared:
            problems.append(f"{name}: mounts the artifact volume; artifacts go through the API")
    return problems


def all_problems(*, docker_compose: bool = True) -> Iterator[str]:
    """Every problem found, one line each."""
    compose = load_compose()
    if docker_compose:
        yield from docker_compose_problems()
    yield from command_problems(compose)
    yield from env_problems(compose)
    yield from port_problems(compose)
    yield from registry_problems(compose)
    yield from dashboard_problems()


def _environment(svc: Mapping[str, Any]) -> dict[str, str]:
    env = svc.get("environment") or {}
    if isinstance(env, list):  # the KEY=VALUE list form
        env = dict(item.partition("=")[::2] for item in env)
    return {str(k): str(v) for k, v in env.items()}


def main(argv: list[str] | None = None) -> int:
    """Run every check; print each problem; exit 1 if there is any."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--no-docker-compose", action="store_true", help="skip `docker-compose config -q`"
    )
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    problems = list(all_problems(docker_compose=not args.no_docker_compose))
    for problem in problems:
        print(f"check-compose: {problem}", file=sys.stderr)  # noqa: T201
    if not problems:
        print(f"check-compose: {COMPOSE.name} is consistent with the package")  # noqa: T201
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
