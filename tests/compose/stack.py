"""The compose stack of one test run: docker-compose.yml plus the local-images override,
driven by docker-compose through podman's API socket, under a project name of its own,
with every host port on 127.0.0.1 and chosen free."""

from __future__ import annotations

import json
import secrets
import shlex
import socket
import subprocess  # noqa: S404 - driftline keys generate
import sys
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.compose.engine import EngineError, Podman, run
from tests.compose.images import IMAGE_TAG

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILES = (ROOT / "docker-compose.yml", ROOT / "deploy" / "compose" / "local-images.yml")
LONG_RUNNING = ("kafka", "postgres", "registry", "validator", "learner", "trainer", "serving",
                "evaluator", "prometheus")  # fmt: skip
SERVING_REPLICAS = 2


def signing_keys() -> dict[str, str]:
    """A fresh Ed25519 pair from ``driftline keys generate --env`` (signing key, its id and
    the public verify keys)."""
    driftline = str(Path(sys.executable).with_name("driftline"))
    out = subprocess.run(  # noqa: S603 - fixed arguments
        [driftline, "keys", "generate", "--id", "compose-test", "--env"],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    pairs = (line.removeprefix("export ").split("=", 1) for line in out.splitlines() if "=" in line)
    return {k.strip(): shlex.split(v)[0] if v.strip() else "" for k, v in pairs}


def free_port() -> int:
    """A port nobody listens on at 127.0.0.1 now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Stack:
    """One compose project: its environment, its commands, its host ports."""

    podman: Podman
    project: str
    docker_host: str
    log: Path
    ports: dict[str, int] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.ports = {name: free_port() for name in ("kafka", "registry", "prometheus")}
        self.env = {
            **self.podman.env,
            "DOCKER_HOST": self.docker_host,
            "COMPOSE_PROJECT_NAME": self.project,
            "DRIFTLINE_IMAGE_TAG": IMAGE_TAG,
            **signing_keys(),
            "DRIFTLINE_CHECKPOINT_KEY": secrets.token_hex(32),
            "DRIFTLINE_SERVICE_TOKEN": secrets.token_hex(32),
            "DRIFTLINE_ADMIN_TOKEN": secrets.token_hex(16),
            "POSTGRES_PASSWORD": secrets.token_hex(12),
            "PUBLISH_ADDRESS": "127.0.0.1",
            "KAFKA_HOST_PORT": str(self.ports["kafka"]),
            "REGISTRY_HOST_PORT": str(self.ports["registry"]),
            "PROMETHEUS_HOST_PORT": str(self.ports["prometheus"]),
            "SERVING_HOST_PORT": "",  # each replica on a free port of its own
        }

    def compose(self, *args: str, timeout_s: float = 300.0, check: bool = True) -> str:
        """``docker-compose -f docker-compose.yml -f local-images.yml ARGS`` (output logged)."""
        files = [arg for path in COMPOSE_FILES for arg in ("-f", str(path))]
        cmd = ["docker-compose", "--project-directory", str(ROOT), *files, *args]
        result = run(cmd, self.env, self.podman.deadline, timeout_s, check, self.log, cwd=ROOT)
        return str(result.returncode)

    def up(self, timeout_s: float) -> float:
        """Start the stack (serving scaled out); returns the seconds ``up`` took."""
        started = time.monotonic()
        self.compose(
            "up", "-d", "--no-build", "--scale", f"serving={SERVING_REPLICAS}", timeout_s=timeout_s
        )
        return time.monotonic() - started

    def containers(self, service: str) -> list[str]:
        """Names of the running containers of one compose service."""
        out = self.podman.run(
            "ps", "--format", "{{.Names}}",
            "--filter", f"label=com.docker.compose.project={self.project}",
            "--filter", f"label=com.docker.compose.service={service}",
        ).stdout  # fmt: skip
        return sorted(out.split())

    def host_port(self, container: str, port: int) -> int:
        """The 127.0.0.1 port a container's ``port`` is published on."""
        out = self.podman.run("port", container, f"{port}/tcp").stdout.strip().splitlines()
        for line in out:
            host, _, number = line.rpartition(":")
            if host in ("127.0.0.1", "0.0.0.0"):  # noqa: S104 - reading, not binding
                return int(number)
        raise EngineError(f"{container}: port {port} is not published on 127.0.0.1: {out}")

    def url(self, name: str, path: str) -> str:
        """A URL on one of the stack's published services (registry, prometheus)."""
        return f"http://127.0.0.1:{self.ports[name]}{path}"

    # -- Prometheus ---------------------------------------------------------------------

    def prometheus(self, path: str, **params: str) -> Any:
        """``GET /api/v1/<path>`` on the stack's Prometheus; its ``data``."""
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        body = get_json(self.url("prometheus", f"/api/v1/{path}{query}"))
        if body.get("status") != "success":
            raise EngineError(f"Prometheus {path}: {body}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant PromQL query's result vector."""
        data = self.prometheus("query", query=expr)
        result = data.get("result", [])
        return list(result) if isinstance(result, list) else []

    def value(self, expr: str) -> float | None:
        """The first sample of an instant query, or ``None`` when there is none."""
        result = self.query(expr)
        return float(result[0]["value"][1]) if result else None


def get_json(url: str, timeout_s: float = 10.0, data: bytes | None = None) -> Any:
    """GET (or POST ``data`` as JSON) and decode the answer; loopback only."""
    if not url.startswith("http://127.0.0.1:"):
        raise ValueError(f"the compose test talks only to 127.0.0.1, not {url}")
    headers = {"Content-Type": "application/json"} if data is not None else {}
    request = urllib.request.Request(url, data=data, headers=headers)  # noqa: S310 - loopback
    with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310
        return json.loads(response.read())


def wait_until(what: str, check: Any, timeout_s: float, poll_s: float = 1.0) -> Any:
    """Poll ``check()`` until it returns something truthy; raise naming ``what`` when the
    deadline passes (errors while polling count as "not yet")."""
    deadline = time.monotonic() + timeout_s
    last: object = None
    while True:
        try:
            value = check()
        except Exception as exc:  # noqa: BLE001 - not up yet; reported at the deadline
            value, last = None, exc
        if value:
            return value
        if time.monotonic() > deadline:
            raise EngineError(f"timed out after {timeout_s:.0f} s waiting for {what} ({last})")
        time.sleep(poll_s)
