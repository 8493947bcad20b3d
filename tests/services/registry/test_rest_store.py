"""The REST store: the Registry client over the registry service's HTTP API (a real
uvicorn server on loopback), on SQLite and PostgreSQL, with the in-process store's
guarantees: compare-and-set, retry-safe writes, verified bytes, tokens, size limits."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import uvicorn

from schemas import AliasReason
from services.common.listen import listen
from services.common.metrics import Metrics
from services.common.signing import BadSignature, Keyring
from services.registry.api import create_app
from services.registry.backend import CheckpointBlob
from services.registry.client import (
    AliasConflict,
    CheckpointItem,
    FrozenModel,
    NotFound,
    Registry,
    RegistryError,
    RegistryUnavailable,
)
from services.registry.domain import VersionDraft
from services.registry.rest_store import RestStore
from tests.services.registry.helpers import CONFIG, predictor

SERVICE = "service-token-0123456789"  # noqa: S105 - test tokens
ADMIN = "admin-token-0123456789"  # noqa: S105
LIMIT = 64 * 1024


@dataclass
class Server:
    url: str
    registry: Registry  # the server's own, in-process

    def client(self, **tokens: str | None) -> Registry:
        kw = {"service_token": SERVICE, "admin_token": ADMIN, **tokens}
        store = RestStore(self.url, topics=self.registry.topics, retry_s=2, **kw)
        return Registry(backend=store, keyring=self.registry.keyring)


@pytest.fixture
def server(registry: Registry) -> Iterator[Server]:
    """The registry's API served by uvicorn on a free loopback port."""
    app = create_app(
        registry,
        admin_token=ADMIN,
        service_token=SERVICE,
        metrics=Metrics("registry"),
        max_blob_bytes=LIMIT,
    )
    sock = listen("127.0.0.1", 0)
    port = sock.getsockname()[1]
    uv = uvicorn.Server(uvicorn.Config(app, log_config=None, lifespan="off"))
    thread = threading.Thread(target=uv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        yield Server(f"http://127.0.0.1:{port}", registry)
    finally:
        uv.should_exit = True
        thread.join(10)
        sock.close()


@pytest.fixture
def rest(server: Server) -> Iterator[Registry]:
    reg = server.client()
    yield reg
    reg.close()


def test_versions_aliases_and_artifacts_round_trip(rest: Registry, server: Server) -> None:
    v1 = rest.register_version(model="sea", kind="online", predictor=predictor(), metrics={"a": 1})
    again = rest.register_version(
        model="sea", kind="online", predictor=predictor(), idempotency_key="k:1"
    )
    assert (
        rest.register_version(
            model="sea", kind="online", predictor=predictor(5), idempotency_key="k:1"
        )
        == again
    )
    assert [v.version for v in rest.list_versions(model="sea")] == [2, 1]
    assert server.registry.get_version(model="sea", version=1) == v1  # the same tables
    loaded = rest.load_predictor(model="sea", version=1)
    assert loaded.flavor == "river"
    move = rest.move_alias(
        model="sea", alias="champion", to_version=1, expect=None,
        reason=AliasReason.COLD_START, actor="learner",
    )  # fmt: skip
    assert move.to_version == 1 and rest.get_alias(model="sea", alias="champion") == 1
    with pytest.raises(AliasConflict) as conflict:
        rest.move_alias(
            model="sea", alias="champion", to_version=2, expect=None,
            reason=AliasReason.PROMOTED, actor="trainer",
        )  # fmt: skip
    assert conflict.value.actual == 1
    rest.freeze(model="sea", reason="investigating")
    with pytest.raises(FrozenModel):
        rest.move_alias(
            model="sea", alias="champion", to_version=2, expect=1,
            reason=AliasReason.PROMOTED, actor="trainer",
        )  # fmt: skip
    assert [m.to_version for m in rest.alias_history(model="sea")] == [1]
    assert rest.get_model(name="nope") is None and rest.get_version(model="sea", version=9) is None
    assert rest.outbox_backlog() == server.registry.outbox_backlog() == 3  # 2 versions, 1 move


def test_a_bad_signature_is_refused_by_the_reader(rest: Registry) -> None:
    rest.register_version(model="sea", kind="batch", predictor=predictor())
    rest.keyring = Keyring(public={"k1": Keyring.generate("x").public["x"]})
    with pytest.raises(BadSignature):
        rest.load_predictor(model="sea", version=1)


def test_retried_writes_happen_once(rest: Registry, server: Server) -> None:
    """A request sent again after a lost answer (same move_id, same idempotency key,
    same checkpoint, same candidate) changes nothing the second time."""
    backend = rest.backend
    draft = VersionDraft(kind="online", flavor="river", algorithm="x", spec_sha256="0" * 64)
    first = backend.register_version(
        model="sea", draft=draft.model_copy(update={"idempotency_key": "k"}), data=b"model"
    )
    second = backend.register_version(
        model="sea", draft=draft.model_copy(update={"idempotency_key": "k"}), data=b"model"
    )
    assert first == second
    move_id = str(uuid.uuid4())
    moves = [
        backend.move_alias(
            model="sea",
            alias="online",
            to_version=1,
            expect=None,
            reason=AliasReason.ONLINE_UPDATE,
            actor="learner",
            evidence={},
            move_id=move_id,
        )  # fmt: skip
        for _ in range(2)
    ]
    assert moves[0] == moves[1]
    assert len(server.registry.alias_history(model="sea", alias="online")) == 1
    item = CheckpointBlob(key="p0", blob=b"state", offsets={"0": 5}, meta={})
    backend.save_checkpoints(owner="learner", items=[item])
    backend.save_checkpoints(owner="learner", items=[item])
    assert len(backend.checkpoints(owner="learner", key="p0")) == 1
    run, created = rest.start_run(model="sea", trigger_event_id="t1")
    assert created and not rest.start_run(model="sea", trigger_event_id="t1")[1]
    for _ in range(2):
        rest.add_candidate(run_id=run.id, name="hoeffding", params={}, metrics={}, fit_s=0.1)
    done = rest.finish_run(run_id=run.id, status="succeeded", decision="ok", winner_version=1)
    assert len(done.candidates) == 1 and done.finished_at is not None


def test_checkpoints_specs_and_handled_events(rest: Registry) -> None:
    rest.save_checkpoints(
        owner="learner",
        items=[
            CheckpointItem(key="g/t/0/streams/sea", state={"n": 1}, offsets={"0": 10}),
            CheckpointItem(key="g/t/0/streams/elec", state={"n": 2}, offsets={"0": 10}),
        ],
    )
    rest.save_checkpoint(owner="learner", key="g/t/0", state=[1, 2], offsets={"0": 10})
    assert rest.load_checkpoint(owner="learner", key="g/t/0").state == [1, 2]  # type: ignore[union-attr]
    found = rest.load_checkpoints(owner="learner", prefix="g/t/0/streams/")
    assert [(c.key, c.state) for c in found] == [
        ("g/t/0/streams/elec", {"n": 2}),
        ("g/t/0/streams/sea", {"n": 1}),
    ]
    assert rest.load_checkpoint(owner="learner", key="none") is None
    recorded = rest.record_spec(config=CONFIG)
    assert rest.get_spec(stream="sea") == recorded
    assert rest.spec_by_sha256(spec_sha256=CONFIG.spec_sha256()) == recorded
    assert rest.get_spec(stream="sea", version=7) is None
    assert rest.mark_handled(consumer="trainer", event_id="e1") is True
    assert rest.mark_handled(consumer="trainer", event_id="e1") is False
    assert rest.was_handled(consumer="trainer", event_id="e1")
    assert rest.gc(dry_run=True).checkpoints == 0


def test_writes_need_the_service_token(server: Server) -> None:
    anonymous = server.client(service_token=None, admin_token=None)
    wrong = server.client(service_token="not-the-token", admin_token=None)  # noqa: S106
    for reg in (anonymous, wrong):
        with pytest.raises(RegistryError, match="DRIFTLINE_SERVICE_TOKEN"):
            reg.register_version(model="sea", kind="online", predictor=predictor())
        with pytest.raises(RegistryError, match="HTTP 401"):
            reg.mark_handled(consumer="trainer", event_id="e1")
        reg.close()
    assert server.registry.list_models() == []
    assert not server.registry.was_handled(consumer="trainer", event_id="e1")
    admin_only = server.client(service_token=None)  # the admin token is for the admin routes
    with pytest.raises(RegistryError, match="HTTP 401"):
        admin_only.mark_handled(consumer="trainer", event_id="e1")
    admin_only.close()


def test_uploads_have_their_own_size_limit(rest: Registry, server: Server) -> None:
    with pytest.raises(RegistryError, match="HTTP 413"):
        rest.save_checkpoint(owner="learner", key="big", state=b"x" * (LIMIT + 1), offsets={})
    assert server.registry.load_checkpoint(owner="learner", key="big") is None


def test_long_lists_are_sent_in_requests_under_the_body_limit(server: Server) -> None:
    """1,000 stream configs (or a learner's thousands of streams) exceed the service's
    body limit in one request (HTTP 413); the store sends them in several."""
    store = RestStore(
        server.url,
        topics=server.registry.topics,
        service_token=SERVICE,
        retry_s=2,
        list_body_bytes=4096,
    )
    reg = Registry(backend=store, keyring=server.registry.keyring)
    sent: list[int] = []
    post = store._send

    def counting(method: str, path: str, **kw: Any) -> Any:
        if method == "POST":
            sent.append(len(json.dumps(kw["json"])))
        return post(method, path, **kw)

    store._send = counting  # type: ignore[method-assign]
    configs = [CONFIG.model_copy(update={"stream": f"s{i:03d}"}) for i in range(40)]
    recorded = reg.record_specs(configs=configs)
    assert [r.stream for r in recorded] == [c.stream for c in configs]
    spec_requests = len(sent)
    items = [
        CheckpointItem(key=f"g/t/0/streams/s{i:03d}", state={"n": i}, offsets={"0": i})
        for i in range(120)
    ]
    shas = reg.save_checkpoints(owner="learner", items=items)
    reg.close()
    assert spec_requests > 1 and len(sent) > spec_requests + 1
    assert max(sent) <= 4096 + 2048  # one item over the bound at most
    assert len(shas) == 120
    found = server.registry.load_checkpoints(owner="learner", prefix="g/t/0/streams/")
    assert sorted((c.key, c.state["n"]) for c in found) == [(i.key, i.state["n"]) for i in items]
    assert server.registry.get_spec(stream="s039") is not None


def test_an_unreachable_registry_is_retried_then_reported(server: Server) -> None:
    store = RestStore("http://127.0.0.1:9", topics=server.registry.topics, retry_s=0.5)
    with pytest.raises(RegistryUnavailable, match="retried"):
        store.mark_handled(consumer="trainer", event_id="e1")
    store.close()
    with pytest.raises(NotFound):
        server.client().load_predictor(model="sea", version=1)
