"""The local development broker: idempotent start, clean stop, --fresh, restart, CLI."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from kafka import KafkaAdminClient
from kafka.admin import NewTopic

from services.common.errors import LocalBrokerError
from services.common.settings import DriftlineSettings
from services.localbroker import LocalBroker, ensure_jars
from services.localbroker.jars import find_java
from services.localbroker.ports import free_ports

OwnBroker = Callable[..., LocalBroker]


@contextmanager
def admin_client(bootstrap: str) -> Iterator[KafkaAdminClient]:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30_000)
    try:
        yield admin
    finally:
        admin.close()


def create_topic(bootstrap: str) -> str:
    name = f"t-{uuid.uuid4().hex}"
    with admin_client(bootstrap) as admin:
        admin.create_topics([NewTopic(name, 1, 1)])
        admin.wait_for_topics([name])  # metadata propagates after the create returns
    return name


def topics(bootstrap: str) -> set[str]:
    with admin_client(bootstrap) as admin:
        return set(admin.list_topics())


def process_gone(pid: int) -> bool:
    """No such process at all: it exited and was reaped."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return not Path(f"/proc/{pid}").exists()
    return False


def process_exited(pid: int) -> bool:
    """Gone, or a zombie whose parent (init, for a CLI-started broker) has yet to reap it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return process_gone(pid)
    return stat.rpartition(")")[2].split()[0] in ("Z", "X")


# -- the library -------------------------------------------------------------------------


def test_start_is_idempotent_and_status_reports_it(own_broker: OwnBroker) -> None:
    broker = own_broker()
    assert broker.status().running is False

    bootstrap = broker.start()
    assert bootstrap == f"127.0.0.1:{broker.port}"
    status = broker.status()
    assert status.running and status.pid is not None
    assert status.bootstrap == bootstrap
    assert status.data_dir == broker.data_dir / "kafka"
    assert status.log_file == broker.log_file and broker.log_file.is_file()
    # Logged by the acceptor before it takes its first connection, so already there.
    assert f"Awaiting socket connections on 127.0.0.1:{broker.port}" in broker.tail(1000)

    # Again, from this instance and from another one on the same data dir: no new process.
    assert broker.start() == bootstrap
    other = LocalBroker.from_data_dir(broker.data_dir, broker.cache_dir)
    assert other.start() == bootstrap
    assert broker.status().pid == other.status().pid == status.pid
    assert create_topic(bootstrap) in topics(bootstrap)


def test_stop_leaves_no_process(own_broker: OwnBroker) -> None:
    broker = own_broker()
    broker.start()
    pid = broker.status().pid
    assert pid is not None

    assert broker.stop() is True
    assert process_gone(pid)
    assert broker.status().running is False
    assert not broker.layout.pid_file.exists()
    assert broker.stop() is False


def test_stop_when_never_started_returns_false(tmp_path: Path) -> None:
    broker = LocalBroker(tmp_path / "never", tmp_path / "cache")
    assert broker.stop() is False
    assert not (tmp_path / "never").exists()


def test_a_reused_pid_is_not_mistaken_for_the_broker(own_broker: OwnBroker) -> None:
    broker = own_broker()
    broker.layout.run_dir.mkdir(parents=True)
    broker.layout.pid_file.write_text(f"{os.getpid()}\n")  # this very test process

    assert broker.status().running is False
    assert broker.stop() is False  # and we are still alive to check it
    assert not broker.layout.pid_file.exists()


def test_restart_keeps_topics(own_broker: OwnBroker) -> None:
    broker = own_broker()
    bootstrap = broker.start()
    topic = create_topic(bootstrap)
    first_pid = broker.status().pid

    assert broker.stop() is True
    assert broker.start() == bootstrap
    assert broker.status().pid != first_pid
    assert topic in topics(bootstrap)


def test_fresh_start_wipes_topics(own_broker: OwnBroker) -> None:
    broker = own_broker()
    bootstrap = broker.start()
    topic = create_topic(bootstrap)
    first_pid = broker.status().pid
    assert first_pid is not None

    assert broker.start(fresh=True) == bootstrap  # stops the running one first
    assert process_gone(first_pid)
    assert topic not in topics(bootstrap)


def test_port_taken_by_another_process_fails_fast(own_broker: OwnBroker) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        broker = own_broker(port=squatter.getsockname()[1])
        with pytest.raises(LocalBrokerError, match="already in use by another process"):
            broker.start()
    assert broker.status().running is False
    assert not broker.layout.pid_file.exists()


def test_broker_dying_at_start_reports_its_log(own_broker: OwnBroker) -> None:
    broker = own_broker()
    broker.start()
    broker.stop()
    meta = broker.layout.meta_properties
    meta.write_text(meta.read_text().replace("node.id=1", "node.id=7"))

    with pytest.raises(LocalBrokerError, match="exited with code") as info:
        broker.start(timeout_s=60)
    assert "node" in str(info.value).lower()  # Kafka's own complaint, from the log tail
    assert str(broker.log_file) in str(info.value)
    assert broker.status().running is False


# -- missing or old Java, missing Maven ---------------------------------------------------


@pytest.fixture
def bare_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """PATH is an empty directory (tests may add programs to it); no JAVA_HOME."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    return bin_dir


def test_missing_java_says_what_to_install(bare_path: Path, tmp_path: Path) -> None:
    with pytest.raises(LocalBrokerError, match="apt-get install openjdk-17-jre-headless"):
        ensure_jars(tmp_path / "cache")
    port, controller_port = free_ports(2)
    broker = LocalBroker(tmp_path / "data", tmp_path / "cache", port, controller_port)
    with pytest.raises(LocalBrokerError, match="no `java` is on PATH"):
        broker.start()
    assert not broker.layout.pid_file.exists()


def test_old_java_is_refused(bare_path: Path, tmp_path: Path) -> None:
    fake = bare_path / "java"
    fake.write_text("#!/bin/sh\necho 'openjdk version \"11.0.22\" 2024-01-16' >&2\n")
    fake.chmod(0o755)
    with pytest.raises(LocalBrokerError, match="needs Java 17 or newer, but .* is Java 11"):
        ensure_jars(tmp_path / "cache")


def test_missing_maven_says_what_to_install(
    kafka_jars: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_java = find_java()  # kafka_jars made sure there is one
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "java").symlink_to(real_java)
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    with pytest.raises(LocalBrokerError, match="apt-get install maven"):
        ensure_jars(tmp_path / "empty-cache")
    assert not (tmp_path / "empty-cache" / "kafka-3.9.1").exists()


# -- the command line ---------------------------------------------------------------------


def driftline(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.cli.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


@pytest.fixture
def cli_env(tmp_path: Path, driftline_settings: DriftlineSettings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTLINE_")}
    env["DRIFTLINE_DATA_DIR"] = str(tmp_path / "data")
    env["DRIFTLINE_CACHE_DIR"] = str(driftline_settings.cache_path)
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    return env


def test_cli_start_status_stop(kafka_jars: Path, cli_env: dict[str, str], tmp_path: Path) -> None:
    port, controller_port = free_ports(2)
    ports = ["--port", str(port), "--controller-port", str(controller_port)]
    try:
        started = driftline(cli_env, "broker", "start", *ports)
        assert started.returncode == 0, started.stderr
        assert f"127.0.0.1:{port}" in started.stdout

        again = driftline(cli_env, "broker", "start")  # the port is remembered
        assert again.returncode == 0, again.stderr
        assert f"already running at 127.0.0.1:{port}" in again.stdout

        status = driftline(cli_env, "broker", "status", "--json")
        assert status.returncode == 0, status.stderr
        report = json.loads(status.stdout)
        assert report["running"] is True and report["bootstrap"] == f"127.0.0.1:{port}"
        pid = report["pid"]

        logs = driftline(cli_env, "broker", "logs", "-n", "5")
        assert logs.returncode == 0 and len(logs.stdout.splitlines()) == 5

        stopped = driftline(cli_env, "broker", "stop")
        assert stopped.returncode == 0, stopped.stderr
        assert f"stopped the local broker (pid {pid})" in stopped.stdout
        assert process_exited(pid)

        after = driftline(cli_env, "broker", "status")
        assert after.returncode == 1 and "not running" in after.stdout
    finally:
        LocalBroker.from_data_dir(tmp_path / "data", Path(cli_env["DRIFTLINE_CACHE_DIR"])).stop()


def test_cli_with_external_broker_starts_and_stops_nothing(
    kafka_bootstrap: str, cli_env: dict[str, str], tmp_path: Path
) -> None:
    env = cli_env | {"DRIFTLINE_KAFKA_BOOTSTRAP": kafka_bootstrap}

    started = driftline(env, "broker", "start")
    assert started.returncode == 0, started.stderr
    assert f"using the external broker at {kafka_bootstrap}" in started.stdout

    stopped = driftline(env, "broker", "stop")
    assert stopped.returncode == 0 and "external" in stopped.stdout
    assert create_topic(kafka_bootstrap) in topics(kafka_bootstrap)  # still up
    assert not (tmp_path / "data" / "kafka").exists()  # nothing local was made


def test_cli_reports_errors_without_a_traceback(cli_env: dict[str, str]) -> None:
    env = cli_env | {"DRIFTLINE_KAFKA_BOOTSTRAP": "127.0.0.1:1", "DRIFTLINE_KAFKA_TIMEOUT_S": "2"}
    failed = driftline(env, "broker", "start")
    assert failed.returncode == 2
    assert failed.stderr.startswith("driftline: error: no Kafka broker answered at 127.0.0.1:1")
    assert "Traceback" not in failed.stderr
