"""Podman as the compose test uses it: runc and cgroupfs, its API socket for docker-compose,
healthchecks run on schedule, and a teardown of everything a project made, by name.

On these machines there is no Docker engine, and podman needs three settings (a
``containers.conf`` pointed to by ``CONTAINERS_CONF``): ``runc`` (crun fails with
``setrlimit RLIMIT_NPROC``), the ``cgroupfs`` manager and no default ulimits. Podman
schedules healthchecks with systemd timers; without systemd nobody runs them, so
:class:`HealthScheduler` runs ``podman healthcheck run`` for every container of the project,
as Docker's daemon would, and records when each first passed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess  # noqa: S404 - runs podman and docker-compose with fixed arguments
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.compose.deadline import Deadline

CONTAINERS_CONF = """\
# written by tests/compose/engine.py for this run only
[containers]
default_ulimits = []
[engine]
cgroup_manager = "cgroupfs"
runtime = "runc"
events_logger = "file"
"""


DNSNAME_PLUGIN = "/usr/lib/cni/dnsname"


class EngineError(RuntimeError):
    """A podman or docker-compose command failed."""


def missing_tools() -> str | None:
    """Why containers cannot run here, or ``None`` when podman and docker-compose can."""
    needed = ("podman", "runc", "debootstrap", "docker-compose")
    absent = [tool for tool in needed if shutil.which(tool) is None]
    if absent:
        return (
            f"{', '.join(absent)} not installed (Debian: apt-get install podman runc "
            "debootstrap docker-compose catatonit; `scripts/system-deps.sh --containers`)"
        )
    if not Path(DNSNAME_PLUGIN).exists():
        # Without it compose networks have no DNS: `kafka:9092` does not resolve and the
        # first container that needs the broker fails with "no Kafka broker answered".
        return (
            f"{DNSNAME_PLUGIN} missing: service names would not resolve on compose networks "
            "(Debian: apt-get install golang-github-containernetworking-plugin-dnsname)"
        )
    if os.geteuid() != 0:
        return "the compose test runs podman as root (debootstrap and bridge networks need it)"
    return None


@dataclass
class Podman:
    """The podman CLI with this run's configuration."""

    workdir: Path
    deadline: Deadline
    env: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        conf = self.workdir / "containers.conf"
        conf.write_text(CONTAINERS_CONF, encoding="utf-8")
        self.env = {**os.environ, "CONTAINERS_CONF": str(conf)}

    def run(
        self, *args: str, timeout_s: float = 120.0, check: bool = True, log: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        """``podman ARGS``; output to ``log`` when given (appended), else captured."""
        return run(["podman", *args], self.env, self.deadline, timeout_s, check, log)

    def works(self) -> str | None:
        """Why podman cannot run containers here, or ``None``."""
        probe = self.run("info", "--format", "{{.Host.OCIRuntime.Name}}", check=False)
        if probe.returncode != 0:
            return f"`podman info` failed: {probe.stderr.strip()[-300:]}"
        return None

    def image_size(self, ref: str) -> int:
        """Bytes of an image (its layers, as ``podman images`` counts them)."""
        out = self.run("image", "inspect", "--format", "{{.Size}}", ref).stdout.strip()
        return int(out)

    def containers(self, project: str) -> list[dict[str, object]]:
        """Every container of a compose project (running or not)."""
        label = f"label=com.docker.compose.project={project}"
        out = self.run("ps", "-a", "--format", "json", "--filter", label).stdout
        data = json.loads(out or "[]")
        return list(data) if isinstance(data, list) else []

    def inspect(self, name: str) -> dict[str, object]:
        """``podman inspect`` of one container."""
        data = json.loads(self.run("inspect", name).stdout)
        return dict(data[0])


@dataclass
class ApiService:
    """``podman system service`` on a socket of ours, so docker-compose can talk to podman."""

    podman: Podman
    socket: Path
    log: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 30.0) -> str:
        """Start it; returns the ``DOCKER_HOST`` value once the socket answers."""
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(  # noqa: S603 - fixed arguments
                ["podman", "system", "service", "--time=0", f"unix://{self.socket}"],  # noqa: S607
                env=self.podman.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + self.podman.deadline.cap(timeout_s)
        while not self.socket.exists():
            if self.process.poll() is not None:
                raise EngineError(f"podman system service exited: {self.log.read_text()[-500:]}")
            if time.monotonic() > deadline:
                raise EngineError(f"podman's API socket {self.socket} did not appear")
            time.sleep(0.1)
        return f"unix://{self.socket}"

    def stop(self) -> None:
        """Stop the service we started (by its pid)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


@dataclass
class HealthScheduler:
    """Runs every project container's healthcheck every ``every_s``, as Docker's daemon does
    (podman needs systemd for that). ``healthy_at`` holds when each first passed."""

    podman: Podman
    project: str
    every_s: float = 2.0
    healthy_at: dict[str, float] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> HealthScheduler:
        """Start the background thread; ``healthy_at`` counts from now."""
        self.started = time.monotonic()
        self._thread = threading.Thread(target=self._loop, name="healthchecks", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop it and wait for the thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _loop(self) -> None:
        """Give every running container a prober thread of its own (a slow probe of one
        container never delays another's)."""
        probers: dict[str, threading.Thread] = {}
        while not self._stop.is_set():
            try:
                for ctr in self.podman.containers(self.project):
                    name = str((ctr.get("Names") or ["?"])[0])  # type: ignore[index]
                    if ctr.get("State") == "running" and name not in probers:
                        probers[name] = threading.Thread(
                            target=self._probe, args=(name,), name=f"health-{name}", daemon=True
                        )
                        probers[name].start()
            except Exception:  # noqa: BLE001, S110 - the next round retries
                pass
            self._stop.wait(self.every_s)
        for thread in probers.values():
            thread.join(timeout=65)

    def _probe(self, name: str) -> None:
        try:
            interval = self._interval(name)
        except Exception:  # noqa: BLE001 - gone already
            return
        while interval is not None and not self._stop.is_set():
            try:
                result = self.podman.run("healthcheck", "run", name, timeout_s=90, check=False)
                healthy = result.returncode == 0
            except Exception:  # noqa: BLE001 - podman itself too slow this time: try again
                healthy = False
            if healthy:
                self.healthy_at.setdefault(name, time.monotonic() - self.started)
            elif not self._exists(name):  # exit 125 is also a probe that timed out
                return
            self._stop.wait(interval)

    def _exists(self, name: str) -> bool:
        try:
            return self.podman.run("container", "exists", name, check=False).returncode == 0
        except Exception:  # noqa: BLE001 - out of budget: stop probing
            return False

    def _interval(self, name: str) -> float | None:
        """The container's healthcheck interval in seconds (``None``: it has none)."""
        config = self.podman.inspect(name).get("Config") or {}
        check = config.get("Healthcheck") if isinstance(config, dict) else None
        if not check or not check.get("Test") or check["Test"][:1] == ["NONE"]:
            return None
        return float(check.get("Interval") or 0) / 1e9 or self.every_s


def teardown(podman: Podman, project: str, images: Sequence[str], log: Path) -> list[str]:
    """Remove the project's containers, pods, networks and volumes, then ``images``; returns
    what is left behind (empty when the teardown is complete)."""
    label = f"label=com.docker.compose.project={project}"
    ids = podman.run("ps", "-a", "-q", "--filter", label, check=False).stdout.split()
    if ids:
        podman.run("rm", "-f", "-t", "5", *ids, check=False, log=log, timeout_s=120)
    vols = podman.run("volume", "ls", "-q", "--filter", label, check=False).stdout.split()
    vols += [
        v
        for v in podman.run("volume", "ls", "-q", check=False).stdout.split()
        if v.startswith(f"{project}_")
    ]
    if vols:
        podman.run("volume", "rm", "-f", *sorted(set(vols)), check=False, log=log)
    nets = [
        n
        for n in podman.run("network", "ls", "--format", "{{.Name}}", check=False).stdout.split()
        if n.startswith(f"{project}_")
    ]
    if nets:
        podman.run("network", "rm", "-f", *nets, check=False, log=log)
    for image in images:
        podman.run("rmi", "-f", image, check=False, log=log, timeout_s=120)
    podman.run("image", "prune", "-f", "--filter", "dangling=true", check=False, log=log)
    left = podman.run("ps", "-a", "-q", "--filter", label, check=False).stdout.split()
    left += [
        v for v in podman.run("volume", "ls", "-q", check=False).stdout.split() if project in v
    ]
    left += [
        n
        for n in podman.run("network", "ls", "--format", "{{.Name}}", check=False).stdout.split()
        if project in n
    ]
    present = podman.run("images", "--format", "{{.Repository}}:{{.Tag}}", check=False).stdout
    left += [i for i in images if i in present.split()]
    return left


def run(
    cmd: Sequence[str],
    env: dict[str, str],
    deadline: Deadline,
    timeout_s: float,
    check: bool,
    log: Path | None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` within the budget; with ``log``, its output is appended there."""
    limit = deadline.cap(timeout_s)
    try:
        if log is not None:
            with log.open("a", encoding="utf-8") as out:
                out.write(f"\n$ {' '.join(cmd)}\n")
                out.flush()
                result = subprocess.run(  # noqa: S603 - fixed arguments
                    list(cmd),
                    env=env,
                    cwd=cwd,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    text=True,
                    timeout=limit,
                    check=False,
                )
        else:
            result = subprocess.run(  # noqa: S603 - fixed arguments
                list(cmd),
                env=env,
                cwd=cwd,
                capture_output=True,
                stdin=subprocess.DEVNULL,
                text=True,
                timeout=limit,
                check=False,
            )
    except subprocess.TimeoutExpired as exc:
        raise EngineError(f"`{' '.join(cmd[:4])} ...` did not finish within {limit:.0f} s") from exc
    if check and result.returncode != 0:
        tail = (result.stderr or "")[-2000:] if log is None else _tail(log)
        raise EngineError(f"`{' '.join(cmd[:6])}` failed (exit {result.returncode}):\n{tail}")
    return result


def _tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
