"""The local broker's configuration, rendered as text (pure: no I/O, only strings and paths).

The broker is a single-node KRaft Kafka (one process is both broker and controller)
that listens on 127.0.0.1 only. Everything it keeps lives under ``<data dir>/kafka``,
laid out by :class:`BrokerLayout`.

>>> props = render_server_properties(Path("/srv/dl/kafka/data"), port=19092, controller_port=19093)
>>> "listeners=PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093" in props.splitlines()
True
>>> "log.dirs=/srv/dl/kafka/data" in props.splitlines()
True
>>> BrokerLayout.under(Path("/srv/dl")).log_file
PosixPath('/srv/dl/kafka/logs/broker.log')
>>> len(random_cluster_id())
22
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass
from pathlib import Path

KAFKA_VERSION = "3.9.1"
"""The Kafka release the local broker runs (pinned in the packaged ``pom.xml``)."""

LISTEN_HOST = "127.0.0.1"
"""The only interface the local broker binds."""

NODE_ID = 1


@dataclass(frozen=True)
class BrokerLayout:
    """Where the local broker keeps its state, all under ``root`` (``<data dir>/kafka``).

    >>> layout = BrokerLayout.under(Path("/d"))
    >>> layout.log_dir, layout.server_properties, layout.pid_file
    (PosixPath('/d/kafka/data'), PosixPath('/d/kafka/config/server.properties'), \
PosixPath('/d/kafka/run/broker.pid'))
    """

    root: Path

    @classmethod
    def under(cls, data_dir: Path) -> BrokerLayout:
        """The layout of the broker whose state lives in ``data_dir / "kafka"``."""
        return cls(data_dir / "kafka")

    @property
    def log_dir(self) -> Path:
        """Kafka's ``log.dirs``: topic partitions and the KRaft metadata log."""
        return self.root / "data"

    @property
    def meta_properties(self) -> Path:
        """Written when the storage is formatted; its absence means "format first"."""
        return self.log_dir / "meta.properties"

    @property
    def config_dir(self) -> Path:
        """Rendered configuration, rewritten on every start."""
        return self.root / "config"

    @property
    def server_properties(self) -> Path:
        """The broker's ``server.properties``; its path identifies our process."""
        return self.config_dir / "server.properties"

    @property
    def log4j_properties(self) -> Path:
        """The broker's logging configuration."""
        return self.config_dir / "log4j.properties"

    @property
    def settings_file(self) -> Path:
        """Ports and heap of the last start, so ``status`` and ``stop`` need no flags."""
        return self.config_dir / "broker.json"

    @property
    def logs_dir(self) -> Path:
        """Log files (not Kafka's data logs)."""
        return self.root / "logs"

    @property
    def log_file(self) -> Path:
        """The broker's own log (log4j: Kafka at INFO, everything else at WARN)."""
        return self.logs_dir / "broker.log"

    @property
    def console_file(self) -> Path:
        """The JVM's stdout and stderr of the latest start (crashes before logging starts)."""
        return self.logs_dir / "console.log"

    @property
    def run_dir(self) -> Path:
        """Runtime files: the PID file and the lock that serialises start and stop."""
        return self.root / "run"

    @property
    def pid_file(self) -> Path:
        """The PID of the running broker."""
        return self.run_dir / "broker.pid"

    @property
    def lock_file(self) -> Path:
        """Held (``flock``) while a process starts or stops the broker."""
        return self.run_dir / "lock"


def render_server_properties(
    log_dir: Path, *, port: int, controller_port: int, node_id: int = NODE_ID
) -> str:
    """The ``server.properties`` of a single-node KRaft broker bound to 127.0.0.1.

    Settings keep a one-node cluster healthy (replication factors of 1) and start-up
    fast (one offsets partition, no initial rebalance delay); topics are never created
    implicitly. ``group.min.session.timeout.ms`` is lowered so test clients may use
    short session timeouts.
    """
    _check_port("port", port)
    _check_port("controller_port", controller_port)
    if port == controller_port:
        raise ValueError(f"port and controller_port must differ (both are {port})")
    if not log_dir.is_absolute():
        raise ValueError(f"the log directory must be an absolute path, not {str(log_dir)!r}")
    if "," in str(log_dir):
        raise ValueError(f"the log directory path may not contain ',': {str(log_dir)!r}")
    settings = {
        "process.roles": "broker,controller",
        "node.id": str(node_id),
        "controller.quorum.voters": f"{node_id}@{LISTEN_HOST}:{controller_port}",
        "listeners": f"PLAINTEXT://{LISTEN_HOST}:{port},CONTROLLER://{LISTEN_HOST}:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://{LISTEN_HOST}:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": str(log_dir),
        "num.partitions": "1",
        "default.replication.factor": "1",
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        "group.min.session.timeout.ms": "1000",
        "auto.create.topics.enable": "false",
    }
    return _render("driftline local broker: rendered on every start, edits are lost", settings)


def render_log4j_properties(log_file: Path, *, max_file_size_mb: int = 10, backups: int = 3) -> str:
    """The broker's log4j (1.x / reload4j) configuration: one rolling file.

    The root logger is at WARN; Kafka's own ``kafka`` loggers at INFO, so start-up,
    shutdown and topic changes are visible, while per-request logging stays off.
    """
    settings = {
        "log4j.rootLogger": "WARN, file",
        "log4j.appender.file": "org.apache.log4j.RollingFileAppender",
        "log4j.appender.file.File": str(log_file),
        "log4j.appender.file.Append": "true",
        "log4j.appender.file.MaxFileSize": f"{max_file_size_mb}MB",
        "log4j.appender.file.MaxBackupIndex": str(backups),
        "log4j.appender.file.layout": "org.apache.log4j.PatternLayout",
        "log4j.appender.file.layout.ConversionPattern": "[%d] %p %m (%c)%n",
        "log4j.logger.kafka": "INFO",
        "log4j.logger.kafka.request.logger": "WARN",
    }
    return _render("driftline local broker logging", settings)


def random_cluster_id() -> str:
    """A new KRaft cluster id: 16 random bytes, URL-safe base64 without padding.

    Like Kafka's ``Uuid.randomUuid()``, never one that starts with ``-`` (it would read
    as an option on the command line).

    >>> cid = random_cluster_id()
    >>> len(base64.urlsafe_b64decode(cid + "==")), cid.startswith("-")
    (16, False)
    """
    while True:
        text = base64.urlsafe_b64encode(secrets.token_bytes(16)).decode("ascii").rstrip("=")
        if not text.startswith("-"):
            return text


def _check_port(name: str, port: int) -> None:
    if not 0 < port < 65536:
        raise ValueError(f"{name} must be between 1 and 65535, not {port}")


def _render(title: str, settings: dict[str, str]) -> str:
    lines = [f"# {title}"]
    lines += [f"{_escape(key, is_key=True)}={_escape(value)}" for key, value in settings.items()]
    return "\n".join(lines) + "\n"


def _escape(text: str, *, is_key: bool = False) -> str:
    r"""Escape for ``java.util.Properties.load(InputStream)``, which reads ISO-8859-1.

    >>> _escape("C:\\x é")
    'C:\\\\x \\u00e9'
    """
    out: list[str] = []
    for i, char in enumerate(text):
        if char == "\\":
            out.append("\\\\")
        elif (is_key and char in "=: ") or (char == " " and i == 0):
            out.append("\\" + char)
        elif char in "#!" and i == 0:
            out.append("\\" + char)
        elif not 0x20 <= ord(char) < 0x7F:
            out.extend(f"\\u{unit:04x}" for unit in _utf16_units(char))
        else:
            out.append(char)
    return "".join(out)


def _utf16_units(char: str) -> list[int]:
    data = char.encode("utf-16-be")
    return [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]
