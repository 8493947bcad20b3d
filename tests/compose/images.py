"""The images the compose test builds, each timed: a Debian base (debootstrap), the stand-ins
of deploy/images/ for what Docker Hub would give (Python, Kafka, PostgreSQL, Prometheus),
and the project's own Dockerfile on the Python stand-in.

Every image is named under ``localhost/driftline-compose/`` (the driftline image as
``localhost/driftline:compose-test``), so the teardown removes exactly these. With
``DRIFTLINE_COMPOSE_KEEP_IMAGES=1`` they stay as a cache: an image already present is not
rebuilt (the driftline image is always rebuilt, from podman's layer cache).
"""

from __future__ import annotations

import os
import shutil
import subprocess  # noqa: S404 - debootstrap and tar with fixed arguments
import time
from dataclasses import dataclass, field
from pathlib import Path

from services.common.settings import DriftlineSettings
from services.localbroker import ensure_jars
from tests.compose.engine import EngineError, Podman, run

ROOT = Path(__file__).resolve().parents[2]
STAND_INS = ROOT / "deploy" / "images"
BASE = "localhost/driftline-compose/debian:bookworm"
PYTHON = "localhost/driftline-compose/python:3.11"
KAFKA = "localhost/driftline-compose/kafka:3.9.1"
POSTGRES = "localhost/driftline-compose/postgres:15"
PROMETHEUS = "localhost/driftline-compose/prometheus:debian"
DRIFTLINE = "localhost/driftline:compose-test"
IMAGE_TAG = "compose-test"  # DRIFTLINE_IMAGE_TAG: docker-compose.yml names it driftline:<tag>
ALL = (DRIFTLINE, PROMETHEUS, POSTGRES, KAFKA, PYTHON, BASE)
DEFAULT_MIRROR = "http://deb.debian.org/debian"


@dataclass
class Built:
    """What building took: seconds per image (0 when it came from the cache) and sizes."""

    seconds: dict[str, float] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        """One line per image."""
        rows = [(n, self.seconds.get(n, 0.0), self.sizes.get(n, 0) / 1e6) for n in self.seconds]
        return "\n".join(f"  {n:<48} {s:6.1f} s  {mb:6.0f} MB" for n, s, mb in rows)


def build_all(podman: Podman, workdir: Path, log: Path, *, keep: bool) -> Built:
    """Build (or, with ``keep``, reuse) every image the stack needs."""
    built = Built()
    present = set(
        podman.run("images", "--format", "{{.Repository}}:{{.Tag}}", check=False).stdout.split()
    )

    def step(name: str, make: object) -> None:
        started = time.monotonic()
        if keep and name in present and name != DRIFTLINE:
            built.seconds[name] = 0.0
        else:
            make()  # type: ignore[operator]
            built.seconds[name] = time.monotonic() - started
        built.sizes[name] = podman.image_size(name)

    step(BASE, lambda: _base(podman, workdir, log))
    step(PYTHON, lambda: _build(podman, PYTHON, STAND_INS / "python", log))
    step(DRIFTLINE, lambda: _build(podman, DRIFTLINE, ROOT, log, python=PYTHON))
    step(KAFKA, lambda: _build(podman, KAFKA, _kafka_context(workdir), log))
    step(POSTGRES, lambda: _build(podman, POSTGRES, STAND_INS / "postgres", log))
    step(PROMETHEUS, lambda: _build(podman, PROMETHEUS, STAND_INS / "prometheus", log))
    return built


def _base(podman: Podman, workdir: Path, log: Path) -> None:
    """Debian bookworm (minbase) from the machine's own mirror, trusting the host's extra CAs
    (a TLS-inspecting proxy's, where there is one), imported as an image."""
    rootfs = workdir / "rootfs"
    run(
        ["debootstrap", "--variant=minbase", "bookworm", str(rootfs), mirror()],
        os.environ.copy(),
        podman.deadline,
        600,
        True,
        log,
    )
    shutil.rmtree(rootfs / "var" / "cache" / "apt" / "archives", ignore_errors=True)
    shutil.rmtree(rootfs / "var" / "lib" / "apt" / "lists", ignore_errors=True)  # apt-get update
    (rootfs / "var" / "lib" / "apt" / "lists" / "partial").mkdir(parents=True, exist_ok=True)
    for cert in Path("/usr/local/share/ca-certificates").glob("*.crt"):
        target = rootfs / "usr" / "local" / "share" / "ca-certificates" / cert.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(cert, target)
    with subprocess.Popen(  # noqa: S603 - fixed arguments
        ["tar", "-C", str(rootfs), "-c", "."],  # noqa: S607
        stdout=subprocess.PIPE,
    ) as tar:
        imported = subprocess.run(  # noqa: S603 - fixed arguments
            ["podman", "import", "--change", 'CMD ["bash"]', "-", BASE],  # noqa: S607
            stdin=tar.stdout,
            env=podman.env,
            capture_output=True,
            text=True,
            timeout=podman.deadline.cap(300),
            check=False,
        )
    shutil.rmtree(rootfs, ignore_errors=True)
    if imported.returncode != 0:
        raise EngineError(f"podman import failed: {imported.stderr[-500:]}")


def mirror() -> str:
    """The Debian mirror apt already uses on this machine (deb822 or one-line sources)."""
    sources = Path("/etc/apt/sources.list.d/debian.sources")
    if sources.is_file():
        for line in sources.read_text(encoding="utf-8").splitlines():
            if line.startswith("URIs:") and "security" not in line:
                return line.split()[1]
    listing = Path("/etc/apt/sources.list")
    if listing.is_file():
        for line in listing.read_text(encoding="utf-8").splitlines():
            parts = line.split()
            if parts[:1] == ["deb"] and "security" not in line:
                return next(p for p in parts[1:] if p.startswith("http"))
    return DEFAULT_MIRROR


def _kafka_context(workdir: Path) -> Path:
    """deploy/images/kafka plus the pinned Kafka jars (fetched once, as the local broker's)."""
    jars = ensure_jars(DriftlineSettings.load().cache_path)
    context = workdir / "kafka-context"
    shutil.copytree(STAND_INS / "kafka", context, dirs_exist_ok=True)
    shutil.copytree(jars, context / "libs", dirs_exist_ok=True)
    return context


def _build(podman: Podman, tag: str, context: Path, log: Path, python: str | None = None) -> None:
    args = ["build", "--runtime", "runc", "--layers", "-t", tag]
    if python is not None:
        args += ["--build-arg", f"PYTHON_IMAGE={python}"]
    else:
        args += ["--build-arg", f"BASE_IMAGE={BASE}"]
    podman.run(*args, str(context), timeout_s=900, log=log)
