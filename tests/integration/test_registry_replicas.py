"""Two registry service processes behind one database stay correct: writers racing
through both (compare-and-set moves, registrations) lose no update and number no version
twice, and the two outbox relays publish every event, each under one event id."""

from __future__ import annotations

import signal
import subprocess
import threading
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from schemas import AliasReason
from services.common.settings import DriftlineSettings
from services.localbroker.ports import free_ports
from services.registry.client import AliasConflict, Registry
from services.registry.rest_store import RestStore
from tests.integration.polling import wait_for
from tests.integration.processes import TopicReader, service_env, start_service
from tests.integration.registry_service import healthy
from tests.integration.serving_support import KEY, predictor

TOKEN = "replicas-test-service-token"  # noqa: S105 - a test token
MOVES = 15  # per writer


def version_id(version: int) -> str:
    """The event id of a version's announcement (derived from model and version)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"driftline:model:sea:v{version}"))


def writer(registry: Registry, done: list[int], errors: list[BaseException]) -> None:
    """Register a version, then move ``online`` to it from wherever it is (CAS, retried)."""
    try:
        for _ in range(MOVES):
            version = registry.register_version(
                model="sea", kind="online", predictor=predictor(20, 1)
            ).version
            while True:
                current = registry.get_alias(model="sea", alias="online")
                try:
                    registry.move_alias(
                        model="sea",
                        alias="online",
                        to_version=version,
                        expect=current,
                        reason=AliasReason.ONLINE_UPDATE,
                        actor="test",
                    )
                    break
                except AliasConflict:
                    continue
            done.append(version)
    except BaseException as exc:  # noqa: BLE001 - reported by the test
        errors.append(exc)


# also on PostgreSQL (make test-registry-http)
@pytest.mark.registry_http
def test_two_registry_processes_share_one_database(
    settings_factory: Callable[..., DriftlineSettings],
    registry_database: str | None,
    tmp_path: Path,
) -> None:
    # its own registry processes, on the database of this run's backend
    settings = settings_factory(
        signing_key=KEY, signing_key_id="k1", registry_url=registry_database
    )
    ports = free_ports(2)
    urls = [f"http://127.0.0.1:{p}" for p in ports]
    procs: list[subprocess.Popen[bytes]] = []
    log = tmp_path / "registry.log"
    db = Registry.open(settings, relay=False)
    models = TopicReader(settings, "models")
    clients: list[Registry] = []
    try:
        for port in ports:
            env = service_env(
                settings, KEY, DRIFTLINE_REGISTRY_PORT=str(port), DRIFTLINE_SERVICE_TOKEN=TOKEN
            )
            procs.append(start_service("registry", env, log))
        for url in urls:
            wait_for(lambda url=url: healthy(url), 60, f"the registry at {url}", procs, log)
        clients = [
            Registry(
                backend=RestStore(url, topics=db.topics, service_token=TOKEN),
                keyring=db.keyring,
            )
            for url in urls
        ]
        done: list[int] = []
        errors: list[BaseException] = []
        threads = [threading.Thread(target=writer, args=(c, done, errors)) for c in clients]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(240)
        assert not errors, errors
        assert sorted(done) == list(range(1, 2 * MOVES + 1))  # each number once

        moves = list(reversed(db.alias_history(model="sea", alias="online", limit=1000)))
        assert len(moves) == 2 * MOVES
        assert moves[0].from_version is None
        for before, after in zip(moves, moves[1:], strict=False):
            assert after.from_version == before.to_version  # no lost update
        wait_for(lambda: db.outbox_backlog() == 0, 60, "both relays to drain the outbox")
        versions = db.list_versions(model="sea", limit=1000)
        wanted = {str(m.event_id) for m in moves} | {version_id(v.version) for v in versions}
        wait_for(
            lambda: {str(e.event_id) for e in models.poll()} >= wanted,
            60,
            "every version and move on the models topic",
        )
        # nothing twice: one event id per version and per move (a re-sent event keeps its
        # id, and consumers de-duplicate by it)
        assert {str(e.event_id) for e in models.events} == wanted
    finally:
        for client in clients:
            client.close()
        models.close()
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        db.close()
