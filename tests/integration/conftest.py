"""Fixtures for tests against a real Kafka broker.

``kafka_bootstrap`` is one broker for the whole run: ``DRIFTLINE_KAFKA_BOOTSTRAP`` when
set, else a local broker on free ports with its data in a temporary directory.
``own_broker`` makes extra local brokers for tests that must stop or restart one.

Without Java or Maven these tests skip, unless ``DRIFTLINE_REQUIRE_REAL=1`` (CI), where
they fail. Every test under ``tests/integration`` is marked ``integration``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from services.common.errors import BrokerUnavailable, LocalBrokerError
from services.common.kafka_client import client_config, wait_until_ready
from services.common.settings import DriftlineSettings
from services.localbroker import LocalBroker, ensure_jars
from services.localbroker.ports import free_ports
from tests.integration.registry_service import RegistryServices, fresh_database, registry_mode
from tests.keys import private_key_for
from tests.real import require_real

_HERE = Path(__file__).parent
START_TIMEOUT_S = 120.0


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test collected under tests/integration (and only those)."""
    for item in items:
        if item.path.is_relative_to(_HERE):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def driftline_settings() -> DriftlineSettings:
    """The settings of the environment the tests run in."""
    return DriftlineSettings.load()


@pytest.fixture(scope="session")
def kafka_jars(driftline_settings: DriftlineSettings) -> Path:
    """The Kafka jars (fetched once into the user's cache); skips without Java or Maven."""
    try:
        return ensure_jars(driftline_settings.cache_path)
    except LocalBrokerError as exc:
        require_real(f"no local Kafka broker can run: {exc}")


@pytest.fixture(scope="session")
def kafka_bootstrap(
    driftline_settings: DriftlineSettings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """Bootstrap servers of the broker every integration test shares."""
    settings = driftline_settings
    if not settings.uses_local_broker:
        try:
            wait_until_ready(
                settings.bootstrap,
                timeout_s=settings.kafka_timeout_s,
                client_config=client_config(settings),
            )
        except BrokerUnavailable as exc:
            require_real(f"DRIFTLINE_KAFKA_BOOTSTRAP is set but unusable: {exc}")
        yield settings.bootstrap
        return
    try:
        ensure_jars(settings.cache_path)
    except LocalBrokerError as exc:
        require_real(f"no local Kafka broker can run: {exc}")
    port, controller_port = free_ports(2)
    broker = LocalBroker(
        tmp_path_factory.mktemp("kafka-session"),
        settings.cache_path,
        port=port,
        controller_port=controller_port,
    )
    try:
        yield broker.start(timeout_s=START_TIMEOUT_S)
    finally:
        broker.stop()


@pytest.fixture
def own_broker(
    kafka_jars: Path, driftline_settings: DriftlineSettings, tmp_path: Path
) -> Iterator[Callable[..., LocalBroker]]:
    """A factory of local brokers (not started) on free ports, each in its own data dir.

    ``own_broker(data_dir=None, **kwargs)``: keyword arguments go to :class:`LocalBroker`.
    Every broker it made is stopped when the test ends.
    """
    made: list[LocalBroker] = []

    def make(data_dir: Path | None = None, **kwargs: Any) -> LocalBroker:
        if data_dir is None:
            data_dir = tmp_path / f"broker-{len(made)}"
        if "port" not in kwargs or "controller_port" not in kwargs:
            port, controller_port = free_ports(2)
            kwargs.setdefault("port", port)
            kwargs.setdefault("controller_port", controller_port)
        broker = LocalBroker(data_dir, driftline_settings.cache_path, **kwargs)
        made.append(broker)
        return broker

    yield make
    failures = []
    for broker in made:
        try:
            broker.stop()
        except LocalBrokerError as exc:
            failures.append(f"{broker}: {exc}")
    if failures:
        pytest.fail("could not stop: " + "; ".join(failures), pytrace=False)


@pytest.fixture
def registry_database(request: pytest.FixtureRequest, tmp_path: Path) -> str | None:
    """For a test that runs registry processes of its own (outages, replicas, its own
    API): the database they should open, on the backend ``DRIFTLINE_TEST_REGISTRY`` names
    (None: the default SQLite file in the data dir). Passed as ``registry_url`` to
    ``settings_factory``, it also tells the factory not to start a registry service."""
    mode = registry_mode()
    if mode is None:
        return None
    home = tmp_path / "registry-database"
    home.mkdir()
    return fresh_database(request, mode, home)


@pytest.fixture
def registry_services(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[RegistryServices | None]:
    """Registry service processes for this test when ``DRIFTLINE_TEST_REGISTRY`` asks for
    the registry over HTTP (None otherwise); each must exit 0 on SIGTERM at the end."""
    mode = registry_mode()
    if mode is None:
        yield None
        return
    services = RegistryServices(tmp_path, lambda home: fresh_database(request, mode, home))
    yield services
    failures = services.stop_all()
    own = "registry_database" in request.fixturenames  # runs registry processes itself
    if not services.procs and not own and request.node.get_closest_marker("registry_http"):
        failures.append(f"marked registry_http, but {mode} started no registry service")
    if failures:
        pytest.fail("; ".join(failures), pytrace=False)


@pytest.fixture
def settings_factory(
    kafka_bootstrap: str, tmp_path: Path, registry_services: RegistryServices | None
) -> Callable[..., DriftlineSettings]:
    """``settings_factory(create_topics=True, **overrides)``: settings on the session broker
    with a topic prefix of this test's own (uuid), its data in tmp_path, and the catalogue's
    topics created under that prefix.

    In the HTTP modes of ``DRIFTLINE_TEST_REGISTRY`` (the default), settings that sign
    (``signing_key``) and name no ``registry_url`` get a registry service process of their
    own on a fresh database, and its ``http://`` URL and a service token."""
    import uuid

    from schemas import Topics
    from services.common.kafka_client import ensure_topics, make_admin

    def make(create_topics: bool = True, **overrides: Any) -> DriftlineSettings:
        values: dict[str, Any] = {
            "kafka_bootstrap": kafka_bootstrap,
            "topic_prefix": f"t-{uuid.uuid4().hex[:10]}.",
            "data_dir": tmp_path,
            # the backend of this run: `make test` runs the tests marked `backends` again
            # with DRIFTLINE_KAFKA_CLIENT=confluent
            "kafka_client": os.environ.get("DRIFTLINE_KAFKA_CLIENT", "kafka-python"),
        }
        values.update(overrides)
        settings = DriftlineSettings.load(env={}, **values)
        if create_topics:
            admin = make_admin(settings)
            try:
                ensure_topics(admin, Topics(settings.topic_prefix).all())
            finally:
                admin.close()
        if (
            registry_services is not None
            and settings.signing_key
            and "registry_url" not in overrides
        ):
            remote = registry_services.start(settings)
            settings = DriftlineSettings.load(env={}, **{**values, **remote})
        return settings

    return make


def _export(settings: DriftlineSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``settings`` the environment the CLI reads (and nothing else of the caller's)."""
    for name in [n for n in os.environ if n.startswith("DRIFTLINE_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("DRIFTLINE_KAFKA_BOOTSTRAP", settings.bootstrap)
    monkeypatch.setenv("DRIFTLINE_TOPIC_PREFIX", settings.topic_prefix)
    monkeypatch.setenv("DRIFTLINE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("DRIFTLINE_KAFKA_CLIENT", settings.kafka_client)
    if settings.registry_url is not None:
        monkeypatch.setenv("DRIFTLINE_REGISTRY_URL", settings.registry_url)
    if settings.service_token is not None:
        monkeypatch.setenv("DRIFTLINE_SERVICE_TOKEN", settings.service_token.get_secret_value())
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def cli_env(
    settings_factory: Callable[..., DriftlineSettings],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> DriftlineSettings:
    """Settings of this test, exported as the environment the CLI reads (the registry, if
    a command opens one: the SQLite file in the data dir)."""
    settings = settings_factory()
    _export(settings, tmp_path, monkeypatch)
    return settings


@pytest.fixture
def cli_registry_env(
    settings_factory: Callable[..., DriftlineSettings],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> DriftlineSettings:
    """As ``cli_env``, for commands that write to the registry: in the HTTP modes of
    ``DRIFTLINE_TEST_REGISTRY`` (the default) the CLI reaches a registry service of this
    test's own, with its URL and service token in the environment, as a user's would."""
    settings = settings_factory(
        signing_key=private_key_for("cli-test-signing-key"), signing_key_id="k1"
    )
    _export(settings, tmp_path, monkeypatch)
    return settings
