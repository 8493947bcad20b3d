"""The local broker's Java side: find a Java 17+ runtime and the pinned Kafka jars.

The jars are fetched once with Maven from the ``pom.xml`` packaged next to this module
into ``<cache dir>/kafka-<version>/``. A download goes to a temporary directory that is
renamed into place only when complete (with a marker file inside), so an interrupted
download is never used; concurrent downloads are harmless (the first rename wins).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from importlib import resources
from pathlib import Path

from services.common.errors import LocalBrokerError
from services.localbroker.config import KAFKA_VERSION

MIN_JAVA = 17
MARKER = ".driftline-complete"
# Pinned so every Maven version copies the same way (2.8 is Maven 3.8's default).
COPY_GOAL = "org.apache.maven.plugins:maven-dependency-plugin:2.8:copy-dependencies"
_KAFKA_JAR = f"kafka_2.13-{KAFKA_VERSION}.jar"
_JAVA_VERSION = re.compile(r'version "(\d+)(?:\.(\d+))?')
_USE_EXTERNAL = "or set DRIFTLINE_KAFKA_BOOTSTRAP to use a Kafka broker you already run"


def jars_dir(cache_dir: Path) -> Path:
    """Where the jars of the pinned Kafka release live (whether or not present yet)."""
    return cache_dir / f"kafka-{KAFKA_VERSION}"


def cached_jars(cache_dir: Path) -> Path | None:
    """The jar directory when a complete download is present, else ``None``."""
    target = jars_dir(cache_dir)
    if (target / MARKER).is_file() and (target / _KAFKA_JAR).is_file():
        return target
    return None


def ensure_jars(cache_dir: Path, *, timeout_s: float = 900.0) -> Path:
    """Return the directory of the Kafka jars, downloading them with Maven if needed.

    Also checks that Java 17 or newer is installed, since the jars are useless without it.
    Raises :class:`~services.common.errors.LocalBrokerError` naming what to install when
    ``java`` or ``mvn`` is missing, or with the tail of Maven's output when it fails.
    """
    find_java()
    present = cached_jars(cache_dir)
    if present is not None:
        return present
    mvn = find_mvn(cache_dir)
    target = jars_dir(cache_dir)
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=cache_dir))
    except OSError as exc:
        raise LocalBrokerError(f"cannot create the jar cache in {cache_dir}: {exc}") from exc
    try:
        return _download(mvn, work, target, timeout_s)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _download(mvn: str, work: Path, target: Path, timeout_s: float) -> Path:
    pom = work / "pom.xml"
    with resources.as_file(resources.files("services.localbroker") / "pom.xml") as packaged:
        shutil.copyfile(packaged, pom)
    out = work / "jars"
    cmd = [mvn, "-q", "-B", "-f", str(pom), COPY_GOAL, f"-DoutputDirectory={out}"]
    try:
        result = subprocess.run(  # noqa: S603  # fixed arguments, no shell
            cmd,
            cwd=work,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise LocalBrokerError(
            f"Maven did not finish downloading the Kafka {KAFKA_VERSION} jars within "
            f"{timeout_s:.0f}s; check the network (or Maven's proxy settings) and retry"
        ) from exc
    except OSError as exc:
        raise LocalBrokerError(f"cannot run {mvn}: {exc}") from exc
    jars = sorted(out.glob("*.jar")) if out.is_dir() else []
    if result.returncode != 0 or not (out / _KAFKA_JAR).is_file():
        output = (result.stdout + result.stderr).strip().splitlines()
        tail = "\n".join(output[-30:]) or "(no output)"
        raise LocalBrokerError(
            f"Maven could not download the Kafka {KAFKA_VERSION} jars "
            f"(exit code {result.returncode}):\n{tail}"
        )
    (out / MARKER).write_text(
        json.dumps({"kafka_version": KAFKA_VERSION, "jars": len(jars)}) + "\n", encoding="utf-8"
    )
    stale = target.exists() and cached_jars(target.parent) is None
    if stale:
        # An incomplete copy that did not come from us (we only ever rename whole ones).
        shutil.rmtree(target, ignore_errors=True)
    try:
        out.rename(target)
    except OSError:
        # Another process finished first: use its copy when it is complete.
        if cached_jars(target.parent) is None:
            raise LocalBrokerError(
                f"cannot move the downloaded jars into {target}; remove it and retry"
            ) from None
    return target


def find_java() -> str:
    """The ``java`` to run the broker with (``$JAVA_HOME/bin/java``, else PATH), checked >= 17."""
    java_home = os.environ.get("JAVA_HOME")
    candidate = Path(java_home) / "bin" / "java" if java_home else None
    java = str(candidate) if candidate and candidate.is_file() else shutil.which("java")
    if java is None:
        raise LocalBrokerError(
            f"the local Kafka broker needs Java {MIN_JAVA} or newer, and no `java` is on PATH. "
            "Install it (Debian/Ubuntu: `apt-get install openjdk-17-jre-headless`; "
            f"macOS: `brew install openjdk@17`), {_USE_EXTERNAL}"
        )
    try:
        result = subprocess.run(  # noqa: S603  # fixed arguments, no shell
            [java, "-version"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise LocalBrokerError(f"cannot run `{java} -version`: {exc}") from exc
    output = result.stderr + result.stdout
    major = parse_java_major(output)
    if result.returncode != 0 or major is None:
        first = output.strip().splitlines()[:3]
        raise LocalBrokerError(
            f"`{java} -version` failed or printed no version: {' / '.join(first) or 'no output'}"
        )
    if major < MIN_JAVA:
        raise LocalBrokerError(
            f"the local Kafka broker needs Java {MIN_JAVA} or newer, but {java} is Java {major}. "
            "Install a newer one (Debian/Ubuntu: `apt-get install openjdk-17-jre-headless`) and "
            f"put it first on PATH or point JAVA_HOME at it, {_USE_EXTERNAL}"
        )
    return java


def find_mvn(cache_dir: Path) -> str:
    """The ``mvn`` on PATH; needed only for the one-time jar download."""
    mvn = shutil.which("mvn")
    if mvn is None:
        raise LocalBrokerError(
            f"Maven is needed once to download the Kafka {KAFKA_VERSION} jars into "
            f"{jars_dir(cache_dir)}, and no `mvn` is on PATH. Install it (Debian/Ubuntu: "
            f"`apt-get install maven`; macOS: `brew install maven`), {_USE_EXTERNAL}"
        )
    return mvn


def parse_java_major(version_output: str) -> int | None:
    """The major version from ``java -version`` output (``1.8`` counts as 8).

    >>> parse_java_major('openjdk version "17.0.15" 2025-04-15')
    17
    >>> parse_java_major('java version "1.8.0_292"')
    8
    >>> parse_java_major('openjdk version "21" 2023-09-19')
    21
    >>> parse_java_major("command not found") is None
    True
    """
    match = _JAVA_VERSION.search(version_output)
    if match is None:
        return None
    major = int(match.group(1))
    if major == 1 and match.group(2) is not None:
        return int(match.group(2))
    return major
