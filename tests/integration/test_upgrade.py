"""Upgrades in place: an install written by the previous layout keeps working.

- The registry's database at the oldest Alembic revision (0001), with rows in every table
  as that schema had them (a checkpoint's bytes inline in its row, a model signed with
  the HMAC key of before Ed25519), is migrated by the new code without losing a row, and
  what it holds still reads: versions, aliases and their history, runs, specs, the model
  (verified with the old key), the outbox.
- A learner checkpoint of the old layout (one whole partition state under the partition's
  key, pickled when the state lived in ``services.learner.runtime``, signed the old way:
  HMAC over the bytes) restores into the new learner's state and goes on learning.
- Events with an older ``schema_version`` on the topics (stream configs 1 and 2, model
  events and predictions 1) are read by the new code.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import pickle
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from river import linear_model, preprocessing

from schemas import CATALOGUE, Topics
from services.common import artifacts
from services.common.kafka_client import make_producer
from services.common.predictor import Predictor
from services.common.settings import DriftlineSettings
from services.learner import state as learner_state
from services.learner.checkpoints import OWNER, partition_key, restore
from services.learner.state import PartitionState, StreamTrack
from services.registry.db import MIGRATIONS, make_engine
from services.registry.store import open_store
from tests.integration.polling import wait_for
from tests.integration.processes import TopicReader
from tests.keys import private_key_for
from tests.schemas.samples import samples
from tests.services.learner.test_poison import config, example

OLD_KEY_ID, OLD_SECRET = "k0", "the-previous-layout-hmac-secret-0001"
OLDEST = "0001"
TOPIC = "p.examples.valid"
T0 = datetime(2026, 11, 20, tzinfo=UTC)


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def old_hmac(data: bytes) -> str:
    """The signature of before Ed25519: HMAC-SHA256 over the bytes alone."""
    return hmac.new(OLD_SECRET.encode(), data, hashlib.sha256).hexdigest()


@contextmanager
def old_module_names() -> Iterator[None]:
    """Pickle the learner's state as the previous layout did, when its classes lived in
    ``services.learner.runtime`` (the pickle names the module of the day)."""
    moved = [
        cls
        for cls in vars(learner_state).values()
        if isinstance(cls, type) and cls.__module__ == learner_state.__name__
    ]
    sys.modules["services.learner.runtime"] = learner_state
    for cls in moved:
        cls.__module__ = "services.learner.runtime"
    try:
        yield
    finally:
        for cls in moved:
            cls.__module__ = learner_state.__name__
        del sys.modules["services.learner.runtime"]


def learned_state(n: int) -> PartitionState:
    """A partition's state after learning ``n`` examples of stream ``s``."""
    state = PartitionState(TOPIC, 0)
    for offset in range(n):
        state.handle(example(offset), offset=offset, config=config())
    return state


def write_previous_layout(url: str, store_url: str) -> dict[str, int]:
    """A database at revision 0001 with rows in every table, the artifact in the store;
    returns the row count of each table."""
    engine = make_engine(url)
    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, OLDEST)
    model = preprocessing.StandardScaler() | linear_model.LogisticRegression()
    for i in range(50):
        x = example(i)
        model.learn_one(x.features, x.label)
    cfg_s = config()
    body = artifacts.pack(Predictor.river(model, spec=cfg_s.spec, spec_sha256=cfg_s.spec_sha256()))
    sha = hashlib.sha256(body).hexdigest()
    uri = open_store(store_url).put(body, sha)
    with old_module_names():
        blob = pickle.dumps(learned_state(40), protocol=5)
    key = partition_key("g-old", TOPIC, 0)
    run_id = str(uuid.uuid4())
    moved_event = str(uuid.uuid4())
    now = T0
    rows: dict[str, list[dict[str, Any]]] = {
        "models": [{"name": "s", "latest_version": 1, "frozen": False, "frozen_reason": None}],
        "streams": [{"name": "s"}],
        "spec_versions": [
            {
                "stream": "s",
                "version": 1,
                "sha256": "a" * 64,
                "spec_sha256": cfg_s.spec_sha256(),
                "config": cfg_s.model_dump(mode="json"),
                "recorded_at": now,
            }
        ],
        "training_runs": [
            {
                "id": run_id,
                "model": "s",
                "trigger_event_id": str(uuid.uuid4()),
                "trigger": {"reason": "drift"},
                "status": "succeeded",
                "window": {"rows": 40},
                "champion": {},
                "decision": "promoted",
                "winner_version": 1,
                "started_at": now,
                "finished_at": now + timedelta(seconds=3),
            }
        ],
        "candidates": [
            {
                "run_id": run_id,
                "name": "logreg",
                "params": {},
                "metrics": {"accuracy": 0.8},
                "fit_s": 0.5,
                "version": 1,
                "note": None,
            }
        ],
        "model_versions": [
            {
                "model": "s",
                "version": 1,
                "kind": "batch",
                "flavor": "river",
                "algorithm": "river.compose.Pipeline",
                "params": {},
                "metrics": {"accuracy": 0.8},
                "evaluation": {},
                "spec_sha256": cfg_s.spec_sha256(),
                "sha256": sha,
                "signature": old_hmac(body),
                "key_id": OLD_KEY_ID,
                "artifact_uri": uri,
                "size": len(body),
                "lineage": {"ranges": [], "example_count": 50},
                "parent_version": None,
                "run_id": run_id,
                "training_duration_s": 0.5,
                "status": "ready",
            }
        ],
        "aliases": [{"model": "s", "alias": "champion", "version": 1}],
        "alias_moves": [
            {
                "model": "s",
                "alias": "champion",
                "from_version": None,
                "to_version": 1,
                "reason": "cold_start",
                "actor": "learner",
                "evidence": {},
                "event_id": moved_event,
                "moved_at": now,
            }
        ],
        "checkpoints": [
            {
                "owner": OWNER,
                "key": key,
                "offsets": {"0": 40},
                "blob": blob,
                "sha256": hashlib.sha256(blob).hexdigest(),
                "signature": old_hmac(blob),
                "key_id": OLD_KEY_ID,
                "meta": {},
            }
        ],
        "outbox": [
            {
                "topic": "models",
                "key": "s@champion",
                "event_id": moved_event,
                "payload": b"{}",
                "published_at": now,
            }
        ],
        "handled_events": [{"consumer": "trainer", "event_id": str(uuid.uuid4())}],
    }
    stamps = {"created_at", "updated_at", "handled_at"}
    with engine.begin() as conn:
        metadata = sa.MetaData()
        metadata.reflect(conn)
        for name, items in rows.items():
            table = metadata.tables[name]
            for item in items:
                for column in stamps & set(table.columns.keys()):
                    item.setdefault(column, now)
                conn.execute(table.insert().values(**item))
    counts = table_counts(engine)
    engine.dispose()
    return counts


def table_counts(engine: sa.Engine) -> dict[str, int]:
    with engine.connect() as conn:
        names = [n for n in sa.inspect(conn).get_table_names() if n != "alembic_version"]
        return {
            n: conn.execute(sa.select(sa.func.count()).select_from(sa.table(n))).scalar_one()
            for n in names
        }


def revision(url: str) -> str:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return str(conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar())
    finally:
        engine.dispose()


def test_a_registry_of_the_previous_layout_upgrades_in_place(
    registry_url: str, tmp_path: Path
) -> None:
    from services.registry.client import Registry

    store_url = (tmp_path / "artifacts").as_uri()
    before = write_previous_layout(registry_url, store_url)
    assert revision(registry_url) == OLDEST and all(before.values())
    settings = DriftlineSettings.load(
        env={},
        data_dir=tmp_path,
        registry_url=registry_url,
        artifacts_url=store_url,
        signing_key=private_key_for("upgrade-test"),
        signing_key_id="k1",
        verify_keys=f"{OLD_KEY_ID}:hmac:{OLD_SECRET}",
    )
    registry = Registry.open(settings, relay=False)  # migrates to head
    try:
        assert revision(registry_url) != OLDEST
        engine = make_engine(registry_url)
        after = table_counts(engine)
        engine.dispose()
        assert {n: after[n] for n in before} == before  # no row lost

        version = registry.get_version(model="s", version=1)
        assert version is not None and version.artifact.key_id == OLD_KEY_ID
        assert registry.get_alias(model="s", alias="champion") == 1
        assert [m.to_version for m in registry.alias_history(model="s", alias="champion")] == [1]
        runs = registry.list_runs(model="s")
        assert [r.winner_version for r in runs] == [1] and len(runs[0].candidates) == 1
        spec = registry.get_spec(stream="s", version=1)
        assert spec is not None and spec.spec_sha256 == config().spec_sha256()
        # the model signed with the old HMAC key loads (verified) and predicts
        predictor = registry.load_predictor(model="s", version=1)
        assert predictor.predict_one(example(7).features) in (0, 1)

        # the old whole-partition checkpoint (inline bytes, old module, old signature)
        key = partition_key("g-old", TOPIC, 0)
        state = restore(registry, key=key, topic=TOPIC, partition=0)
        assert isinstance(state, PartitionState)
        assert state.next_offset == 40
        track = state.streams["s"]
        assert isinstance(track, StreamTrack) and track.learner.examples_seen == 40
        # and it goes on where it stopped: a redelivered example is skipped, a new one learned
        assert state.handle(example(39), offset=39, config=config()).duplicate
        assert state.handle(example(40), offset=40, config=config()).learned
        assert track.learner.examples_seen == 41
    finally:
        registry.close()


def test_without_the_moved_module_map_the_old_checkpoint_would_not_restore() -> None:
    """What the upgrade test above relies on, shown: the old pickle names a module that
    no longer exists."""
    with old_module_names():
        blob = pickle.dumps(learned_state(3), protocol=5)
    assert b"services.learner.runtime" in blob
    with pytest.raises(ModuleNotFoundError):
        pickle.loads(blob)  # noqa: S301 - bytes made by this test
    restored = artifacts._StateUnpickler(__import__("io").BytesIO(blob)).load()
    assert isinstance(restored, PartitionState)


# Fields each event class gained, by the schema version that added them (schemas/*.py and
# git log): a document of an older version is the sample without them.
ADDED: dict[str, dict[int, list[tuple[str, ...]]]] = {
    "StreamConfig": {
        2: [("policy", "retrain", "every")],
        3: [("policy", "drift", "data_drift_retrains"), ("policy", "drift", "exclude_features")],
    },
    "ModelVersionPublished": {2: [("artifact", "url"), ("signature",)]},
    "AliasMoved": {2: [("signature",)]},
    "Prediction": {2: [("answer", "learned_examples")]},
    "ShadowPair": {2: [("champion", "learned_examples"), ("challenger", "learned_examples")]},
}


def older(event: Any, version: int) -> dict[str, Any]:
    """``event`` as a writer of schema ``version`` wrote it."""
    doc = json.loads(event.model_dump_json())
    for added, paths in ADDED[type(event).__name__].items():
        if added <= version:
            continue
        for path in paths:
            node = doc
            for step in path[:-1]:
                node = node.get(step) or {}
            node.pop(path[-1], None)
    doc["schema_version"] = version
    doc["event_id"] = str(uuid.uuid4())
    return doc


def test_events_of_older_schema_versions_on_the_topics_are_read(
    settings_factory: Callable[..., DriftlineSettings],
) -> None:
    settings = settings_factory()
    topics = Topics(settings.topic_prefix)
    written: dict[str, list[dict[str, Any]]] = {}
    for event in samples():
        name = type(event).__name__
        if name not in ADDED:
            continue
        suffix = next(s for s, spec in CATALOGUE.items() if type(event) in spec.event_classes)
        for version in range(1, type(event).SCHEMA_VERSION):
            written.setdefault(suffix, []).append(older(event, version))
    assert set(written) == {"streams", "models", "predictions", "shadow"}
    producer = make_producer(settings)
    for suffix, docs in written.items():
        for doc in docs:
            producer.send(topics.name(suffix), key=b"sea", value=json.dumps(doc).encode())
    producer.flush()
    producer.close()
    for suffix, docs in written.items():
        reader = TopicReader(settings, suffix)
        want = len(docs)
        try:
            wait_for(lambda r=reader, n=want: len(r.poll()) >= n, 60, f"{suffix} read back")
        finally:
            reader.close()
        got = [(e.event_type, e.schema_version, str(e.event_id)) for e in reader.events]
        assert got == [(d["event_type"], d["schema_version"], d["event_id"]) for d in docs]
