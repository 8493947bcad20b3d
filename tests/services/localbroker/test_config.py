"""The local broker's rendered configuration (pure: no broker, no Java)."""

from __future__ import annotations

import base64
import re
from importlib import resources
from pathlib import Path

import pytest

from services.localbroker.config import (
    KAFKA_VERSION,
    BrokerLayout,
    random_cluster_id,
    render_log4j_properties,
    render_server_properties,
)

LOG_DIR = Path("/var/dl/kafka/data")


def parse(text: str) -> dict[str, str]:
    """Read a properties text the simple way (our values need no unescaping)."""
    pairs = (line.split("=", 1) for line in text.splitlines() if line and line[0] != "#")
    return {key: value for key, value in pairs}


@pytest.fixture
def props() -> dict[str, str]:
    return parse(render_server_properties(LOG_DIR, port=19092, controller_port=19093))


def test_listeners_bind_loopback_only(props: dict[str, str]) -> None:
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:19092"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:19093"
    hosts = re.findall(r"//([^:]+):", props["listeners"] + props["advertised.listeners"])
    assert set(hosts) == {"127.0.0.1"}


def test_single_node_kraft(props: dict[str, str]) -> None:
    assert props["process.roles"] == "broker,controller"
    assert props["node.id"] == "1"
    assert props["controller.listener.names"] == "CONTROLLER"
    assert props["inter.broker.listener.name"] == "PLAINTEXT"
    assert props["listener.security.protocol.map"] == "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
    for key in (
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
        "transaction.state.log.min.isr",
        "offsets.topic.num.partitions",
        "num.partitions",
    ):
        assert props[key] == "1", key


def test_fast_and_explicit(props: dict[str, str]) -> None:
    assert props["group.initial.rebalance.delay.ms"] == "0"
    assert props["auto.create.topics.enable"] == "false"


def test_data_goes_to_the_log_dir(props: dict[str, str]) -> None:
    assert props["log.dirs"] == str(LOG_DIR)


@pytest.mark.parametrize(
    ("log_dir", "port", "controller_port", "problem"),
    [
        (LOG_DIR, 0, 9093, "port must be between"),
        (LOG_DIR, 9092, 70000, "controller_port must be between"),
        (LOG_DIR, 9092, 9092, "must differ"),
        (Path("relative/data"), 9092, 9093, "absolute"),
        (Path("/a,b/data"), 9092, 9093, "','"),
    ],
)
def test_bad_arguments_are_refused(
    log_dir: Path, port: int, controller_port: int, problem: str
) -> None:
    with pytest.raises(ValueError, match=problem):
        render_server_properties(log_dir, port=port, controller_port=controller_port)


def test_paths_are_escaped_for_java_properties() -> None:
    text = render_server_properties(Path("/data/dé jà\\x"), port=1, controller_port=2)
    assert "log.dirs=/data/d\\u00e9 j\\u00e0\\\\x" in text.splitlines()
    text.encode("ascii")  # Properties.load(InputStream) reads ISO-8859-1


def test_log4j_writes_kafka_info_to_the_log_file() -> None:
    log4j = parse(render_log4j_properties(Path("/var/dl/kafka/logs/broker.log")))
    assert log4j["log4j.rootLogger"] == "WARN, file"
    assert log4j["log4j.logger.kafka"] == "INFO"
    assert log4j["log4j.appender.file.File"] == "/var/dl/kafka/logs/broker.log"
    assert "FileAppender" in log4j["log4j.appender.file"]
    assert not any("ConsoleAppender" in value for value in log4j.values())


def test_layout_keeps_everything_under_data_dir_kafka() -> None:
    layout = BrokerLayout.under(Path("/var/dl"))
    assert layout.root == Path("/var/dl/kafka")
    paths = [
        layout.log_dir,
        layout.meta_properties,
        layout.server_properties,
        layout.log4j_properties,
        layout.settings_file,
        layout.log_file,
        layout.console_file,
        layout.pid_file,
        layout.lock_file,
    ]
    assert all(path.is_relative_to(layout.root) for path in paths)
    assert len(set(paths)) == len(paths)
    assert layout.meta_properties.parent == layout.log_dir


def test_cluster_id_is_a_kafka_uuid() -> None:
    ids = {random_cluster_id() for _ in range(200)}
    assert len(ids) == 200
    for cid in ids:
        assert re.fullmatch(r"[A-Za-z0-9_-]{22}", cid), cid
        assert not cid.startswith("-")
        assert len(base64.urlsafe_b64decode(cid + "==")) == 16


def test_packaged_pom_pins_the_same_kafka_version() -> None:
    pom = resources.files("services.localbroker").joinpath("pom.xml").read_text("utf-8")
    assert re.findall(r"<kafka\.version>([^<]+)</kafka\.version>", pom) == [KAFKA_VERSION]
