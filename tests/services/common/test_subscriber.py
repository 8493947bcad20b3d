"""The subscriber's logic without a broker: records are fed to it as its thread would.

Real artifacts (River models trained on a River dataset, packed and signed) in a temporary
directory; the broker path is covered by tests/integration/test_subscriber.py.
"""

from __future__ import annotations

import http.server
import itertools
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from river import linear_model
from river.datasets import synth

from schemas import AliasMoved, AliasReason, ArtifactRef, FeatureSpec, ModelVersionPublished, Spec
from services.common import artifacts
from services.common.codec import encode
from services.common.dead_letters import DeadLetters
from services.common.predictor import Predictor
from services.common.settings import DriftlineSettings
from services.common.signing import Keyring, artifact_subject
from services.common.subscriber import LoadedModel, LoadFailure, ModelSubscriber

SIGNER = Keyring.generate("k1")  # what the registry holds
KEYRING = SIGNER.public_only()  # what a subscriber holds
SPEC = Spec.model_validate(
    {
        "features": [{"name": f"x{i}", "type": "number"} for i in range(3)],
        "label": {"kind": "class", "classes": [False, True]},
    }
)
SHA = "a" * 64


@dataclass
class Record:
    """What kafka-python hands the subscriber's thread."""

    key: bytes | None
    value: bytes | None
    topic: str = "t.models"
    partition: int = 0
    offset: int = 0


def train(n: int, seed: int) -> Predictor:
    model = linear_model.LogisticRegression()
    for x, y in itertools.islice(synth.SEA(seed=seed), n):
        model.learn_one({f"x{i}": float(v) for i, v in x.items()}, bool(y))
    return Predictor.river(model, spec=SPEC, spec_sha256=SHA)


class Store:
    """Signed artifacts in a directory and the events announcing them."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.offset = 0

    def version(
        self, model: str, version: int, *, predictor: Predictor | None = None, tamper: bool = False
    ) -> Record:
        predictor = predictor or train(200 + 50 * version, seed=version)
        data = artifacts.pack(predictor)
        sig = SIGNER.sign(data, artifact_subject(model, version))
        if tamper:
            data = data[:-1] + bytes([data[-1] ^ 1])
        path = self.root / f"{model}-{version}.bin"
        path.write_bytes(data)
        event = ModelVersionPublished(
            model=model,
            version=version,
            kind="online",
            flavor="river",
            algorithm=predictor.algorithm,
            artifact=ArtifactRef(
                uri=path.as_uri(),
                sha256=sig.sha256,
                signature=sig.signature or "",
                key_id=sig.key_id or "",
                size=len(data),
            ),
            spec_sha256=predictor.spec_sha256,
        )
        return self._record(event.key, SIGNER.sign_event(encode(event)))

    def alias(self, model: str, alias: str, to: int | None) -> Record:
        event = AliasMoved(
            model=model, alias=alias, to_version=to, reason=AliasReason.MANUAL, actor="test"
        )
        return self._record(event.key, SIGNER.sign_event(encode(event)))

    def _record(self, key: str, value: bytes | None) -> Record:
        self.offset += 1
        return Record(key.encode(), value, offset=self.offset)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path)


def subscriber(**kwargs: Any) -> tuple[ModelSubscriber, list[Any]]:
    calls: list[Any] = []
    sub = ModelSubscriber(
        DriftlineSettings.load(env={}),
        keyring=KEYRING,
        on_swap=lambda new, old: calls.append(("swap", new.version, old and old.version)),
        on_failure=lambda f: calls.append(("fail", f.version, f.reason)),
        on_remove=lambda old: calls.append(("remove", old.version)),
        **kwargs,
    )
    return sub, calls


def test_catch_up_loads_only_the_final_state(store: Store) -> None:
    sub, calls = subscriber()
    records = [store.version("sea", v) for v in (1, 2, 3)]
    records += [store.alias("sea", "champion", v) for v in (1, 2, 3)]
    sub._process(records)
    assert sub.get("sea") is None and calls == []  # nothing loads before the end is read
    sub._mark_caught_up()
    loaded = sub.get("sea")
    assert loaded is not None and loaded.version == 3 and loaded.alias == "champion"
    assert calls == [("swap", 3, None)]
    assert sorted(sub.versions("sea")) == [1, 2, 3]
    assert sub.aliases("sea") == {"champion": 3}
    assert sub.current is loaded and sub.caught_up()
    assert loaded.predictor.predict_one({"x0": 1.0, "x1": 2.0, "x2": 3.0}) in (False, True)
    (entry,) = sub.history()  # a record of the load, holding no model
    assert isinstance(entry, LoadedModel) and entry.version == 3 and entry.predictor.model is None
    with pytest.raises(RuntimeError, match="use ModelSubscriber.get"):
        entry.predictor.predict_one({"x0": 1.0, "x1": 2.0, "x2": 3.0})


def test_live_moves_swap_and_aliases_share_a_loaded_version(store: Store) -> None:
    sub, calls = subscriber(aliases=("champion", "challenger"))
    sub._mark_caught_up()
    sub._process([store.version("sea", 1), store.alias("sea", "champion", 1)])
    sub._process([store.version("sea", 2), store.alias("sea", "challenger", 2)])
    champion, challenger = sub.get("sea", "champion"), sub.get("sea", "challenger")
    assert champion is not None and challenger is not None
    assert (champion.version, challenger.version) == (1, 2)
    sub._process([store.alias("sea", "champion", 2)])  # promotion: no second load
    promoted = sub.get("sea")
    assert promoted is not None and promoted.predictor is challenger.predictor
    sub._process([store.alias("sea", "challenger", None)])
    assert sub.get("sea", "challenger") is None
    assert calls == [("swap", 1, None), ("swap", 2, None), ("swap", 2, 1), ("remove", 2)]
    assert set(sub.loaded()) == {("sea", "champion")}
    assert [h.version for h in sub.history()] == [1, 2, 2]


def test_an_alias_moved_before_its_version_arrives_loads_when_it_does(store: Store) -> None:
    sub, _ = subscriber()
    sub._mark_caught_up()
    sub._process([store.alias("sea", "champion", 1)])
    assert sub.get("sea") is None
    sub._process([store.version("sea", 1)])
    found = sub.get("sea")
    assert found is not None and found.version == 1


def test_pins_override_aliases(store: Store) -> None:
    sub, _ = subscriber(pins={"sea": 2})
    sub._process([store.version("sea", v) for v in (1, 2, 3)] + [store.alias("sea", "champion", 3)])
    sub._mark_caught_up()
    pinned = sub.pinned("sea")
    assert pinned is not None and pinned.version == 2 and pinned.alias is None
    assert sub.get("sea") is pinned and sub.get("sea", "challenger") is None
    sub._process([store.alias("sea", "champion", 1)])
    assert sub.get("sea") is pinned
    assert list(sub.loaded()) == [("sea", "pinned")]


def test_models_filter_ignores_other_models(store: Store) -> None:
    sub, _ = subscriber(models=["sea"])
    sub._process([store.version("other", 1), store.alias("other", "champion", 1)])
    sub._mark_caught_up()
    assert sub.loaded() == {} and sub.versions("other") == {}


@pytest.mark.parametrize(
    ("breakage", "reason"),
    [("tamper", "sha256_mismatch"), ("forged", "bad_signature"), ("key", "unknown_key_id")],
)
def test_an_untrusted_artifact_is_refused_and_the_old_model_stays(
    store: Store, breakage: str, reason: str
) -> None:
    sub, calls = subscriber()
    sub._mark_caught_up()
    sub._process([store.version("sea", 1), store.alias("sea", "champion", 1)])
    bad = store.version("sea", 2, tamper=breakage == "tamper")
    if breakage != "tamper":
        assert bad.value is not None
        event = ModelVersionPublished.model_validate_json(bad.value)
        art = event.artifact.model_copy(
            update={"signature": "0" * 64} if breakage == "forged" else {"key_id": "stolen"}
        )
        bad.value = SIGNER.sign_event(encode(event.model_copy(update={"artifact": art})))
    sub._process([bad, store.alias("sea", "champion", 2)])
    kept = sub.get("sea")
    assert kept is not None and kept.version == 1
    assert calls[-1] == ("fail", 2, reason)
    failure = sub.history()[-1]
    assert isinstance(failure, LoadFailure) and failure.alias == "champion"
    sub._retry_failed()  # its retry is not due yet: nothing is tried, nothing reported
    assert [c for c in calls if c[0] == "fail"] == [("fail", 2, reason)]
    sub._process([store.alias("sea", "champion", 2)])  # moved to it again: tried again
    assert [c for c in calls if c[0] == "fail"] == [("fail", 2, reason)] * 2
    kept = sub.get("sea")
    assert kept is not None and kept.version == 1


def test_an_incompatible_model_is_refused(store: Store) -> None:
    declared = [FeatureSpec(name="x0", type="number"), FeatureSpec(name="x1", type="category")]
    sub, calls = subscriber(features={"sea": declared})
    sub._mark_caught_up()
    sub._process([store.version("sea", 1), store.alias("sea", "champion", 1)])
    assert sub.get("sea") is None
    assert calls == [("fail", 1, "incompatible_spec")]
    failure = sub.history()[-1]
    assert isinstance(failure, LoadFailure)
    assert "'x1' is category here" in failure.detail and "'x2' is not declared" in failure.detail


def test_an_unreachable_artifact_is_a_fetch_failure_retried_later(store: Store) -> None:
    sub, calls = subscriber(retry_interval_s=0.0)
    sub._mark_caught_up()
    record = store.version("sea", 1)
    moved = store.root / "sea-1.bin"
    hidden = moved.with_suffix(".hidden")
    moved.rename(hidden)
    sub._process([record, store.alias("sea", "champion", 1)])
    assert calls == [("fail", 1, "fetch_failed")] and sub.get("sea") is None
    failure = sub.history()[-1]
    assert isinstance(failure, LoadFailure) and "DRIFTLINE_REGISTRY_HTTP_URL" in failure.detail
    hidden.rename(moved)
    slots = sub._slots
    slots.attempts = {k: (n, 0.0) for k, (n, _) in slots.attempts.items()}  # the retry is due
    sub._retry_failed()
    found = sub.get("sea")
    assert found is not None and found.version == 1


def alias_json(model: str, alias: str, to: int, **extra: Any) -> bytes:
    fields = {"model": model, "alias": alias, "to_version": to, "reason": "manual", **extra}
    return AliasMoved.model_validate(fields).model_dump_json().encode()


BAD_RECORDS = {
    "unparseable_event": (b"sea@champion", b"{not json"),
    "unknown_event_type": (b"sea@champion", b'{"event_type": "alias_deleted", "model": "sea"}'),
    "unsupported_schema_version": (
        b"sea@champion",
        b'{"event_type": "alias_moved", "schema_version": 99, "model": "sea"}',
    ),
    "contract_violation": (
        b"sea@champion",
        alias_json("sea", "champion", 2).replace(b'"to_version":2', b'"to_version":"two"'),
    ),
    "key_mismatch": (b"sea@champion", alias_json("other", "champion", 2)),
    "tombstone": (b"sea@champion", None),
}


@pytest.mark.parametrize("kind", sorted(BAD_RECORDS))
def test_an_unusable_record_is_refused_and_keeps_the_champion(store: Store, kind: str) -> None:
    """A later unusable record under ``sea@champion`` is counted by its kind and neither
    unsets nor moves the champion (v2 exists, so a record the check let through as a move
    to v2 would move it)."""
    sub, calls = subscriber()
    sub._mark_caught_up()
    sub._process([store.version("sea", 1), store.version("sea", 2)])
    sub._process([store.alias("sea", "champion", 1)])
    key, value = BAD_RECORDS[kind]
    sub._process([Record(key, value, offset=99)])
    assert sub.refused[kind] == 1 and sum(sub.refused.values()) == 1
    assert sub.aliases("sea") == {"champion": 1} and sub.versions("sea").keys() == {1, 2}
    loaded = sub.get("sea")
    assert loaded is not None and loaded.version == 1
    assert [c for c in calls if c[0] != "swap"] == []


def test_a_version_under_another_versions_key_is_refused(store: Store) -> None:
    sub, _ = subscriber()
    record = store.version("sea", 3)
    sub._process([Record(b"sea:v1", record.value)])
    assert sub.refused["key_mismatch"] == 1 and sub.versions("sea") == {}


def test_an_event_already_applied_is_skipped(store: Store) -> None:
    """Re-sent late (a relay's redelivery, the registry re-asserting), an older move does
    not move the alias back: the subscriber remembers the event ids applied per key."""
    sub, _ = subscriber()
    sub._mark_caught_up()
    first = store.alias("sea", "champion", 1)
    sub._process([store.version("sea", 1), store.version("sea", 2), first])
    sub._process([store.alias("sea", "champion", 2), Record(first.key, first.value, offset=50)])
    assert sub.aliases("sea") == {"champion": 2} and sub.stats["duplicates"] == 1
    loaded = sub.get("sea")
    assert loaded is not None and loaded.version == 2


def test_refusals_are_lettered_when_given_dead_letters(store: Store) -> None:
    sent: list[tuple[str, bytes | None, bytes]] = []

    class Producer:
        def send(self, topic: str, key: bytes | None, value: bytes) -> None:
            sent.append((topic, key, value))

    counts: dict[str, int] = {}

    class Counter:
        def labels(self, reason: str) -> Counter:
            counts[reason] = counts.get(reason, 0) + 1
            return self

        def inc(self) -> None:
            pass

    letters = DeadLetters(Producer(), "t.events.dead", service="sdk", counter=Counter())
    sub, _ = subscriber(dead_letters=letters)
    sub._process([Record(b"sea@champion", b"{not json", offset=7), Record(b"sea:v1", None)])
    assert [key for _, key, _ in sent] == [b"t.models", b"t.models"]
    assert counts == {"unparseable": 1, "contract_violation": 1}


def test_readers_never_see_a_torn_or_missing_model_during_swaps(store: Store) -> None:
    """Four reader threads predict without pause while 30 swaps happen: every read finds
    a whole model (the version named answers exactly as that version does), none fails."""
    predictors = {v: train(100 + 20 * v, seed=v) for v in range(1, 31)}
    versions = [store.version("sea", v, predictor=predictors[v]) for v in predictors]
    sub, _ = subscriber()
    sub._mark_caught_up()
    sub._process([versions[0], store.alias("sea", "champion", 1)])
    stop = threading.Event()
    errors: list[BaseException] = []
    seen: list[set[int]] = [set() for _ in range(4)]
    rows = [
        {f"x{i}": float(v) for i, v in x.items()}
        for x, _ in itertools.islice(synth.SEA(seed=1), 20)
    ]

    expected = {v: p.predict_proba_many(rows) for v, p in predictors.items()}
    assert len({str(e) for e in expected.values()}) == len(expected)  # versions differ

    def read(mine: set[int]) -> None:
        try:
            while not stop.is_set():
                loaded = sub.get("sea")
                assert isinstance(loaded, LoadedModel)
                assert loaded.meta.version == loaded.version
                assert loaded.predictor.predict_proba_many(rows) == expected[loaded.version]
                mine.add(loaded.version)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    threads = [threading.Thread(target=read, args=(s,)) for s in seen]
    for t in threads:
        t.start()
    try:
        for record in versions[1:]:
            v = int(record.key.decode().rpartition(":v")[2]) if record.key else 0
            sub._process([record, store.alias("sea", "champion", v)])
            swapped = sub.get("sea")
            assert swapped is not None and swapped.version == v
    finally:
        stop.set()
        for t in threads:
            t.join(10)
    assert errors == []
    assert all(len(s) > 1 for s in seen)  # every reader saw swaps happen
    final = sub.get("sea")
    assert final is not None and final.version == 30


def test_wait_until_returns_once_the_predicate_holds(store: Store) -> None:
    sub, _ = subscriber()
    assert sub.wait_until(lambda s: s.get("sea") is not None, timeout_s=0.05) is False
    sub._mark_caught_up()

    def later() -> None:
        sub._process([store.version("sea", 1), store.alias("sea", "champion", 1)])
        sub._notify()

    thread = threading.Thread(target=later)
    thread.start()
    assert sub.wait_until(lambda s: s.get("sea") is not None, timeout_s=30)
    thread.join()


def test_aliases_or_pins_are_required() -> None:
    with pytest.raises(ValueError, match="at least one alias"):
        ModelSubscriber(DriftlineSettings.load(env={}), aliases=())


@pytest.fixture(autouse=True)
def _no_thread_leak() -> Iterator[None]:
    before = set(threading.enumerate())
    yield
    assert not [t for t in threading.enumerate() if t not in before and t.is_alive()]


class _Artifacts(http.server.BaseHTTPRequestHandler):
    """``GET /artifacts/{sha256}`` from a directory of files named by sha256 (a stand-in
    for the registry's endpoint)."""

    root: Path

    def do_GET(self) -> None:  # noqa: N802 - the http.server API
        sha = self.path.rpartition("/")[2]
        path = self.root / sha
        if not self.path.startswith("/artifacts/") or not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the API's name
        del format, args


def test_an_artifact_not_readable_here_is_fetched_from_the_registry(
    store: Store, tmp_path: Path
) -> None:
    served = tmp_path / "served"
    served.mkdir()
    record = store.version("sea", 1)
    assert record.value is not None
    event = ModelVersionPublished.model_validate_json(record.value)
    local = store.root / "sea-1.bin"
    (served / event.artifact.sha256).write_bytes(local.read_bytes())
    local.unlink()  # the file:// URI names a file on another host
    handler = type("Handler", (_Artifacts,), {"root": served})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        calls: list[Any] = []
        sub = ModelSubscriber(
            DriftlineSettings.load(env={}, registry_http_url=url),
            keyring=KEYRING,
            on_failure=calls.append,
        )
        sub._mark_caught_up()
        sub._process([record, store.alias("sea", "champion", 1)])
        found = sub.get("sea")
        assert calls == [] and found is not None and found.version == 1
        # a version the registry does not have: fetch_failed, naming the URL
        missing = store.version("sea", 2)
        (store.root / "sea-2.bin").unlink()
        sub._process([missing, store.alias("sea", "champion", 2)])
        assert [(f.version, f.reason) for f in calls] == [(2, "fetch_failed")]
        assert "HTTP 404" in calls[0].detail
        kept = sub.get("sea")
        assert kept is not None and kept.version == 1
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
